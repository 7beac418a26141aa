"""The board-side bundle: a wheel with the device layer only, installed into a clean environment.

The clean venv gets numpy, pyserial and the bundle, and no accelkit, Amaranth, Verilator, LiteRT or TVM.
Its `accelkit-board replay` plays a trace recorded on Verilator over pyserial's socket:// to the simulated
gateware of the serial link (shell and core in Amaranth's simulator, served from this process): the
board-side code path of an ECP5 board, minus the board.
"""

import json
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


def test_the_bundled_modules_stand_alone_and_parse_as_python_3_10():
    assert BOARD_PYTHON == (3, 10)
    assert check_bundle_sources() == []


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory):
    work = tmp_path_factory.mktemp("bundle")
    wheel = build_bundle(work / "dist")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
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
