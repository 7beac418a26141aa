"""Control that recovers: a job that goes wrong never corrupts the next one on the same device object."""

import numpy as np
import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.accelerators.gemm.driver import input_bytes, output_bytes, pack_job, unpack_job
from accelkit.accelerators.gemm.pe import WeightLayout
from accelkit.driver.device import DmaTiming
from accelkit.errors import DeviceError, SimulationTimeout
from accelkit.hw.registers import STATUS_BUSY, STATUS_INPUT_LONG, STATUS_INPUT_SHORT
from accelkit.sw.verification.random_layers import random_gemm
from gemm_helpers import estimate_gemm, run_gemm

TINY = dict(rows=2, cols=2, data_width=32, k_max=16, a_depth=64)
BACKENDS = ["verilator", "amaranth", "cocotb"]


def _check_next_job(accelerator, device, seed):
    gemm = random_gemm(np.random.default_rng(seed), 3, 3, 5)
    out, stats = run_gemm(accelerator, device, gemm)
    assert np.array_equal(out, gemm.reference())
    assert stats.cycles == estimate_gemm(accelerator, gemm, device.dma)


def _program(accelerator, device, gemm):
    """Registers and receive buffer of a one-job GEMM; returns (input stream, programmed beats, receive buffer)."""
    p = accelerator.params
    layout = WeightLayout.from_params(p)
    m, n, k = gemm.shape
    stream = pack_job(gemm, 0, -(-m // p["rows"]), p["rows"], layout)
    beats = input_bytes(-(-m // p["rows"]), -(-n // p["cols"]), k, p["rows"], layout) // (p["data_width"] // 8)
    assert beats * p["data_width"] // 8 == stream.size
    device.configure(K=k, M_TILES=-(-m // p["rows"]), N_TILES=-(-n // p["cols"]), OUTPUT_ZERO_POINT=gemm.output_zero_point,
                     ACT_MIN=gemm.act_min, ACT_MAX=gemm.act_max, REQUANT_MODE=int(gemm.rounding == "float"),
                     IN_BEATS=beats)
    received = device.dma_receive(output_bytes(-(-m // p["rows"]), -(-n // p["cols"]), p["rows"], p["cols"],
                                               p["data_width"]))
    return stream, beats, received


@pytest.mark.parametrize("backend", BACKENDS)
def test_timed_out_job_is_aborted_and_the_same_device_runs_the_next(device_pool, backend):
    accelerator, device = device_pool(TINY, backend, DmaTiming(4, 1))
    gemm = random_gemm(np.random.default_rng(1), 4, 4, 9)
    # A budget far below the job's length: the job hangs mid-stream with data still queued.
    with pytest.raises(SimulationTimeout, match=r"budget of 12 cycles.*aborted.*STATUS=0x1") as info:
        run_gemm(accelerator, device, gemm, cycle_budget=12)
    assert info.value.status["STATUS"] & STATUS_BUSY
    assert not device.read("STATUS") & STATUS_BUSY       # the abort left the shell idle
    _check_next_job(accelerator, device, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_and_long_input_streams_end_in_error_not_in_the_next_job(device_pool, backend):
    accelerator, device = device_pool(TINY, backend, DmaTiming(4, 0))
    gemm = random_gemm(np.random.default_rng(3), 2, 2, 6)
    # Short: TLAST comes three beats early; the shell ends the job at once instead of hanging.
    stream, beats, _ = _program(accelerator, device, gemm)
    device.dma_send(stream[:-12])
    with pytest.raises(DeviceError, match=rf"ended \(TLAST\) before the IN_BEATS={beats} beats"):
        device.run(10_000)
    assert device.read("STATUS") & STATUS_INPUT_SHORT
    _check_next_job(accelerator, device, 4)
    # Long: two extra beats after the job's last; they are dropped, not taken as the next job's data.
    stream, beats, _ = _program(accelerator, device, gemm)
    device.dma_send(np.concatenate([stream, np.full(8, 0x55, np.uint8)]))
    with pytest.raises(DeviceError, match=rf"did not end \(TLAST\) on the last of.*IN_BEATS={beats}"):
        device.run(10_000)
    assert device.read("STATUS") & STATUS_INPUT_LONG
    _check_next_job(accelerator, device, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_start_refused_while_busy_and_configuration_latched_at_start(device_pool, backend):
    accelerator, device = device_pool(TINY, backend, DmaTiming(4, 0))
    gemm = random_gemm(np.random.default_rng(6), 2, 2, 7)
    _program(accelerator, device, gemm)
    # No data sent: the job waits for input, so a second start must be refused.
    device.start()
    with pytest.raises(DeviceError, match="cannot start a job while the previous one is running"):
        device.start()
    device.abort()
    assert not device.read("STATUS") & STATUS_BUSY
    # Registers written while a job runs belong to the next job, not to this one.
    stream, _, received = _program(accelerator, device, gemm)
    device.dma_send(stream)
    device.start()
    device.configure(K=3, M_TILES=5, N_TILES=2, ACT_MIN=0, IN_BEATS=1)
    device.wait(10_000)
    out = np.zeros((2, 2), np.int8)
    unpack_job(received, gemm, 0, 1, 2, 2, 32, out)
    assert np.array_equal(out, gemm.reference())
    _check_next_job(accelerator, device, 7)
