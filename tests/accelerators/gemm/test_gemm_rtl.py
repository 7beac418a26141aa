"""The GEMM accelerator against its golden model and its cost model, on every backend."""

import numpy as np
import pytest

from accelkit.driver.device import DmaTiming
from accelkit.errors import SimulationTimeout, DeviceError
from accelkit.sw.verification.conformance import check_case, edge_cases, sweep
from accelkit.sw.verification.random_layers import random_gemm
from tests_params import DEFAULT_PARAMS, ODD_PARAMS, SMALL_PARAMS
from accelkit.driver.kinds.gemm import Gemm
from gemm_helpers import estimate_gemm, run_gemm

# Verilator sweep: 3 designs x DMA settings, >= 200 seeded cases in all.
#: fixed seeds (not hash(name): Python randomises string hashes per process)
SEEDS = {"default": 101, "small": 202, "odd": 303, "small_fast_dma": 404}
SWEEP = [
    ("default", DEFAULT_PARAMS, DmaTiming(8, 0), 70, 64, 300),
    ("small", SMALL_PARAMS, DmaTiming(4, 3), 70, 24, None),
    ("odd", ODD_PARAMS, DmaTiming(1, 1), 60, 20, None),
    ("small_fast_dma", SMALL_PARAMS, DmaTiming(16, 2), 20, 24, None),
]


def _assert_results(results):
    failures = [r.mismatch for r in results if not r.bit_exact]
    assert not failures, "\n".join(failures[:10])
    drift = [(r.case.name, r.cycles, r.estimated_cycles) for r in results if r.cycles != r.estimated_cycles]
    # The cost model is exact for this deterministic design: tolerance 0 cycles.
    assert not drift, f"cost model differs from RTL cycles: {drift[:10]}"


@pytest.mark.parametrize("name, params, dma, count, max_dim, max_k", SWEEP, ids=[s[0] for s in SWEEP])
def test_verilator_sweep_matches_golden_and_cost_model(device_pool, name, params, dma, count, max_dim, max_k):
    accelerator, device = device_pool(params, "verilator", dma)
    cases = [case for index, kind in enumerate(("gemm", "conv2d", "fc"))
             for case in sweep(accelerator, kind, seed=SEEDS[name] + index, count=count // 3,
                               limits={"max_dim": max_dim, "max_k": max_k or 2048})]
    _assert_results([check_case(accelerator, device, case) for case in cases])


@pytest.mark.parametrize("params", [SMALL_PARAMS, ODD_PARAMS], ids=["small", "odd"])
def test_verilator_edge_cases(device_pool, params):
    accelerator, device = device_pool(params, "verilator", DmaTiming(4, 2))
    cases = edge_cases(accelerator, np.random.default_rng(7))
    _assert_results([check_case(accelerator, device, case) for case in cases])


def test_large_gemm_reaches_high_utilization(device_pool):
    accelerator, device = device_pool(DEFAULT_PARAMS, "verilator", DmaTiming(8, 0))
    gemm = random_gemm(np.random.default_rng(3), 256, 256, 256)
    out, stats = run_gemm(accelerator, device, gemm)
    assert np.array_equal(out, gemm.reference())
    assert stats.cycles == estimate_gemm(accelerator, gemm, device.dma)
    assert stats.utilization >= 0.85, stats.as_dict()
    assert stats.array_macs == stats.busy_cycles * accelerator.pes


def test_amaranth_small_sweep(device_pool):
    accelerator, device = device_pool(SMALL_PARAMS, "amaranth", DmaTiming(4, 3))
    cases = sweep(accelerator, "conv2d", seed=11, count=3, limits={"max_dim": 9, "max_k": 12}) + \
        sweep(accelerator, "gemm", seed=11, count=3, limits={"max_dim": 9, "max_k": 12})
    _assert_results([check_case(accelerator, device, case) for case in cases])


def test_same_program_same_cycles_on_every_backend(device_pool):
    """Outputs and every hardware counter agree across Verilator, Amaranth and cocotb."""
    dma = DmaTiming(2, 5)
    gemms = [random_gemm(np.random.default_rng(s), m, n, k) for s, (m, n, k) in enumerate([(5, 6, 7), (9, 3, 20)])]
    seen = {}
    for backend in ("verilator", "amaranth", "cocotb"):
        accelerator, device = device_pool(SMALL_PARAMS, backend, dma)
        seen[backend] = []
        for gemm in gemms:
            out, stats = run_gemm(accelerator, device, gemm)
            assert np.array_equal(out, gemm.reference()), backend
            seen[backend].append((stats.cycles, stats.busy_cycles, stats.in_stall_cycles, stats.out_stall_cycles,
                                  stats.array_macs))
    assert seen["verilator"] == seen["amaranth"] == seen["cocotb"], seen


def test_hung_job_stops_at_cycle_budget_with_status(device_pool):
    accelerator, device = device_pool(SMALL_PARAMS, "verilator", DmaTiming(4, 0))
    # Promise two column tiles but send none (and leave the stream length unchecked,
    # IN_BEATS=0): the loader waits for input forever.
    device.configure(K=8, M_TILES=1, N_TILES=2, OUTPUT_ZERO_POINT=0, ACT_MIN=-128, ACT_MAX=127, IN_BEATS=0)
    device.dma_send(np.zeros(8 * 4, np.uint8))
    device.dma_receive(4 * 4 * 2)
    with pytest.raises(SimulationTimeout, match=r"within its cycle budget of 500 cycles.*STATUS=0x1") as info:
        device.run(500)
    assert info.value.status["CYCLES"] >= 500
    # The job was aborted: the same device object runs the next job bit-exact.
    gemm = random_gemm(np.random.default_rng(0), 4, 4, 4)
    out, _ = run_gemm(accelerator, device, gemm)
    assert np.array_equal(out, gemm.reference())


def test_partial_beats_refused(device_pool):
    _, device = device_pool(SMALL_PARAMS, "verilator", DmaTiming(4, 0))
    with pytest.raises(DeviceError, match="not a positive whole number of 4-byte beats"):
        device.dma_send(np.zeros(6, np.uint8))


def test_unsupported_depth_declined(device_pool):
    accelerator, _ = device_pool(SMALL_PARAMS, "verilator", DmaTiming(4, 0))
    gemm = random_gemm(np.random.default_rng(0), 2, 2, SMALL_PARAMS["k_max"] + 1)
    layer, a = Gemm.of(gemm)
    supported, reason = accelerator.supports(layer, a.shape)
    assert not supported and "exceeds k_max=64" in reason


def test_cocotb_small_sweep(device_pool):
    accelerator, device = device_pool(SMALL_PARAMS, "cocotb", DmaTiming(4, 3))
    cases = sweep(accelerator, "fc", seed=12, count=2, limits={"max_dim": 9, "max_k": 12}) + \
        sweep(accelerator, "gemm", seed=12, count=2, limits={"max_dim": 9, "max_k": 12})
    _assert_results([check_case(accelerator, device, case) for case in cases])


@pytest.mark.iverilog
def test_cocotb_on_icarus_matches_verilator(device_pool):
    from accelkit.sim.cocotb_device import CocotbDevice
    from accelkit.accelerators.gemm import GemmAccelerator
    accelerator = GemmAccelerator(**SMALL_PARAMS)
    gemm = random_gemm(np.random.default_rng(5), 6, 5, 9)
    _, native = device_pool(SMALL_PARAMS, "verilator", DmaTiming(2, 1))
    expected = run_gemm(accelerator, native, gemm)[1]
    with CocotbDevice.from_shell(accelerator.shell(), accelerator.top_name, DmaTiming(2, 1),
                                 simulator="icarus") as device:
        out, stats = run_gemm(accelerator, device, gemm)
    assert np.array_equal(out, gemm.reference())
    assert (stats.cycles, stats.in_stall_cycles) == (expected.cycles, expected.in_stall_cycles)


def _double_rounding_ties(count, seed=0):
    """(acc, scale) pairs whose exact product is just off k + 0.5 but whose double product is exactly k + 0.5."""
    from fractions import Fraction
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        acc = int(rng.integers(1 << 20, 1 << 30)) * int(rng.choice([-1, 1]))
        k = int(rng.integers(0, 100))
        target = (k + 0.5) / abs(acc)
        scale = float(np.nextafter(target, 0.0) if rng.random() < 0.5 else np.nextafter(target, 1.0))
        if abs(float(acc) * scale) == k + 0.5 and abs(Fraction(acc) * Fraction(scale)) != Fraction(2 * k + 1, 2):
            found.append((acc, scale))
    return found


def test_float_requantization_rounds_products_like_a_double(device_pool):
    """Where rounding the product to 53 bits decides the integer, the RTL must follow the double multiply."""
    from accelkit.driver.layers import QuantizedGemm
    accelerator, device = device_pool(SMALL_PARAMS, "verilator", DmaTiming(8, 0))
    ties = _double_rounding_ties(12)
    gemm = QuantizedGemm(np.zeros((1, 1), np.int8), np.zeros((1, len(ties)), np.int8), [a for a, _ in ties],
                         [s for _, s in ties], "float")
    out, _ = run_gemm(accelerator, device, gemm)
    assert np.array_equal(out, gemm.reference())
    from fractions import Fraction
    from math import floor
    # What exact arithmetic would give differs on some of them: the 53-bit rounding matters.
    exact = [int(np.sign(a)) * floor(abs(Fraction(a) * Fraction(s)) + Fraction(1, 2)) for a, s in ties]
    assert [int(v) for v in out[0]] != exact
