"""The FPGA parts accelkit reports against, as data: what each holds and which flow measures a design on it.

One table for every consumer (``accelkit resources``, ``accelkit bench timing``,
design-space exploration): look a part up with :func:`get_part`, ask
:meth:`FpgaPart.shares` how much of it a design uses and :meth:`FpgaPart.fits`
whether it fits. Usage and capacity are dicts over :data:`RESOURCES`:

* ``lut``: logic LUTs and LUTs used as memory together (both come out of the
  same LUTs); LUT6 on the Xilinx parts, LUT4 (nextpnr's ``TRELLIS_COMB``) on the ECP5;
* ``ff``: flip-flops; ``dsp``: DSP48E1/DSP48E2 slices, or ECP5 ``MULT18X18D``;
* ``bram``: RAMB36 equivalents (a RAMB18 is half of one) on Xilinx, 18 Kbit
  ``DP16KD`` blocks on the ECP5 (see :attr:`FpgaPart.units`).

Capacities: Xilinx product tables (Zynq-7000 DS190, Kria K26 DS987); the
ECP5-85F's are the ``available`` counts of nextpnr-ecp5's utilisation report
for ``--85k`` (a test checks them against a real run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import ParameterError

__all__ = ["FpgaPart", "PARTS", "RESOURCES", "get_part", "part_names"]

#: The resources every part states, in report order.
RESOURCES = ("lut", "ff", "dsp", "bram")


@dataclass(frozen=True)
class FpgaPart:
    """One FPGA part: capacity per resource, and the flow that measures designs on it.

    ``flow`` is ``"yosys-xilinx"`` (Yosys ``synth_xilinx -family yosys_family``,
    no place and route) or ``"nextpnr-ecp5"`` (Yosys ``synth_ecp5`` and
    nextpnr-ecp5: resources and a placed-and-routed Fmax). ``boards`` names the
    boards carrying the part.
    """

    name: str
    title: str
    flow: str
    capacity: dict = field(hash=False)
    units: dict = field(hash=False)
    yosys_family: str | None = None
    boards: tuple = ()

    def __post_init__(self):
        if set(self.capacity) != set(RESOURCES) or set(self.units) != set(RESOURCES):
            raise ParameterError(f"part {self.name}: capacity and units must name exactly {', '.join(RESOURCES)}")
        if self.flow not in ("yosys-xilinx", "nextpnr-ecp5"):
            raise ParameterError(f"part {self.name}: unknown flow {self.flow!r}")
        if self.flow == "yosys-xilinx" and not self.yosys_family:
            raise ParameterError(f"part {self.name}: a Xilinx part needs its Yosys family")

    def shares(self, usage: dict) -> dict:
        """Used / available per resource of ``usage`` (a dict over :data:`RESOURCES`)."""
        missing = set(RESOURCES) - set(usage)
        if missing:
            raise ParameterError(f"usage on {self.name} lacks {', '.join(sorted(missing))}; "
                                 f"it must give {', '.join(RESOURCES)}")
        return {name: usage[name] / self.capacity[name] for name in RESOURCES}

    def fits(self, usage: dict) -> bool:
        """Does ``usage`` fit the part (every resource at most its capacity)?"""
        return all(share <= 1.0 for share in self.shares(usage).values())


_XILINX_UNITS = {"lut": "LUT6", "ff": "FF", "dsp": "DSP48", "bram": "RAMB36"}

#: Every part by name.
PARTS = {part.name: part for part in (
    FpgaPart("xc7z020", "Zynq-7020 (xc7z020)", "yosys-xilinx",
             {"lut": 53200, "ff": 106400, "dsp": 220, "bram": 140}, _XILINX_UNITS,
             yosys_family="xc7", boards=("pynq-z1", "pynq-z2")),
    FpgaPart("xck26", "Kria K26 (xck26, Zynq UltraScale+)", "yosys-xilinx",
             {"lut": 117120, "ff": 234240, "dsp": 1248, "bram": 144}, _XILINX_UNITS,
             yosys_family="xcup", boards=("kv260",)),
    FpgaPart("ecp5-85f", "Lattice ECP5-85F (LFE5U-85F, CABGA381)", "nextpnr-ecp5",
             {"lut": 83640, "ff": 83640, "dsp": 156, "bram": 208},
             {"lut": "LUT4", "ff": "FF", "dsp": "MULT18X18D", "bram": "DP16KD"}),
)}


def part_names() -> list[str]:
    """Names :func:`get_part` accepts, sorted."""
    return sorted(PARTS)


def get_part(name: str) -> FpgaPart:
    """The part called ``name``; raises :class:`ParameterError` naming the parts there are."""
    try:
        return PARTS[name]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown FPGA part {name!r}; known parts: {', '.join(part_names())}") from None
