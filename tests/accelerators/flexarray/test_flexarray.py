"""flexarray on RTL with mappings the search would not pick, its reference network, sparsity, and refusals.

The generated conformance (tests/accelerators/test_conformance.py) runs the searched mappings of every
kind; here random *legal* mappings exercise the compiler's corners (short last steps, k-chunks off the
filter, empty virtual neurons, multi-beat steps, re-used maps) on the small design.
"""

from dataclasses import replace

import numpy as np
import pytest

from accelkit.accelerators.flexarray import FlexArrayAccelerator, FlexArrayCore, compiler, cost, search
from accelkit.accelerators.flexarray.random_layers import KINDS, random_layer
from accelkit.driver.device import DmaTiming
from accelkit.driver.kinds import get_kind
from accelkit.errors import ParameterError, UnsupportedLayer

SMALL = FlexArrayAccelerator.small_params


def _random_plan(accelerator, layer, x, rng):
    structure = compiler.structure_of(layer, x.shape)
    options = search.candidates(accelerator.design, structure, sparse_too=bool(np.any(structure.weights == 0)))
    for index in rng.permutation(len(options)):
        mapping = options[index]
        if rng.random() < 0.5:
            # short tiles: many READOUT handovers between the banks, PARAMS and WEIGHTS left out when held
            mapping = replace(mapping, tile_steps=int(rng.integers(1, accelerator.params["acc_depth"] + 1)))
        try:
            return accelerator.plan_with(layer, x.shape, mapping)
        except UnsupportedLayer:
            continue
    raise AssertionError(f"no legal mapping for {layer.op} on {x.shape}")


def _check(accelerator, device, layer, x, plan):
    out, stats = accelerator.run(plan, device, x)
    mapping = plan.schedule["mapping"]
    assert np.array_equal(out, layer.reference(x)), (layer.op, x.shape, mapping)
    assert stats.cycles == accelerator.estimate(plan, device.dma).cycles, (layer.op, x.shape, mapping)
    assert stats.array_macs == plan.schedule["macs_issued"], (layer.op, x.shape, mapping)


@pytest.mark.parametrize("params, dma, count", [({"rn": 0}, DmaTiming(4, 0), 16), ({"rn": 0}, DmaTiming(2, 3), 8),
                                                ({"rn": 1}, DmaTiming(8, 1), 10),
                                                ({"rn": 0, "rn_bw": 8}, DmaTiming(4, 1), 12)],
                         ids=["fan", "fan_slow_dma", "seq", "two_lane_groups"])
def test_random_legal_mappings_bit_and_cycle_exact(device_pool, params, dma, count):
    """``two_lane_groups``: 8 lanes over a 4-byte beat, read out as two beats a word through 4 requantizers."""
    accelerator, device = device_pool({**SMALL, **params}, "verilator", dma, FlexArrayAccelerator)
    rng = np.random.default_rng(100 + params["rn"] + dma.bytes_per_cycle + params.get("rn_bw", 0))
    for i in range(count):
        layer, x = random_layer(KINDS[i % len(KINDS)], rng, max_dim=10)
        _check(accelerator, device, layer, x, _random_plan(accelerator, layer, x, rng))


def test_amaranth_simulator_agrees(device_pool):
    accelerator, device = device_pool(SMALL, "amaranth", DmaTiming(4, 1), FlexArrayAccelerator)
    rng = np.random.default_rng(3)
    for kind, shape in (("gemm", dict(m=3, n=5, k=6)), ("depthwise_conv2d", dict(height=3, width=3, channels=2,
                                                                                   kernel=2))):
        layer, (x,) = get_kind(kind).random(rng, **shape)
        _check(accelerator, device, layer, x, accelerator.plan(layer, x.shape))


def test_sparse_gemm_issues_only_the_nonzero_products(device_pool):
    """SIGMA's flow: multiplies issued equal the non-zero weights times the rows, and sparsity saves cycles."""
    accelerator, device = device_pool(SMALL, "verilator", DmaTiming(4, 1), FlexArrayAccelerator)
    rng = np.random.default_rng(9)
    dense, (x,) = get_kind("gemm").random(rng, m=6, n=8, k=24)
    sparse, _ = get_kind("gemm").random(rng, m=6, n=8, k=24)
    sparse.b = (sparse.b * (rng.random(sparse.b.shape) < 0.1)).astype(np.int8)
    cycles = {}
    for name, layer in (("dense", dense), ("sparse", sparse)):
        plan = accelerator.plan(layer, x.shape)
        out, stats = accelerator.run(plan, device, x)
        assert np.array_equal(out, layer.reference(x))
        assert stats.cycles == accelerator.estimate(plan, device.dma).cycles
        cycles[name] = stats.cycles
    assert plan.schedule["mapping"]["sparse"]
    assert stats.array_macs == np.count_nonzero(sparse.b) * x.shape[0]
    assert cycles["sparse"] < 0.5 * cycles["dense"], cycles


def test_illegal_mappings_say_why():
    accelerator = FlexArrayAccelerator(**SMALL)
    rng = np.random.default_rng(0)
    gemm, (x,) = get_kind("gemm").random(rng, m=4, n=4, k=16)
    with pytest.raises(UnsupportedLayer, match=r"2 pixels x 4 channels = 8 virtual neurons per step exceed rn_bw=4"):
        accelerator.plan_with(gemm, x.shape, compiler.Mapping(rows=2, channels=4, chunk=(1,)))
    with pytest.raises(UnsupportedLayer, match=r"4 virtual neurons of 4 multipliers need 16 multipliers, more than "
                                               r"the 8"):
        accelerator.plan_with(gemm, x.shape, compiler.Mapping(rows=1, channels=4, chunk=(4,)))
    with pytest.raises(UnsupportedLayer, match=r"steps per tile must be an integer in 1..acc_depth \(16\), not 17"):
        accelerator.plan_with(gemm, x.shape, compiler.Mapping(rows=1, channels=1, chunk=(1,), tile_steps=17))
    conv, (image,) = get_kind("conv2d").random(rng, height=5, width=5, in_channels=2, out_channels=2, kernel=3)
    with pytest.raises(UnsupportedLayer, match=r"the pixel box \(1, 2\) must divide the 5x5 output"):
        accelerator.plan_with(conv, image.shape, compiler.Mapping(rows=2, channels=1, chunk=(1, 1, 2), box=(1, 2)))


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="multipliers must be one of 4, 8, 16, 32, 64, 128, not 6"):
        FlexArrayCore(multipliers=6)
    with pytest.raises(ParameterError, match=r"rn_bw \(16\) must not exceed multipliers \(8\)"):
        FlexArrayAccelerator(multipliers=8, rn_bw=16)


def _sparse(layer, rng, zeros):
    field = compiler.weights_field(layer)
    weights = getattr(layer, field)
    setattr(layer, field, (weights * (rng.random(weights.shape) >= zeros)).astype(np.int8))
    return layer


@pytest.mark.parametrize("rn_bw", [4, 8], ids=["four_lanes", "eight_lanes"])
def test_packed_and_regrouped_sparse_folds_bit_and_cycle_exact(device_pool, rn_bw):
    """Sparse folds packed to a beat budget (``step_beats``) and channels grouped by shared non-zero k
    (``regroup``): bit-exact, the cycle model equal to the RTL, multiplies issued equal the non-zero pairs."""
    accelerator, device = device_pool({**SMALL, "rn_bw": rn_bw}, "verilator", DmaTiming(4, 0), FlexArrayAccelerator)
    rng = np.random.default_rng(41 + rn_bw)
    gemm, (x,) = get_kind("gemm").random(rng, m=6, n=11, k=40)
    gemm = _sparse(gemm, rng, 0.8)
    conv, (image,) = get_kind("conv2d").random(rng, height=5, width=4, in_channels=3, out_channels=6, kernel=3)
    conv = _sparse(conv, rng, 0.7)
    cases = [(gemm, x, compiler.Mapping(rows, channels, (1,), None, True, step_beats=beats, regroup=regroup))
             for rows, channels in ((1, rn_bw), (2, rn_bw // 2)) for beats in (1, 2, 3)
             for regroup in (False, True)]
    cases += [(conv, image, compiler.Mapping(rows, channels, (1, 1, 1), box, True, step_beats=beats, regroup=True))
              for rows, channels, box in ((1, rn_bw, (1, 1)), (2, rn_bw // 2, (1, 2))) for beats in (1, 2)]
    for layer, data, mapping in cases:
        plan = accelerator.plan_with(layer, data.shape, mapping)
        _check(accelerator, device, layer, data, plan)
        if layer is gemm:
            assert plan.schedule["macs_issued"] == np.count_nonzero(gemm.b) * data.shape[0], mapping


def test_sparse_folds_keep_their_budgets():
    """Every non-zero weight on one multiplier of one fold; a fold's steps within ``step_beats`` beats and its
    non-zeros within the multipliers; regrouped channels a partition with no more distinct k than consecutive."""
    design = compiler.Design(16, 4, 8, 64)
    rng = np.random.default_rng(5)
    layer, (x,) = get_kind("gemm").random(rng, m=7, n=24, k=96)
    layer = _sparse(layer, rng, 0.85)
    structure = compiler.structure_of(layer, x.shape)
    nonzero = structure.weights != 0
    for rows, channels in ((1, 8), (2, 4)):
        for beats in (1, 2, 3, 5):
            for regroup in (False, True):
                mapping = compiler.Mapping(rows, channels, (1,), None, True, step_beats=beats, regroup=regroup)
                groups = compiler.channel_groups(structure, mapping)
                assert sorted(c for g in groups for c in g) == list(range(structure.n))
                assert all(len(g) <= channels for g in groups)
                program = compiler.compile_program(design, structure, mapping)
                seen = np.zeros_like(nonzero, dtype=np.int64)
                for tile in program.tiles:
                    for fold in tile.folds:
                        assert fold.per_step <= beats and fold.used <= design.multipliers
                for group in groups:
                    for ks_of in compiler._sparse_chunks(structure, mapping, design, group):
                        ks = ks_of(0)
                        assert nonzero[np.ix_(ks, group)].sum() * rows <= design.multipliers
                        seen[np.ix_(ks, group)] += 1
                assert np.array_equal(seen * nonzero, nonzero.astype(np.int64)), (rows, beats, regroup)
    distinct = lambda groups: sum(int(nonzero[:, g].any(axis=1).sum()) for g in groups)   # noqa: E731
    regrouped = compiler.channel_groups(structure, compiler.Mapping(1, 8, (1,), None, True, regroup=True))
    consecutive = compiler.channel_groups(structure, compiler.Mapping(1, 8, (1,), None, True))
    assert distinct(regrouped) < distinct(consecutive)


def test_sparse_fields_round_trip_and_are_checked():
    mapping = compiler.Mapping(1, 4, (1,), None, True, step_beats=2, regroup=True)
    assert compiler.Mapping.from_dict(mapping.as_dict()) == mapping
    dense = compiler.Mapping(1, 4, (2,))
    assert "step_beats" not in dense.as_dict() and compiler.Mapping.from_dict(dense.as_dict()) == dense
    accelerator = FlexArrayAccelerator(**SMALL)
    gemm, (x,) = get_kind("gemm").random(np.random.default_rng(0), m=4, n=4, k=16)
    with pytest.raises(UnsupportedLayer, match="step_beats and regroup shape sparse folds; this mapping is dense"):
        accelerator.plan_with(gemm, x.shape, compiler.Mapping(1, 2, (2,), step_beats=1))
    with pytest.raises(UnsupportedLayer, match=r"beats per step must be an integer in 1..255, not 0"):
        accelerator.plan_with(gemm, x.shape, compiler.Mapping(1, 2, (1,), None, True, step_beats=0))


def test_sparse_gemm_cycles_against_dense_on_the_default_design():
    """The bench's GEMM (64x64x256, seed 0's weights) at 90% zero weights on the default design, cost model:
    within 0.37x of the dense run (0.44x before folds were packed to beats and channels regrouped). The
    reduction lanes bound it: a group of ``rn_bw`` channels streams every k any of them needs, so the
    input is streamed about ``N / rn_bw`` times (see the README)."""
    from accelkit.sw.benchmarks.flexarray import FLEX, IRREGULAR, SPARSE
    rng = np.random.default_rng(0)
    for _, kind, shape in IRREGULAR:
        get_kind(kind).random(rng, **shape)
    shape, _ = SPARSE
    layer, (x,) = get_kind("gemm").random(rng, **shape)
    design = FlexArrayAccelerator(**FLEX).design
    cycles = {}
    for zeros in (0.0, 0.9):
        layer.b = (layer.b * (rng.random(layer.b.shape) >= zeros)).astype(np.int8)
        structure = compiler.structure_of(layer, x.shape)
        mapping = search.best_mapping(design, structure)
        program = compiler.compile_program(design, structure, mapping, skeleton=True)
        cycles[zeros] = cost.program_cycles(design, program, search.SEARCH_DMA)
    assert cycles[0.9] <= 0.37 * cycles[0.0], cycles
