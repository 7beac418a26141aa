"""FPGA boards as data: the programmable logic a design point must fit, and the Yosys family that estimates it.

A board names its FPGA part; the part's capacities and its Yosys family come from the
project-wide part table (``sw/hardware/devices.py``, datasheet totals). What is the board's
own is here: its default fabric clock and the part's static power. An ECP5 block RAM (EBR,
DP16KD) holds 18 Kb, so its 208 EBRs count as 104 BRAM36 equivalents; its 156 18x18
multipliers stand in for DSP slices.
"""

from dataclasses import dataclass

from ...errors import ParameterError
from ..hardware.devices import get_part

__all__ = ["Board", "BOARDS", "get_board"]


@dataclass(frozen=True)
class Board:
    """A board: its FPGA part (capacities from the part table), default fabric clock and static power."""

    name: str
    part: str
    clock_mhz: float
    #: programmable-logic static power at 25 C junction, watts (see sw/hardware/power.py)
    static_watts: float

    @property
    def lut(self) -> int:
        return get_part(self.part).capacity["lut"]

    @property
    def ff(self) -> int:
        return get_part(self.part).capacity["ff"]

    @property
    def dsp(self) -> int:
        return get_part(self.part).capacity["dsp"]

    @property
    def bram36(self) -> float:
        part = get_part(self.part)
        # ECP5 block RAMs are 18 Kb: two to a BRAM36
        return part.capacity["bram"] / 2 if part.flow == "nextpnr-ecp5" else part.capacity["bram"]

    @property
    def yosys_family(self) -> str | None:
        """``synth_xilinx -family`` for Yosys estimates (None: no Xilinx flow, the analytic model only)."""
        return get_part(self.part).yosys_family

    def budget(self) -> dict:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram36": self.bram36}


BOARDS = {
    "pynq-z1": Board(name="pynq-z1", part="xc7z020", clock_mhz=100.0, static_watts=0.12),
    "pynq-z2": Board(name="pynq-z2", part="xc7z020", clock_mhz=100.0, static_watts=0.12),
    "kv260": Board(name="kv260", part="xck26", clock_mhz=200.0, static_watts=0.45),
    "ecp5-85f": Board(name="ecp5-85f", part="ecp5-85f", clock_mhz=100.0, static_watts=0.10),
}


def get_board(name: str) -> Board:
    """The board called ``name``; :class:`ParameterError` naming the known ones otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ParameterError(f"no board named {name!r}; known boards: {', '.join(BOARDS)}") from None
