"""The exported Vivado TCL, run under tclsh with stub Vivado commands that record the block design.

Nothing here runs Vivado: the stubs (vivado_stub.tcl) check pin and segment names
against the Verilog top and the Xilinx IP's documented names and record every cell,
connection, address and run; the tests assert on that record. Golden files pin the
TCL text of each board.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.errors import ParameterError
from accelkit.sw.hardware.deploy.boards import BOARDS, get_board, ps_clock
from accelkit.sw.hardware.deploy.export import export_design

HERE = Path(__file__).parent
STUB = HERE / "vivado_stub.tcl"
GOLDEN = HERE / "golden"

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh is not installed (apt install tcl)")


@pytest.fixture(scope="module")
def accelerator():
    return GemmAccelerator(**GemmAccelerator.small_params)


@pytest.fixture(scope="module")
def exports(accelerator, tmp_path_factory):
    return {name: export_design(accelerator, name, tmp_path_factory.mktemp(name), clock_mhz=100)
            for name in BOARDS}


def verilog_ports(text, top):
    header = re.search(rf"module {top}\((.*?)\);", text, re.S).group(1)
    return [port.strip() for port in header.split(",")]


def run_stubbed(out_dir, top, wns="0.250", whs="0.031", env=None):
    record = out_dir / "record.txt"
    record.unlink(missing_ok=True)
    ports = verilog_ports((out_dir / f"{top}.v").read_text(), top)
    driver = out_dir / "driver.tcl"
    driver.write_text(f"set stub_record {{{record}}}\nset accel_ports {{{' '.join(ports)}}}\n"
                      f"set stub_wns {wns}\nset stub_whs {whs}\nsource {{{STUB}}}\n"
                      f"source {{{out_dir / 'build.tcl'}}}\n")
    process = subprocess.run(["tclsh", str(driver)], capture_output=True, text=True,
                             env={**os.environ, **(env or {})}, timeout=60)
    lines = [line.split("\t") for line in record.read_text().splitlines()] if record.exists() else []
    return process, lines


def parse(lines):
    design = {"cells": {}, "config": {}, "intf": set(), "nets": set(), "addresses": [], "runs": [],
              "projects": [], "infer": {}, "associate": [], "automation": []}
    for kind, *args in lines:
        if kind == "cell":
            design["cells"][args[0]] = args[1]
        elif kind == "config":
            design["config"].setdefault(args[0], {})[args[1]] = args[2]
        elif kind == "intf":
            design["intf"].add(tuple(args))
        elif kind == "net":
            design["nets"].add(tuple(args))
        elif kind == "address":
            design["addresses"].append(tuple(args))
        elif kind == "launch":
            design["runs"].append(tuple(args))
        elif kind == "project":
            design["projects"].append(tuple(args))
        elif kind == "infer":
            design["infer"][args[0]] = args[1]
        elif kind == "associate":
            design["associate"].append(tuple(args))
        elif kind == "automation":
            design["automation"].append(tuple(args))
    return design


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_tcl_builds_the_block_design(exports, accelerator, board_name):
    result = exports[board_name]
    board = get_board(board_name)
    process, lines = run_stubbed(result.out_dir, accelerator.top_name)
    assert process.returncode == 0, process.stderr
    design = parse(lines)
    ps = board.ps_cell
    top = accelerator.top_name

    # Cells: the PS of the board, the newest version of each Xilinx IP, the packaged accelerator.
    assert design["cells"][ps] == f"xilinx.com:ip:{board.ps_ip}:10.1"
    assert design["cells"]["axi_dma_0"] == "xilinx.com:ip:axi_dma:10.1"
    assert design["cells"]["accelerator_0"] == f"accelkit:accelkit:{top}:1.0"
    assert design["projects"][0][1] == design["projects"][1][1] == board.part

    # DMA in simple mode, streams as wide as the accelerator's.
    dma = design["config"]["axi_dma_0"]
    assert dma["c_include_sg"] == "0" and dma["c_sg_length_width"] == "26"
    width = str(accelerator.params["data_width"])
    assert dma["c_m_axis_mm2s_tdata_width"] == dma["c_s_axis_s2mm_tdata_width"] == width

    # The fabric clock the user asked for, as the PS's configuration.
    assert design["config"][ps][board.clock_config] == "100"

    # The control path from the PS's master and the data path to its HP slave port.
    intf = design["intf"]
    assert (f"{ps}/{board.master}", "control_interconnect/S00_AXI") in intf
    assert {("control_interconnect/M00_AXI", "axi_dma_0/S_AXI_LITE"),
            ("control_interconnect/M01_AXI", "accelerator_0/s_axi"),
            ("axi_dma_0/M_AXIS_MM2S", "accelerator_0/s_axis"),
            ("accelerator_0/m_axis", "axi_dma_0/S_AXIS_S2MM"),
            ("memory_interconnect/M00_AXI", f"{ps}/{board.slave}")} <= intf
    # One clock reaches every clocked pin; the accelerator's active-high reset is the reset block's.
    clock = f"{ps}/{board.fabric_clock}"
    clocked = {sink for source, sink in design["nets"] if source == clock}
    assert {"accelerator_0/clk", "axi_dma_0/m_axi_mm2s_aclk", f"{ps}/{board.slave_clock}",
            f"{ps}/{board.master_clock}"} <= clocked
    assert ("reset_0/peripheral_reset", "accelerator_0/rst") in design["nets"]
    assert ("accelerator_0/irq", "irq_concat/In2") in design["nets"]
    assert ("irq_concat/dout", f"{ps}/{board.irq}") in design["nets"]

    # The address map.
    addresses = {(space, segment): (offset, size) for space, segment, offset, size in design["addresses"]}
    assert addresses[(f"{ps}/Data", "accelerator_0/s_axi/reg0")] == (f"0x{board.accel_base:08X}", "0x10000")
    assert addresses[(f"{ps}/Data", "axi_dma_0/S_AXI_LITE/Reg")] == (f"0x{board.dma_base:08X}", "0x10000")
    for space in ("axi_dma_0/Data_MM2S", "axi_dma_0/Data_S2MM"):
        assert addresses[(space, f"{ps}/{board.slave}/{board.ddr_segment}")][0] == "0x00000000"

    # IP packaging: clock, reset and interrupt inferred on the top's own ports, buses on its clock.
    assert design["infer"] == {"clk": "xilinx.com:signal:clock_rtl:1.0", "rst": "xilinx.com:signal:reset_rtl:1.0",
                               "irq": "xilinx.com:signal:interrupt_rtl:1.0"}
    assert {busif for clock_name, busif, _ in design["associate"] if clock_name == "clk"} >= {"s_axi", "s_axis",
                                                                                               "m_axis"}
    assert design["runs"] == [("impl_1", "write_bitstream")]
    assert design["automation"][0][0] == f"xilinx.com:bd_rule:{board.ps_ip}"
    assert (result.out_dir / f"{top}.bit").read_text() == "stub bitstream\n"
    assert (result.out_dir / f"{top}.hwh").read_text() == "stub handoff\n"


def test_negative_slack_stops_the_build(exports, accelerator, tmp_path):
    out = exports["pynq-z2"].out_dir
    for name in (f"{accelerator.top_name}.bit", f"{accelerator.top_name}.hwh"):
        (out / name).unlink(missing_ok=True)
    process, _ = run_stubbed(out, accelerator.top_name, wns="-0.412")
    assert process.returncode != 0
    assert "timing not met at 100 MHz (setup -0.412 ns" in process.stderr
    assert not (out / f"{accelerator.top_name}.bit").exists()
    process, _ = run_stubbed(out, accelerator.top_name, wns="-0.412",
                             env={"ACCELKIT_ALLOW_TIMING_FAILURE": "1"})
    assert process.returncode == 0 and "WARNING: timing not met" in process.stdout


def test_stub_refuses_an_unknown_pin(exports, accelerator, tmp_path):
    # The stub's checks are what make the record trustworthy: a misspelt pin must fail.
    out = exports["pynq-z1"].out_dir
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    tcl = (broken / "build.tcl").read_text().replace("accelerator_0/m_axis]", "accelerator_0/m_axis_out]")
    (broken / "build.tcl").write_text(tcl)
    process, _ = run_stubbed(broken, accelerator.top_name)
    assert process.returncode != 0 and "has no pin m_axis_out" in process.stderr


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_tcl_matches_golden_file(exports, board_name):
    text = (exports[board_name].out_dir / "build.tcl").read_text()
    golden = GOLDEN / f"{board_name}.tcl"
    if os.environ.get("ACCELKIT_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"build.tcl for {board_name} changed; review it and rerun with " \
                                       "ACCELKIT_UPDATE_GOLDEN=1 to accept"


def test_clock_is_rounded_down_to_one_the_ps_makes():
    z1 = get_board("pynq-z1")
    assert ps_clock(z1, 100) == (100.0, 1, 10)
    frequency, divisor0, divisor1 = ps_clock(z1, 32.9)        # the 8x8 gemm's measured ECP5 Fmax
    assert frequency == pytest.approx(1000 / 31) and divisor0 * divisor1 == 31
    assert ps_clock(z1, 400)[0] == 250.0                      # the Zynq-7000 fabric clock ceiling
    for bad in (0, -5, "fast", True):
        with pytest.raises(ParameterError, match="fabric clock"):
            ps_clock(z1, bad)


def test_export_refuses_bad_input(accelerator, tmp_path):
    with pytest.raises(ParameterError, match="board must be one of pynq-z1, pynq-z2, kv260, not 'zedboard'"):
        export_design(accelerator, "zedboard", tmp_path)
    with pytest.raises(ParameterError, match="power of two"):
        export_design(GemmAccelerator(**{**GemmAccelerator.small_params, "data_width": 48}), "pynq-z1", tmp_path,
                      clock_mhz=100)


def test_default_clock_says_where_it_came_from(exports, accelerator, tmp_path):
    result = export_design(accelerator, "kv260", tmp_path)
    assert result.clock_source  # measured (cached) Fmax, or the documented safe default, said in words
    readme = (tmp_path / "README.md").read_text()
    assert f"fabric clock {result.design.clock_mhz:g} MHz" in readme
    assert "has not run this TCL in Vivado" in readme


def test_export_command(tmp_path, capsys):
    from accelkit.sw.commands.main import main
    params = ",".join(f"{k}={v}" for k, v in GemmAccelerator.small_params.items())
    assert main(["export", "--accel", "gemm", "--params", params, "--board", "kv260", "--clock-mhz", "180",
                 str(tmp_path / "out"), "--model", "digits_cnn", "--bundle"]) == 0
    out = capsys.readouterr().out
    assert "0xA0010000" in out and "fabric clock 166.667 MHz" in out   # 1000 / 6: the PS's clock below 180
    assert (tmp_path / "out" / "build.sh").stat().st_mode & 0o100
    # what the board needs beside the bitstream: the model's program and the wheel
    from accelkit.sw.hardware.deploy.board_run import load_program
    program = load_program(tmp_path / "out" / "digits_cnn.board")
    assert program.accelerator.params == GemmAccelerator(**GemmAccelerator.small_params).params
    assert len(program.ops) == 7 and list((tmp_path / "out").glob("accelkit_board-*.whl"))
    assert main(["export", "--accel", "gemm", "--params", params, "--board", "kv260", str(tmp_path / "r"),
                 "--model", "resnet_tiny"]) == 2
    assert "(ADD) cannot run on the board" in capsys.readouterr().err
    assert main(["export", "--accel", "gemm", "--params", "rows=0", "--board", "kv260", str(tmp_path / "x")]) == 2
    assert "rows must be in 1..64, not 0" in capsys.readouterr().err
