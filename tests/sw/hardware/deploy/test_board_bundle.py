"""The board-side bundle, installed into a clean environment: the board's Python when this machine has it.

The clean venv gets numpy, rich, pyserial and the bundle, and no accelkit, Amaranth, Verilator, LiteRT or
TVM; it is made with Python 3.10 (what PYNQ images run) when a 3.10 interpreter is installed (pyenv's, or
python3.10 on the path), else with this interpreter, and the tests say which. Its `accelkit-board replay`
plays a trace recorded on Verilator over pyserial's socket:// to the simulated gateware of the serial link
(shell and core in Amaranth's simulator, served from this process): the board-side code path of an ECP5
board, minus the board. Its `accelkit-board run` runs digits_cnn's board program against a recorded
Verilator run (see test_board_run.py), bit-exact with `accelkit run`.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.sw.hardware.deploy.board_cli import main as board_main
from accelkit.driver.kinds import get_kind
from accelkit.driver.trace import RecordingDevice
from accelkit.hw.serial_link import SerialShellTop
from accelkit.sim.serial_sim import SimulatedSerialPort
from accelkit.sw.hardware.deploy.bundle import BOARD_PYTHON, build_bundle, check_bundle_sources

PARAMS = {"rows": 2, "cols": 2, "data_width": 32, "k_max": 16, "a_depth": 16}


def _python_310():
    """A working Python 3.10 interpreter, or None."""
    candidates = [shutil.which("python3.10"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))]
    for candidate in filter(None, candidates):
        found = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == "(3, 10)":
            return candidate
    return None


def test_the_bundled_modules_stand_alone_and_parse_as_python_3_10():
    assert BOARD_PYTHON == (3, 10)
    assert check_bundle_sources() == []


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory):
    work = tmp_path_factory.mktemp("bundle")
    wheel = build_bundle(work / "dist")
    venv = work / "venv"
    subprocess.run([_python_310() or sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel) + "[serial]"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if install.returncode != 0:
        pytest.fail(f"installing the bundle into a clean venv failed:\n{install.stdout[-3000:]}")
    return venv


def test_the_clean_environment_has_no_heavy_dependencies(clean_venv):
    python = str(clean_venv / "bin" / "python")
    for module in ("accelkit", "amaranth", "verilator", "ai_edge_litert", "tvm", "cocotb"):
        found = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is importable in the clean venv"
    info = subprocess.run([str(clean_venv / "bin" / "accelkit-board"), "info"], capture_output=True, text=True)
    assert info.returncode == 0 and "pynq: not installed" in info.stdout and "serial 3.5" in info.stdout


def test_a_simulator_trace_replays_from_the_bundle_over_a_serial_socket(clean_venv, device_pool, tmp_path):
    accelerator, verilator = device_pool(PARAMS)
    layer, (x,) = get_kind("fc").random(np.random.default_rng(11), batch=2, k=10, n=3)
    recorder = RecordingDevice(verilator)
    output, _ = accelerator.run(accelerator.plan(layer, x.shape), recorder, x)
    assert np.array_equal(output, layer.reference(x))
    recorder.trace.save(tmp_path / "fc")

    port = SimulatedSerialPort(SerialShellTop(GemmAccelerator(**PARAMS).shell(), divisor=4, chunk_beats=8,
                                              synchronize=False, uart=False))
    tcp_port, server = port.serve_tcp()
    run = subprocess.run([str(clean_venv / "bin" / "accelkit-board"), "replay", str(tmp_path / "fc"),
                          "--serial", f"socket://127.0.0.1:{tcp_port}", "--divisor", "4", "--chunk-beats", "8",
                          "--timeout", "10", "--json", str(tmp_path / "replay.json")],
                         capture_output=True, text=True, timeout=600)
    server.join(timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "bit-exact: every received byte" in run.stdout
    report = json.loads((tmp_path / "replay.json").read_text())
    assert report["ok"] and report["jobs"] >= 1 and report["receives"] >= 1 and report["mismatches"] == []


def test_board_command_errors_are_messages(tmp_path, capsys):
    assert board_main(["replay", str(tmp_path / "missing"), "--serial", "loop://"]) == 2
    assert "not a readable device trace" in capsys.readouterr().err


def test_the_clean_environment_is_the_boards_python(clean_venv):
    version = subprocess.run([str(clean_venv / "bin" / "python"), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    if _python_310() is None:
        pytest.skip(f"no Python 3.10 interpreter here: the clean venv runs Python {version}, so 3.10 is "
                    "checked on the source only (check_bundle_sources)")
    assert version == "(3, 10)"


def test_a_model_runs_from_the_bundle_bit_exact_with_accelkit_run(clean_venv, digits_on_the_board_way, tmp_path):
    work, host, host_output = digits_on_the_board_way
    run = subprocess.run([str(clean_venv / "bin" / "accelkit-board"), "run", str(work / "digits.board"),
                          "--trace", str(work / "digits"), "--seed", "3", "--output", str(tmp_path / "out.npy"),
                          "--json", str(tmp_path / "board.json")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert np.array_equal(np.load(tmp_path / "out.npy"), host_output)
    board = json.loads((tmp_path / "board.json").read_text())
    assert [layer["cycles"] for layer in board["layers"]] == [layer["cycles"] for layer in host["layers"]]
    assert "layers offloaded 5 of 7" in run.stdout
