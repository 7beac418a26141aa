"""PoTAcc: shift-PE columns against the golden model and the cost model, weight packing, declines."""

import dataclasses

import numpy as np
import pytest

from accelkit.accelerators.gemm.pe import WeightLayout, on_shift_grid, shift_fields
from accelkit.accelerators.potacc import PotAccelerator, column_plan
from accelkit.driver.device import DmaTiming
from accelkit.errors import ParameterError, UnsupportedLayer
from accelkit.sw.verification.random_layers import random_gemm
from tests_params import ODD_PARAMS, SMALL_PARAMS
from accelkit.driver.kinds.gemm import Gemm
from gemm_helpers import gemm_plan, run_gemm


def grid_weights(rng, shape, terms):
    """Random int8 weights on the power-of-two grid (zeros included)."""
    high = rng.integers(0, 7, shape)
    low = rng.integers(-1, 7, shape) if terms == 2 else np.full(shape, -1)
    low = np.where(low >= high, -1, low)
    magnitude = (1 << high) + np.where(low >= 0, 1 << np.maximum(low, 0), 0)
    magnitude = np.where(rng.random(shape) < 0.1, 0, magnitude)
    return (np.where(rng.random(shape) < 0.5, -1, 1) * magnitude).astype(np.int8)


def pot_gemm(rng, m, n, k, terms, uniform_channels=()):
    gemm = random_gemm(rng, m, n, k)
    b = grid_weights(rng, (k, n), terms)
    for j in uniform_channels:
        b[:, j] = rng.integers(-127, 128, k)
        b[0, j] = 7                           # surely off the grid
    return dataclasses.replace(gemm, b=b)


def test_shift_fields_and_grid():
    assert shift_fields(np.array([0, 1, -4, 64]), 1).tolist() == [0, 0x1, 0xB, 0x7]
    # 3 = 2 + 1: larger exponent in the low nibble; -96 = -(64 + 32)
    assert shift_fields(np.array([3, -96]), 2).tolist() == [0x12, 0xEF]
    assert on_shift_grid(np.array([5, 6, 7, -128, 127]), 2).tolist() == [True, True, False, False, False]
    with pytest.raises(ParameterError, match="weight 5 is not on the 1-term"):
        shift_fields(np.array([4, 5]), 1)


def test_weight_layout_packs_narrow_words():
    layout = WeightLayout(cols=4, mult_cols=0, terms=1, data_width=32)     # 16-bit words, two per beat
    assert (layout.word_bits, layout.words_per_row, layout.b_beats(5)) == (16, 2, 3)
    b = np.array([[1, 2, 4, 8], [-1, 0, 0, 64], [16, 16, 16, 16]], dtype=np.int8)[None]
    stream = layout.encode(b)
    assert stream.shape == (1, 8)
    assert stream[0].tolist() == [0x21, 0x43, 0x09, 0x70, 0x55, 0x55, 0, 0]
    # MSQ: a multiplier column keeps its int8 byte
    mixed = WeightLayout(cols=2, mult_cols=1, terms=2, data_width=16)
    assert mixed.encode(np.array([[[-3, 3]]], dtype=np.int8))[0].tolist() == [0xFD, 0x12]


def test_column_plan_places_off_grid_channels_on_multipliers():
    layout = WeightLayout(cols=4, mult_cols=1, terms=2, data_width=32)
    b = np.ones((3, 6), dtype=np.int8)
    b[0, [1, 4]] = 7
    plan = column_plan(b, layout)
    assert plan.size == 8 and sorted(plan[plan >= 0].tolist()) == list(range(6))
    assert set(plan[[0, 4]].tolist()) == {1, 4}          # slot 0 of each tile multiplies
    with pytest.raises(UnsupportedLayer, match="no multiplier columns"):
        column_plan(b, WeightLayout(cols=4, mult_cols=0, terms=2, data_width=32))


def test_invalid_parameters_are_named():
    with pytest.raises(ParameterError, match="mult_cols"):
        PotAccelerator(cols=4, mult_cols=5)
    with pytest.raises(ParameterError, match="terms"):
        PotAccelerator(terms=3)


DESIGNS = [
    # (id, params, dma, terms, uniform channels per GEMM)
    ("pot_small", dict(SMALL_PARAMS, terms=1, mult_cols=0), DmaTiming(4, 3), 1, 0),
    ("apot_odd", dict(ODD_PARAMS, terms=2, mult_cols=0), DmaTiming(1, 1), 2, 0),
    ("msq_small", dict(SMALL_PARAMS, terms=2, mult_cols=1), DmaTiming(8, 0), 2, 3),
]


@pytest.mark.parametrize("name, params, dma, terms, uniform", DESIGNS, ids=[d[0] for d in DESIGNS])
def test_rtl_matches_golden_and_cost_model(device_pool, name, params, dma, terms, uniform):
    accelerator, device = device_pool(params, "verilator", dma, PotAccelerator)
    rng = np.random.default_rng(len(name))
    for case in range(12):
        m, n, k = (int(v) for v in rng.integers(1, 20, 3))
        k = int(rng.integers(1, 40)) if case % 3 else k
        channels = rng.choice(n, min(uniform, n), replace=False) if uniform else ()
        gemm = pot_gemm(rng, m, n, k, terms, channels)
        out, stats = run_gemm(accelerator, device, gemm)
        assert np.array_equal(out, gemm.reference()), (name, case, gemm.shape)
        plan, _ = gemm_plan(accelerator, gemm)
        estimate = accelerator.estimate(plan, device.dma)
        assert stats.cycles == estimate.cycles, (name, case, gemm.shape, stats.cycles, estimate.cycles)
        assert stats.bytes_in == estimate.bytes_in and stats.macs == gemm.macs


def test_pot_weights_move_fewer_bytes_than_int8(device_pool):
    from accelkit.accelerators.gemm import GemmAccelerator
    rng = np.random.default_rng(5)
    gemm = pot_gemm(rng, 8, 8, 30, 1)
    pot, pot_device = device_pool(dict(SMALL_PARAMS, terms=1, mult_cols=0), "verilator", DmaTiming(4, 3),
                                  PotAccelerator)
    gemm_accel = GemmAccelerator(**SMALL_PARAMS)
    _, pot_stats = run_gemm(pot, pot_device, gemm)
    int8_stats = gemm_accel.estimate(gemm_plan(gemm_accel, gemm)[0], DmaTiming(4, 3))
    assert pot_stats.extra["weight_bytes"] * 2 == int8_stats.extra["weight_bytes"]


def test_off_grid_layer_is_declined_with_reason():
    rng = np.random.default_rng(0)
    gemm = random_gemm(rng, 4, 4, 16)
    layer, a = Gemm.of(gemm)
    ok, reason = PotAccelerator(**SMALL_PARAMS).supports(layer, a.shape)
    assert not ok and "off the 1-term power-of-two grid" in reason


@pytest.mark.parametrize("params, expected_mul", [
    (dict(terms=1, mult_cols=0), 0),      # PoT: shifts only
    (dict(terms=2, mult_cols=0), 0),      # APoT: shifts and adds only
    (dict(terms=2, mult_cols=1), 2),      # MSQ: one multiplier per PE of the uniform column (2 rows)
])
def test_pe_grid_multipliers_before_mapping(params, expected_mul):
    from accelkit.accelerators.gemm import GemmAccelerator
    from accelkit.sw.commands.resources import pe_array_resources
    small = dict(rows=2, cols=3)
    estimate = pe_array_resources(PotAccelerator(**small, **params))
    assert estimate.mul_cells_before_mapping == expected_mul
    if expected_mul == 0:
        assert estimate.dsp == 0
    # the multiplier GEMM of the same size has one $mul per PE
    assert pe_array_resources(GemmAccelerator(**small)).mul_cells_before_mapping == 6
