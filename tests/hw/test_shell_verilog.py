import re

from amaranth.back import verilog

from accelkit.accelerators.gemm import GemmAccelerator
from tests_params import SMALL_PARAMS


def test_exported_top_has_vivado_port_names():
    accelerator = GemmAccelerator(**SMALL_PARAMS)
    text = verilog.convert(accelerator.shell(), name="accelkit_gemm", emit_src=False)
    header = text[:text.index(");")]
    ports = set(re.findall(r"\b(s_axi_\w+|s_axis_\w+|m_axis_\w+|irq|clk|rst)\b", header))
    for name in ("awaddr", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready", "bresp", "bvalid", "bready",
                 "araddr", "arvalid", "arready", "rdata", "rresp", "rvalid", "rready"):
        assert f"s_axi_{name}" in ports
    for name in ("tdata", "tvalid", "tready", "tlast"):
        assert f"s_axis_{name}" in ports and f"m_axis_{name}" in ports
    assert {"clk", "rst", "irq"} <= ports
    assert re.search(r"input \[31:0\] s_axis_tdata", text)
