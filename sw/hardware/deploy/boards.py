"""The PYNQ boards accelkit exports to, and the fabric clocks their processing systems can make.

Everything here is plain data read by the block-design model
(:mod:`.block_design`), from which both the Vivado TCL and the synthetic
hardware handoff are written, so the two cannot disagree about pins or
addresses.
"""

from dataclasses import dataclass

from ....errors import ParameterError

__all__ = ["Board", "BOARDS", "get_board", "ps_clock", "SAFE_DEFAULT_MHZ"]

#: Fabric clock used when no measured Fmax of the design is cached: low enough for the
#: accelkit designs measured so far on a Zynq-7000 -1 part, and Vivado's timing check
#: in the build script says so when it is not.
SAFE_DEFAULT_MHZ = 50.0


@dataclass(frozen=True)
class Board:
    """One board: its part, its processing system's pin names and the address windows used.

    ``ps`` is ``"ps7"`` (Zynq-7000) or ``"ps8"`` (Zynq UltraScale+). Pin and
    interface names are the PS IP's own; ``*_segment`` are the address segments
    the DMA reaches DDR through and the window the PS's master port decodes.
    ``io_pll_mhz`` feeds the fabric clock divisors (two 6-bit dividers).
    """

    name: str
    part: str
    board_part: str
    ps: str
    ps_ip: str
    ps_cell: str
    master: str
    master_clock: str
    slave: str
    slave_clock: str
    fabric_clock: str
    fabric_reset: str
    irq: str
    master_space: str
    ddr_segment: str
    ddr_base: int
    ddr_range: int
    dma_base: int
    accel_base: int
    io_pll_mhz: float
    max_fabric_mhz: float
    hp_width: int
    clock_config: str
    ps_config: tuple
    board_connections: tuple = ()

    def __post_init__(self):
        if self.ps not in ("ps7", "ps8"):
            raise ParameterError(f"board {self.name}: ps must be 'ps7' or 'ps8', not {self.ps!r}")


_PS7_CONFIG = (
    ("PCW_USE_S_AXI_HP0", "1"),
    ("PCW_S_AXI_HP0_DATA_WIDTH", "64"),
    ("PCW_USE_M_AXI_GP0", "1"),
    ("PCW_USE_FABRIC_INTERRUPT", "1"),
    ("PCW_IRQ_F2P_INTR", "1"),
    ("PCW_EN_CLK0_PORT", "1"),
    ("PCW_EN_RST0_PORT", "1"),
)

_PS8_CONFIG = (
    ("PSU__USE__M_AXI_GP0", "1"),
    ("PSU__USE__M_AXI_GP1", "0"),
    ("PSU__USE__M_AXI_GP2", "0"),
    ("PSU__USE__S_AXI_GP2", "1"),
    ("PSU__SAXIGP2__DATA_WIDTH", "128"),
    ("PSU__USE__IRQ0", "1"),
    ("PSU__FPGA_PL0_ENABLE", "1"),
)


def _zynq7(name, board_part):
    return Board(
        name=name, part="xc7z020clg400-1", board_part=board_part, ps="ps7", ps_ip="processing_system7",
        ps_cell="processing_system7_0", master="M_AXI_GP0", master_clock="M_AXI_GP0_ACLK",
        slave="S_AXI_HP0", slave_clock="S_AXI_HP0_ACLK", fabric_clock="FCLK_CLK0",
        fabric_reset="FCLK_RESET0_N", irq="IRQ_F2P", master_space="Data", ddr_segment="HP0_DDR_LOWOCM",
        ddr_base=0x0000_0000, ddr_range=0x2000_0000, dma_base=0x4040_0000, accel_base=0x43C0_0000,
        io_pll_mhz=1000.0, max_fabric_mhz=250.0, hp_width=64, clock_config="PCW_FPGA0_PERIPHERAL_FREQMHZ",
        ps_config=_PS7_CONFIG)


#: The boards ``accelkit export --board`` accepts.
BOARDS = {
    "pynq-z1": _zynq7("pynq-z1", "www.digilentinc.com:pynq-z1:part0:1.0"),
    "pynq-z2": _zynq7("pynq-z2", "tul.com.tw:pynq-z2:part0:1.0"),
    "kv260": Board(
        name="kv260", part="xck26-sfvc784-2LV-c", board_part="xilinx.com:kv260_som:part0:1.4", ps="ps8",
        ps_ip="zynq_ultra_ps_e", ps_cell="zynq_ultra_ps_e_0", master="M_AXI_HPM0_FPD",
        master_clock="maxihpm0_fpd_aclk", slave="S_AXI_HP0_FPD", slave_clock="saxihp0_fpd_aclk",
        fabric_clock="pl_clk0", fabric_reset="pl_resetn0", irq="pl_ps_irq0", master_space="Data",
        ddr_segment="HP0_DDR_LOW", ddr_base=0x0000_0000, ddr_range=0x8000_0000, dma_base=0xA000_0000,
        accel_base=0xA001_0000, io_pll_mhz=1000.0, max_fabric_mhz=333.0, hp_width=128,
        clock_config="PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ", ps_config=_PS8_CONFIG,
        board_connections=(("som240_1_connector", "xilinx.com:kv260_carrier:som240_1_connector:1.3"),)),
}


def get_board(name: str) -> Board:
    """The board called ``name``; :class:`ParameterError` naming the accepted ones otherwise."""
    board = BOARDS.get(name)
    if board is None:
        raise ParameterError(f"board must be one of {', '.join(BOARDS)}, not {name!r}")
    return board


def ps_clock(board: Board, mhz: float) -> tuple[float, int, int]:
    """(frequency, divisor0, divisor1): the fastest clock the PS makes at or below ``mhz``.

    The fabric clocks are the IO PLL divided by two 6-bit divisors; among equal
    frequencies the smallest first divisor is kept (what Vivado's PS
    configuration picks too).
    """
    if isinstance(mhz, bool) or not isinstance(mhz, (int, float)) or not mhz > 0:
        raise ParameterError(f"fabric clock must be a positive frequency in MHz, not {mhz!r}")
    target = min(float(mhz), board.max_fabric_mhz)
    best = None
    for divisor0 in range(1, 64):
        for divisor1 in range(1, 64):
            frequency = board.io_pll_mhz / (divisor0 * divisor1)
            if frequency <= target + 1e-9 and (best is None or frequency > best[0] + 1e-9):
                best = (frequency, divisor0, divisor1)
    if best is None:
        slowest = board.io_pll_mhz / (63 * 63)
        raise ParameterError(f"fabric clock {mhz} MHz is below the slowest clock the {board.name} PS makes "
                             f"({slowest:.3f} MHz)")
    return round(best[0], 6), best[1], best[2]
