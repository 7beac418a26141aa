"""A SYNTHETIC hardware handoff (.hwh) made from the block-design model, for PYNQ without Vivado.

Vivado writes the real ``.hwh`` when it builds the block design; PYNQ's
``Overlay`` reads it (through pynqmetadata) to learn the IP, their VLNVs,
parameters and addresses. This module writes the part of that XML PYNQ needs
from the same :class:`~.block_design.BlockDesign` the TCL is written from:
one ``MODULE`` per IP the host talks to, with its parameters and AXI bus
interfaces, and the processing system's memory map. It is labelled synthetic
in a comment and in ``SYSTEMINFO``; it is a test fixture for running PYNQ's
unmodified classes against the simulator, never a substitute for Vivado's.
"""

from xml.sax.saxutils import quoteattr

from .block_design import ACCEL_CELL, DMA_CELL, BlockDesign, accelerator_vlnv

__all__ = ["synthetic_hwh", "write_synthetic_overlay", "SYNTHETIC_MARK"]

SYNTHETIC_MARK = "SYNTHETIC hardware handoff written by accelkit, not by Vivado"

_AXIMM = "xilinx.com:interface:aximm:1.0"
_AXIS = "xilinx.com:interface:axis:1.0"


def _parameters(items, indent):
    pad = " " * indent
    body = "".join(f'{pad}  <PARAMETER NAME={quoteattr(str(k))} VALUE={quoteattr(str(v))}/>\n' for k, v in items)
    return f"{pad}<PARAMETERS>\n{body}{pad}</PARAMETERS>\n"


def _bus(name, kind, vlnv, indent):
    pad = " " * indent
    return f'{pad}<BUSINTERFACE BUSNAME={quoteattr(name + "_bus")} NAME={quoteattr(name)} TYPE="{kind}" ' \
           f'VLNV="{vlnv}">\n{pad}  <PORTMAPS/>\n{pad}</BUSINTERFACE>\n'


def _module(instance, vlnv, modtype, parameters, buses, memory="", is_pl=True):
    text = (f'    <MODULE FULLNAME="/{instance}" INSTANCE="{instance}" IPTYPE="PERIPHERAL" '
            f'IS_PL="{"TRUE" if is_pl else "FALSE"}" MODTYPE="{modtype}" VLNV="{vlnv}">\n')
    text += _parameters(parameters, 6)
    if memory:
        text += f"      <MEMORYMAP>\n{memory}      </MEMORYMAP>\n"
    text += "      <PORTS/>\n      <BUSINTERFACES>\n"
    text += "".join(_bus(name, kind, bus_vlnv, 8) for name, kind, bus_vlnv in buses)
    text += "      </BUSINTERFACES>\n    </MODULE>\n"
    return text


def _ps_parameters(design: BlockDesign):
    board = design.board
    divisor0, divisor1 = design.clock_divisors
    items = list(board.ps_config) + [(board.clock_config, f"{design.clock_mhz:g}")]
    if board.ps == "ps7":
        for index in range(4):
            enabled = index == 0
            items += [(f"PCW_FPGA_FCLK{index}_ENABLE", "1" if enabled else "0"),
                      (f"PCW_FCLK{index}_PERIPHERAL_CLKSRC", "IO PLL"),
                      (f"PCW_FCLK{index}_PERIPHERAL_DIVISOR0", str(divisor0 if enabled else 1)),
                      (f"PCW_FCLK{index}_PERIPHERAL_DIVISOR1", str(divisor1 if enabled else 1))]
    else:
        for index in range(4):
            enabled = index == 0
            items += [(f"PSU__FPGA_PL{index}_ENABLE", "1" if enabled else "0"),
                      (f"PSU__CRL_APB__PL{index}_REF_CTRL__SRCSEL", "IOPLL"),
                      (f"PSU__CRL_APB__PL{index}_REF_CTRL__DIVISOR0", str(divisor0 if enabled else 1)),
                      (f"PSU__CRL_APB__PL{index}_REF_CTRL__DIVISOR1", str(divisor1 if enabled else 1))]
    return items


def synthetic_hwh(design: BlockDesign) -> str:
    """The synthetic ``.hwh`` XML text of ``design`` (see the module docstring for what it is and is not)."""
    board = design.board
    ps = board.ps_cell
    ranges = ""
    for segment in design.addresses:
        if not segment.master.startswith(ps + "/"):
            continue
        instance, interface, block = segment.slave.split("/")
        ranges += (f'        <MEMRANGE ADDRESSBLOCK="{block}" BASENAME="C_BASEADDR" '
                   f'BASEVALUE="0x{segment.offset:08X}" HIGHNAME="C_HIGHADDR" '
                   f'HIGHVALUE="0x{segment.offset + segment.range - 1:08X}" INSTANCE="{instance}" '
                   f'IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="{board.master}" MEMTYPE="REGISTER" '
                   f'SLAVEBUSINTERFACE="{interface}"/>\n')
    dma = design.cell(DMA_CELL)
    dma_parameters = list(dma.config) + [("c_include_mm2s", "1"), ("c_include_s2mm", "1"),
                                         ("c_include_mm2s_dre", "0"), ("c_include_s2mm_dre", "0"),
                                         ("c_micro_dma", "0"), ("C_BASEADDR", f"0x{board.dma_base:08X}"),
                                         ("C_HIGHADDR", f"0x{board.dma_base + 0xFFFF:08X}")]
    accel_parameters = [("C_BASEADDR", f"0x{board.accel_base:08X}"),
                        ("C_HIGHADDR", f"0x{board.accel_base + 0xFFFF:08X}"),
                        ("DATA_WIDTH", str(design.data_width))]
    arch, device = ("zynq", "7z020") if board.ps == "ps7" else ("zynquplus", "xck26")
    text = '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n'
    text += f"<!-- {SYNTHETIC_MARK}: from the block-design model its build.tcl was written from. -->\n"
    text += "<EDKSYSTEM>\n"
    text += (f'  <SYSTEMINFO ARCH="{arch}" DEVICE="{device}" NAME="{design.name}" PACKAGE="" SPEEDGRADE="" '
             f'SOURCE="accelkit synthetic"/>\n  <EXTERNALPORTS/>\n  <MODULES>\n')
    text += _module(ps, f"xilinx.com:ip:{board.ps_ip}:1.0", board.ps_ip, _ps_parameters(design),
                    [(board.master, "MASTER", _AXIMM), (board.slave, "SLAVE", _AXIMM)], memory=ranges, is_pl=False)
    text += _module(DMA_CELL, "xilinx.com:ip:axi_dma:7.1", "axi_dma", dma_parameters,
                    [("S_AXI_LITE", "SLAVE", _AXIMM), ("M_AXI_MM2S", "MASTER", _AXIMM),
                     ("M_AXI_S2MM", "MASTER", _AXIMM), ("M_AXIS_MM2S", "MASTER", _AXIS),
                     ("S_AXIS_S2MM", "SLAVE", _AXIS)])
    text += _module(ACCEL_CELL, accelerator_vlnv(design.top), design.top, accel_parameters,
                    [("s_axi", "SLAVE", _AXIMM), ("s_axis", "SLAVE", _AXIS), ("m_axis", "MASTER", _AXIS)])
    text += "  </MODULES>\n</EDKSYSTEM>\n"
    return text


def write_synthetic_overlay(design: BlockDesign, out_dir) -> "Path":
    """Write ``TOP.hwh`` (synthetic) and a placeholder ``TOP.bit`` into ``out_dir``; return the .bit path.

    The pair is what ``pynq.Overlay(path, download=False, device=...)`` reads; the
    .bit holds only a line saying it is no bitstream (nothing downloads it).
    """
    from pathlib import Path
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{design.top}.hwh").write_text(synthetic_hwh(design))
    bit = out / f"{design.top}.bit"
    bit.write_text(f"{SYNTHETIC_MARK}: placeholder, not a bitstream\n")
    return bit
