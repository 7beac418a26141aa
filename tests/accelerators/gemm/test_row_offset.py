"""The gemm core's per-row zero-point term (ROW_OFFSET): bit- and cycle-exact on tiny designs.

A product of two activations, sum_k (a - za)(b - zb), needs -zb * rowsum(a[m])
per output row; the core adds ROW_OFFSET x the row's operand sum before
requantization. Tiny designs (rows 2..3, cols 1..3) build in seconds.
"""

import numpy as np
import pytest

from accelkit.accelerators.gemm import cost, driver
from accelkit.driver.device import DmaTiming
from accelkit.driver.layers import QuantizedGemm

DESIGNS = {
    "2x2": dict(rows=2, cols=2, data_width=16, k_max=32, a_depth=64),
    "3x1": dict(rows=3, cols=1, data_width=8, k_max=16, a_depth=64),
    "2x3": dict(rows=2, cols=3, data_width=32, k_max=16, a_depth=32),
}


def _gemms(rng, count, k_max):
    for index in range(count):
        m, n, k = int(rng.integers(1, 10)), int(rng.integers(1, 8)), int(rng.integers(1, k_max + 1))
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        # the extremes of the register's range first, then random; output scale near the spread
        offset = (-127, 128, 0)[index] if index < 3 else int(rng.integers(-127, 129))
        scale = 1.0 / (128.0 * 64.0 * np.sqrt(k) / 8.0 + abs(offset) * 64.0 * np.sqrt(k))
        yield QuantizedGemm(a, b, rng.integers(-5000, 5000, n), np.full(n, scale), "double",
                            int(rng.integers(-20, 21)), -128, 127, row_offset=offset)


@pytest.mark.parametrize("backend", ["verilator", "amaranth"])
@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_row_offset_is_bit_and_cycle_exact(device_pool, backend, design):
    params = DESIGNS[design]
    dma = DmaTiming(2, 1)
    accelerator, device = device_pool(params, backend, dma)
    rng = np.random.default_rng(sorted(DESIGNS).index(design) + 71)
    count = 12 if backend == "verilator" else 5
    for index, gemm in enumerate(_gemms(rng, count, params["k_max"])):
        out, stats = driver.run_gemm(accelerator, device, gemm)
        expected = gemm.reference()
        assert np.array_equal(out, expected), (
            f"{design} {backend} case {index} (seed {sorted(DESIGNS).index(design) + 71}) shape {gemm.shape} "
            f"row_offset {gemm.row_offset}: first difference at "
            f"{np.argwhere(out != expected)[0].tolist()}")
        assert stats.cycles == cost.gemm_cycles(params, gemm.shape, dma)


def test_row_offset_changes_the_result(device_pool):
    """The term is really applied: the same operands with ROW_OFFSET 0 give another output."""
    accelerator, device = device_pool(DESIGNS["2x2"], "verilator", DmaTiming(2, 1))
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (5, 9), dtype=np.int8)
    b = rng.integers(-128, 128, (9, 3), dtype=np.int8)
    with_term = QuantizedGemm(a, b, np.zeros(3), np.full(3, 2.0 ** -10), "double", 0, -128, 127, row_offset=77)
    without = QuantizedGemm(a, b, np.zeros(3), np.full(3, 2.0 ** -10), "double", 0, -128, 127)
    out_with, _ = driver.run_gemm(accelerator, device, with_term)
    out_without, _ = driver.run_gemm(accelerator, device, without)
    assert np.array_equal(out_with, with_term.reference())
    assert np.array_equal(out_without, without.reference())
    assert not np.array_equal(out_with, out_without)
