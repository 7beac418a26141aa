"""A whole model run the board's way: its board program, the GEMM driver, numpy for the CPU layers.

No board here, so the device is a recorded Verilator run of the same model (`accelkit run --record`):
the board-side run must make exactly the recorded transactions (TraceDevice), gets the recorded
gateware's answers, and must end with the output `accelkit run` printed, bit for bit. The clean-venv
run of the same, with the wheel alone, is in test_board_bundle.py; the recording is conftest.py's.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.driver.trace import DeviceTrace, TraceDevice
from accelkit.errors import DeviceError, ModelError
from accelkit.sw.hardware.deploy.board_cli import main as board_main
from accelkit.sw.hardware.deploy.board_program import write_program
from accelkit.sw.hardware.deploy.board_run import load_program, run_program
from accelkit.sw.zoo import resolve_model

def test_the_board_run_equals_accelkit_run(digits_on_the_board_way, capsys):
    work, host, host_output = digits_on_the_board_way
    capsys.readouterr()
    code = board_main(["run", str(work / "digits.board"), "--trace", str(work / "digits"), "--seed", "3",
                       "--output", str(work / "board.npy"), "--json", str(work / "board.json")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert np.array_equal(np.load(work / "board.npy"), host_output)
    board = json.loads((work / "board.json").read_text())
    # the same report: every layer where it ran and what the accelerator counted
    keys = ("index", "op", "where", "macs", "cycles", "bytes_in", "bytes_out", "jobs", "reason")
    assert [[layer[k] for k in keys] for layer in board["layers"]] == \
        [[layer[k] for k in keys] for layer in host["layers"]]
    assert board["totals"]["accelerator_cycles"] == host["totals"]["accelerator_cycles"] > 0
    assert "layers offloaded 5 of 7" in printed and "SOFTMAX is not offloaded" in printed


def test_a_cpu_only_program_equals_it_too_without_a_device_transaction(digits_on_the_board_way, board_params,
                                                                         tmp_path, capsys):
    work, _, host_output = digits_on_the_board_way
    folder = write_program(resolve_model("digits_cnn"), GemmAccelerator(**board_params), tmp_path / "cpu.board",
                           cpu_only=True)
    program = load_program(folder)
    assert all(op.plan is None for op in program.ops)
    x = np.random.default_rng(3).integers(-128, 128, program.input_shape, dtype=np.int8)
    # a trace with no transaction: any device access would be refused
    empty = DeviceTrace([], [], DeviceTrace.load(work / "digits").device)
    assert np.array_equal(run_program(program, TraceDevice(empty), [x]).outputs[0][0], host_output)
    # and the full trace is refused when the run leaves transactions unplayed
    assert board_main(["run", str(folder), "--trace", str(work / "digits"), "--seed", "3"]) == 2
    assert "the recorded run did more" in capsys.readouterr().err


def test_a_driver_that_strays_from_the_trace_is_stopped_at_the_transaction(digits_on_the_board_way, capsys):
    work, _, _ = digits_on_the_board_way
    # another input: the first DMA send differs from the recorded one
    assert board_main(["run", str(work / "digits.board"), "--trace", str(work / "digits"), "--seed", "4"]) == 2
    assert "the driver made a send" in capsys.readouterr().err
    trace = DeviceTrace.load(work / "digits")
    device = TraceDevice(trace)
    with pytest.raises(DeviceError, match="transaction 0: the driver made a write"):
        device.write_register(0x1234, 1)


def test_programs_the_board_cannot_run_are_refused_on_the_host(board_params, tmp_path):
    with pytest.raises(ModelError, match=r"operator \d+ \(ADD\) cannot run on the board"):
        write_program(resolve_model("resnet_tiny"), GemmAccelerator(**board_params), tmp_path / "resnet.board")
    (tmp_path / "bad.board").mkdir()
    (tmp_path / "bad.board" / "program.json").write_text("{}")
    assert board_main(["run", str(tmp_path / "bad.board"), "--trace", str(tmp_path / "none")]) == 2


def test_the_gemm_driver_runs_without_amaranth(digits_on_the_board_way, board_params):
    work, _, host_output = digits_on_the_board_way
    script = f"""
import sys
sys.modules["amaranth"] = None          # any import of Amaranth now fails
from accelkit.sw.hardware.deploy.board_cli import main
sys.exit(main(["run", {str(work / "digits.board")!r}, "--trace", {str(work / "digits")!r}, "--seed", "3"]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert GemmAccelerator(**board_params).register_map() == GemmAccelerator(**board_params).core_class.register_map()
