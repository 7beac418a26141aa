"""FPGA boards as data: the programmable logic a design point must fit, and the Yosys family that estimates it.

Figures are the parts' datasheet totals (AMD DS190 for the Zynq-7020, DS891 for the
Zynq UltraScale+ K26's XCK26, Lattice FPGA-DS-02012 for the ECP5-85F). An ECP5 block
RAM (EBR) holds 18 Kb, so its 208 EBRs count as 104 BRAM36 equivalents; its 156
18x18 multipliers stand in for DSP slices. When ``sw/hardware/devices.py`` holds the
project-wide device table, this module should read it instead.
"""

from dataclasses import dataclass

from ...errors import ParameterError

__all__ = ["Board", "BOARDS", "get_board"]


@dataclass(frozen=True)
class Board:
    """A board's programmable-logic budget, its default fabric clock and its static power."""

    name: str
    part: str
    lut: int
    ff: int
    dsp: int
    bram36: float
    #: ``synth_xilinx -family`` for Yosys estimates (None: no Xilinx flow, the analytic model only)
    yosys_family: str | None
    clock_mhz: float
    #: programmable-logic static power at 25 C junction, watts (see sw/hardware/power.py)
    static_watts: float

    def budget(self) -> dict:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram36": self.bram36}


_ZYNQ_7020 = dict(part="xc7z020", lut=53200, ff=106400, dsp=220, bram36=140, yosys_family="xc7", clock_mhz=100.0,
                  static_watts=0.12)

BOARDS = {
    "pynq-z1": Board(name="pynq-z1", **_ZYNQ_7020),
    "pynq-z2": Board(name="pynq-z2", **_ZYNQ_7020),
    "kv260": Board(name="kv260", part="xck26", lut=117120, ff=234240, dsp=1248, bram36=144, yosys_family="xcup",
                   clock_mhz=200.0, static_watts=0.45),
    "ecp5-85f": Board(name="ecp5-85f", part="LFE5U-85F", lut=83640, ff=83640, dsp=156, bram36=104,
                      yosys_family=None, clock_mhz=100.0, static_watts=0.10),
}


def get_board(name: str) -> Board:
    """The board called ``name``; :class:`ParameterError` naming the known ones otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ParameterError(f"no board named {name!r}; known boards: {', '.join(BOARDS)}") from None
