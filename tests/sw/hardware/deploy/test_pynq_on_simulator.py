"""PYNQ's unmodified Overlay, MMIO/DefaultIP, allocate and AXI DMA driver, on the RTL simulation.

Runs in the PYNQ environment (.venv-pynq, see scripts/pynq-requirements.txt; the main suite
starts it through test_pynq_environment.py). The overlay is the synthetic handoff of the
export's block design; the fake pynq.Device drives the native Verilator simulation.
"""

from pathlib import Path

import numpy as np
import pytest

try:
    import pynq
    from pynq.lib.dma import DMA
except ImportError as error:      # the main venv has no PYNQ: numpy 2 (see scripts/pynq-requirements.txt)
    pytest.skip(f"PYNQ is not importable here ({error}); this module runs in .venv-pynq", allow_module_level=True)

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.driver.trace import DeviceTrace, replay
from accelkit.sw.execution.devices import open_device
from accelkit.sw.execution.executors import DeviceExecutor
from accelkit.sw.frontends.tflite.runner import DelegatedModel
from accelkit.sw.hardware.deploy.hwh import SYNTHETIC_MARK
from accelkit.sw.hardware.deploy.simulated_board import open_simulated_board

ZOO = Path(__import__("accelkit.sw.zoo", fromlist=["_"]).__file__).parent
DIGITS = str(ZOO / "models" / "digits_cnn.tflite")


@pytest.fixture(scope="module")
def accelerator():
    return GemmAccelerator()          # the default 8x8 design, the one `make demo` builds


@pytest.fixture(scope="module")
def board(accelerator, tmp_path_factory):
    device, fake = open_simulated_board(accelerator, tmp_path_factory.mktemp("overlay"))
    yield device, fake
    device.close()
    fake.close()


@pytest.fixture(scope="module")
def simulator(accelerator):
    device = open_device(accelerator, "verilator")
    yield device
    device.close()


def test_overlay_binds_pynq_drivers_from_the_synthetic_handoff(board, accelerator):
    device, fake = board
    overlay = device.overlay
    assert SYNTHETIC_MARK in Path(overlay.bitfile_name).with_suffix(".hwh").read_text()
    assert overlay.ip_dict["accelerator_0"]["type"] == f"accelkit:accelkit:{accelerator.top_name}:1.0"
    assert overlay.ip_dict["accelerator_0"]["phys_addr"] == 0x43C0_0000
    assert isinstance(overlay.axi_dma_0, DMA)                  # PYNQ's own driver, bound by VLNV
    assert isinstance(overlay.accelerator_0, pynq.DefaultIP)
    assert device.data_width == accelerator.params["data_width"]


def test_layer_through_pynq_is_bit_exact_with_the_simulator(board, simulator, accelerator):
    device, fake = board
    rng = np.random.default_rng(7)
    layer, inputs = accelerator.random_layer("conv2d", rng, height=9, width=7, in_channels=5, out_channels=11,
                                             stride=2)
    plan = accelerator.plan(layer, *(x.shape for x in inputs))
    jobs_before = fake.jobs
    out, stats = accelerator.run(plan, device, *inputs)
    direct, direct_stats = accelerator.run(plan, simulator, *inputs)
    np.testing.assert_array_equal(out, direct)
    np.testing.assert_array_equal(out, layer.reference(*inputs))
    assert fake.jobs > jobs_before
    # The same work; the PYNQ path starts the DMA after the start write, so its cycle
    # count may only exceed the simulator's by the DMA programming writes.
    assert stats.macs == direct_stats.macs
    assert direct_stats.cycles <= stats.cycles <= direct_stats.cycles + 64 * fake.jobs


def test_digits_cnn_runs_end_to_end_through_pynq(board, simulator, accelerator, tmp_path):
    device, fake = board
    x = np.load(ZOO / "data" / "digits_test_x.npy")[:3]
    through_pynq = DelegatedModel(DIGITS, DeviceExecutor(accelerator, device))
    direct = DelegatedModel(DIGITS, DeviceExecutor(accelerator, simulator))
    start = len(fake.trace.entries)
    for sample in x:
        a, b = through_pynq.invoke(sample[None]), direct.invoke(sample[None])
        for left, right in zip(a, b):
            np.testing.assert_array_equal(left, right)
    # The accelerator's transactions are recorded through driver/trace.py, in the format replays take:
    # saved, loaded, and played on the direct simulator, every received byte is as recorded.
    trace = fake.trace
    assert {entry["op"] for entry in trace.entries[start:]} == {"write", "read", "send", "receive", "run"}
    trace.save(tmp_path / "digits")
    loaded = DeviceTrace.load(tmp_path / "digits")
    assert loaded.entries == trace.entries and loaded.device["registers"] == trace.device["registers"]
    report = replay(DeviceTrace(loaded.entries[start:], loaded.payloads, loaded.device), simulator)
    assert report.ok, report.mismatches[:3]
    assert report.jobs >= 5 * len(x) and report.receives == report.jobs


def test_a_verilator_trace_replays_through_pynq(board, simulator, accelerator):
    """Bring-up by replay: a trace recorded on the simulator, played through PYNQ's MMIO and DMA driver."""
    from accelkit.driver.trace import RecordingDevice
    device, fake = board
    layer, inputs = accelerator.random_layer("fc", np.random.default_rng(4), batch=3, k=40, n=12)
    recorder = RecordingDevice(simulator)
    accelerator.run(accelerator.plan(layer, *(x.shape for x in inputs)), recorder, *inputs)
    report = replay(recorder.trace, device)
    assert report.ok, report.mismatches
    assert report.jobs >= 1 and report.receives >= 1

@pytest.mark.slow
def test_mobilenet_v2_runs_through_pynq_bit_exact(board, simulator, accelerator):
    device, fake = board
    model = str(ZOO / "models" / "mobilenet_v2.tflite")
    through_pynq = DelegatedModel(model, DeviceExecutor(accelerator, device))
    direct = DelegatedModel(model, DeviceExecutor(accelerator, simulator))
    x = np.random.default_rng(0).integers(-128, 128, through_pynq.input_detail["shape"], dtype=np.int8)
    jobs_before = fake.jobs
    for left, right in zip(through_pynq.invoke(x), direct.invoke(x)):
        np.testing.assert_array_equal(left, right)
    assert fake.jobs - jobs_before > 50        # every offloaded layer went through PYNQ's DMA driver


def test_kv260_overlay_maps_the_zynq_ultrascale_addresses(accelerator, tmp_path):
    from accelkit.sw.hardware.deploy.block_design import block_design
    from accelkit.sw.hardware.deploy.boards import get_board
    from accelkit.sw.hardware.deploy.hwh import write_synthetic_overlay
    design = block_design(get_board("kv260"), top=accelerator.top_name, data_width=64, clock_mhz=150)
    bitfile = write_synthetic_overlay(design, tmp_path)
    from accelkit.sim.pynq_fake import simulated_pynq_device

    class NoSimulator:                          # only the metadata is read here
        register_map = accelerator.register_map()

    fake = simulated_pynq_device(NoSimulator(), accel_base=0xA001_0000, dma_base=0xA000_0000, record=False)
    overlay = pynq.Overlay(str(bitfile), download=False, device=fake)
    assert overlay.ip_dict["accelerator_0"]["phys_addr"] == 0xA001_0000
    assert overlay.ip_dict["axi_dma_0"]["phys_addr"] == 0xA000_0000
    assert isinstance(overlay.axi_dma_0, DMA)
