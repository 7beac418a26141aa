"""The Vivado block design of an exported accelerator, as data.

One :class:`BlockDesign` value lists the cells, the interface and scalar
connections, the address map and the fabric clock. The TCL generator
(:mod:`.vivado_tcl`) writes Vivado commands from it and the synthetic
hardware handoff (:mod:`.hwh`) writes PYNQ's metadata from it, so the
addresses PYNQ is told about are the ones the TCL assigns.

The design: the PS's general-purpose master reaches the AXI DMA's and the
accelerator's AXI4-Lite slaves through a SmartConnect; the DMA (simple mode,
no scatter-gather) reads and writes DDR through a second SmartConnect on a
high-performance slave port; its MM2S stream feeds the accelerator's
``s_axis`` and the accelerator's ``m_axis`` feeds its S2MM stream. One fabric
clock and one reset block drive everything; the DMA's and the accelerator's
interrupts reach the PS through a concat.
"""

from dataclasses import dataclass, field

from ....errors import ParameterError
from .boards import Board, ps_clock

__all__ = ["Cell", "AddressSegment", "BlockDesign", "block_design", "ACCEL_VENDOR", "ACCEL_LIBRARY",
           "accelerator_vlnv", "ACCEL_CELL", "DMA_CELL", "SEGMENT_RANGE"]

ACCEL_VENDOR = "accelkit"
ACCEL_LIBRARY = "accelkit"
ACCEL_CELL = "accelerator_0"
DMA_CELL = "axi_dma_0"
#: Size of each AXI4-Lite register window (Vivado's smallest usual range).
SEGMENT_RANGE = 0x1_0000
#: Buffer-length register width of the DMA: transfers up to 64 MiB - 1.
DMA_LENGTH_WIDTH = 26


def accelerator_vlnv(top: str) -> str:
    """The VLNV the packaged IP gets; PYNQ binds the accelerator's driver by it."""
    return f"{ACCEL_VENDOR}:{ACCEL_LIBRARY}:{top}:1.0"


@dataclass(frozen=True)
class Cell:
    """One block-design cell: instance name, IP name (the VLNV's name part) and its CONFIG values."""

    name: str
    ip: str
    config: tuple = ()
    vendor: str = "xilinx.com:ip"

    @property
    def config_dict(self):
        return dict(self.config)


@dataclass(frozen=True)
class AddressSegment:
    """``slave`` (cell/interface/block) mapped at ``offset`` in ``master`` (cell/address space)."""

    master: str
    slave: str
    offset: int
    range: int


@dataclass(frozen=True)
class BlockDesign:
    """Cells, connections, address map and clock of one exported design."""

    name: str
    board: Board
    top: str
    data_width: int
    clock_mhz: float
    clock_divisors: tuple
    cells: tuple
    interface_nets: tuple
    nets: tuple
    addresses: tuple = field(default_factory=tuple)

    def cell(self, name) -> Cell:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise KeyError(name)


def block_design(board: Board, *, top: str, data_width: int, clock_mhz: float, name: str = "accelkit_bd"):
    """The block design of accelerator ``top`` (a ``data_width``-bit stream shell) on ``board``.

    ``clock_mhz`` is rounded down to a clock the PS can make (:func:`.boards.ps_clock`).
    """
    if not isinstance(data_width, int) or data_width & (data_width - 1) or not 8 <= data_width <= 1024:
        raise ParameterError(f"the AXI DMA takes stream widths that are a power of two in 8..1024 bits; "
                             f"the accelerator's data width is {data_width!r}")
    mhz, divisor0, divisor1 = ps_clock(board, clock_mhz)
    ps = board.ps_cell
    # The DMA's memory side must be at least as wide as its streams; the SmartConnect
    # converts it to the HP port's width.
    memory_width = max(32, data_width)
    stream_width = data_width
    dma_config = (
        ("c_include_sg", "0"),
        ("c_sg_length_width", str(DMA_LENGTH_WIDTH)),
        ("c_sg_include_stscntrl_strm", "0"),
        ("c_m_axi_mm2s_data_width", str(memory_width)),
        ("c_m_axis_mm2s_tdata_width", str(stream_width)),
        ("c_m_axi_s2mm_data_width", str(memory_width)),
        ("c_s_axis_s2mm_tdata_width", str(stream_width)),
        ("c_mm2s_burst_size", "16"),
        ("c_s2mm_burst_size", "16"),
    )
    ps_config = board.ps_config + ((board.clock_config, f"{mhz:g}"),)
    cells = (
        Cell(ps, board.ps_ip, ps_config),
        Cell(DMA_CELL, "axi_dma", dma_config),
        Cell(ACCEL_CELL, top, vendor=f"{ACCEL_VENDOR}:{ACCEL_LIBRARY}"),
        Cell("control_interconnect", "smartconnect", (("NUM_SI", "1"), ("NUM_MI", "2"))),
        Cell("memory_interconnect", "smartconnect", (("NUM_SI", "2"), ("NUM_MI", "1"))),
        Cell("reset_0", "proc_sys_reset"),
        Cell("irq_concat", "xlconcat", (("NUM_PORTS", "3"),)),
    )
    interface_nets = (
        (f"{ps}/{board.master}", "control_interconnect/S00_AXI"),
        ("control_interconnect/M00_AXI", f"{DMA_CELL}/S_AXI_LITE"),
        ("control_interconnect/M01_AXI", f"{ACCEL_CELL}/s_axi"),
        (f"{DMA_CELL}/M_AXI_MM2S", "memory_interconnect/S00_AXI"),
        (f"{DMA_CELL}/M_AXI_S2MM", "memory_interconnect/S01_AXI"),
        ("memory_interconnect/M00_AXI", f"{ps}/{board.slave}"),
        (f"{DMA_CELL}/M_AXIS_MM2S", f"{ACCEL_CELL}/s_axis"),
        (f"{ACCEL_CELL}/m_axis", f"{DMA_CELL}/S_AXIS_S2MM"),
    )
    clock = f"{ps}/{board.fabric_clock}"
    nets = (
        (clock, (f"{ps}/{board.master_clock}", f"{ps}/{board.slave_clock}", f"{DMA_CELL}/s_axi_lite_aclk",
                 f"{DMA_CELL}/m_axi_mm2s_aclk", f"{DMA_CELL}/m_axi_s2mm_aclk", "control_interconnect/aclk",
                 "memory_interconnect/aclk", "reset_0/slowest_sync_clk", f"{ACCEL_CELL}/clk")),
        (f"{ps}/{board.fabric_reset}", ("reset_0/ext_reset_in",)),
        ("reset_0/peripheral_aresetn", (f"{DMA_CELL}/axi_resetn", "control_interconnect/aresetn",
                                        "memory_interconnect/aresetn")),
        # The shell's reset is active high (Amaranth's sync domain).
        ("reset_0/peripheral_reset", (f"{ACCEL_CELL}/rst",)),
        (f"{DMA_CELL}/mm2s_introut", ("irq_concat/In0",)),
        (f"{DMA_CELL}/s2mm_introut", ("irq_concat/In1",)),
        (f"{ACCEL_CELL}/irq", ("irq_concat/In2",)),
        ("irq_concat/dout", (f"{ps}/{board.irq}",)),
    )
    addresses = (
        AddressSegment(f"{ps}/{board.master_space}", f"{DMA_CELL}/S_AXI_LITE/Reg", board.dma_base, SEGMENT_RANGE),
        AddressSegment(f"{ps}/{board.master_space}", f"{ACCEL_CELL}/s_axi/reg0", board.accel_base, SEGMENT_RANGE),
        AddressSegment(f"{DMA_CELL}/Data_MM2S", f"{ps}/{board.slave}/{board.ddr_segment}", board.ddr_base,
                       board.ddr_range),
        AddressSegment(f"{DMA_CELL}/Data_S2MM", f"{ps}/{board.slave}/{board.ddr_segment}", board.ddr_base,
                       board.ddr_range),
    )
    return BlockDesign(name=name, board=board, top=top, data_width=data_width, clock_mhz=mhz,
                       clock_divisors=(divisor0, divisor1), cells=cells, interface_nets=interface_nets,
                       nets=nets, addresses=addresses)
