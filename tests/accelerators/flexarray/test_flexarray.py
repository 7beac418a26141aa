"""flexarray on RTL with mappings the search would not pick, its reference network, sparsity, and refusals.

The generated conformance (tests/accelerators/test_conformance.py) runs the searched mappings of every
kind; here random *legal* mappings exercise the compiler's corners (short last steps, k-chunks off the
filter, empty virtual neurons, multi-beat steps, re-used maps) on the small design.
"""

from dataclasses import replace

import numpy as np
import pytest

from accelkit.accelerators.flexarray import FlexArrayAccelerator, FlexArrayCore, compiler, cost, search
from accelkit.accelerators.flexarray.driver import _run_job, program_of
from accelkit.accelerators.flexarray.random_layers import KINDS, random_layer
from accelkit.driver.device import DmaTiming
from accelkit.driver.kinds import get_kind
from accelkit.errors import ParameterError, UnsupportedLayer

SMALL = FlexArrayAccelerator.small_params


def _random_plan(accelerator, layer, inputs, rng):
    shapes = tuple(x.shape for x in inputs)
    structure = compiler.structure_of(layer, *shapes)
    options = search.candidates(accelerator.design, structure, sparse_too=bool(np.any(structure.weights == 0)))
    for index in rng.permutation(len(options)):
        mapping = options[index]
        if rng.random() < 0.5:
            # short tiles: many READOUT handovers between the banks, PARAMS and WEIGHTS left out when held
            mapping = replace(mapping, tile_steps=int(rng.integers(1, accelerator.params["acc_depth"] + 1)))
        try:
            return accelerator.plan_with(layer, shapes if len(shapes) > 1 else shapes[0], mapping)
        except UnsupportedLayer:
            continue
    raise AssertionError(f"no legal mapping for {layer.op} on {shapes}")


def _check(accelerator, device, layer, inputs, plan):
    out, stats = accelerator.run(plan, device, *inputs)
    mapping = plan.schedule["mapping"]
    shapes = [x.shape for x in inputs]
    assert np.array_equal(out, layer.reference(*inputs)), (layer.op, shapes, mapping)
    assert np.array_equal(accelerator.golden(plan, *inputs), out), (layer.op, shapes, mapping)
    assert stats.cycles == accelerator.estimate(plan, device.dma).cycles, (layer.op, shapes, mapping)
    assert stats.array_macs == plan.schedule["macs_issued"], (layer.op, shapes, mapping)


@pytest.mark.parametrize("params, dma, count", [({"rn": 0}, DmaTiming(4, 0), 16), ({"rn": 0}, DmaTiming(2, 3), 8),
                                                ({"rn": 1, "reach": 0}, DmaTiming(8, 1), 10),
                                                ({"rn": 0, "rn_bw": 8, "reach": 0}, DmaTiming(4, 1), 12),
                                                ({"rn": 0, "multipliers": 16, "rn_bw": 16, "reach": 4},
                                                 DmaTiming(4, 1), 20),
                                                ({"rn": 0, "multipliers": 32, "rn_bw": 32, "reach": 8},
                                                 DmaTiming(8, 0), 12),
                                                ({"rn": 0, "dn_bw": 8, "rn_bw": 8, "reach": 0}, DmaTiming(8, 0), 16),
                                                ({"rn": 2, "reach": 0}, DmaTiming(4, 1), 24),
                                                ({"rn": 2, "multipliers": 16, "rn_bw": 8, "reach": 0}, DmaTiming(8, 0),
                                                 12),
                                                ({"rn": 0, "dn": 1, "reach": 0}, DmaTiming(4, 1), 24),
                                                ({"rn": 2, "dn": 1, "multipliers": 16, "rn_bw": 8, "reach": 0},
                                                 DmaTiming(2, 2), 12)],
                         ids=["fan", "fan_slow_dma", "seq", "two_lane_groups", "reach4_16", "reach8_32", "one_beat_weights", "art", "art16",
                              "tree", "tree16_art"])
def test_random_legal_mappings_bit_and_cycle_exact(device_pool, params, dma, count):
    """``two_lane_groups``: 8 lanes over a 4-byte beat, read out as two beats a word through 4 requantizers
    (lanes that reach every node); ``reach4_16`` and ``reach8_32``: lanes that reach only their region of 4 (8)
    multipliers, so VNs are placed region by region with unused multipliers between; ``one_beat_weights``: a
    fold's weights in one beat, so a step may read an accumulation word in the cycle the fold before writes it."""
    accelerator, device = device_pool({**SMALL, **params}, "verilator", dma, FlexArrayAccelerator)
    rng = np.random.default_rng(100 + params["rn"] + dma.bytes_per_cycle + params.get("rn_bw", 0)
                                + 7 * params.get("dn", 0))
    for i in range(count):
        layer, inputs = random_layer(KINDS[i % len(KINDS)], rng, max_dim=10)
        _check(accelerator, device, layer, inputs, _random_plan(accelerator, layer, inputs, rng))


def test_amaranth_simulator_agrees(device_pool):
    accelerator, device = device_pool(SMALL, "amaranth", DmaTiming(4, 1), FlexArrayAccelerator)
    rng = np.random.default_rng(3)
    for kind, shape in (("gemm", dict(m=3, n=5, k=6)), ("depthwise_conv2d", dict(height=3, width=3, channels=2,
                                                                                   kernel=2))):
        layer, (x,) = get_kind(kind).random(rng, **shape)
        _check(accelerator, device, layer, (x,), accelerator.plan(layer, x.shape))


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


@pytest.mark.parametrize("zero_point", [0, 37, -128])
def test_batch_matmul_zero_point_terms_run_in_the_array(device_pool, zero_point):
    """BATCH_MATMUL: the rhs (an activation) is the stationary operand; its zero point's row term is one more
    multiplier per k (two for -128) on the same streamed operand, so a step sends each operand once."""
    accelerator, device = device_pool(SMALL, "verilator", DmaTiming(4, 1), FlexArrayAccelerator)
    rng = np.random.default_rng(200 + zero_point)
    layer, inputs = get_kind("batch_matmul").random(rng, batch=2, m=3, n=5, k=7, adj_y=1)
    layer.rhs_zero_point = zero_point
    plan = accelerator.plan(layer, *(x.shape for x in inputs))
    _check(accelerator, device, layer, inputs, plan)
    terms = len(compiler.batch_matmul_terms(zero_point))
    assert plan.schedule["macs_issued"] >= (1 + terms) * plan.macs
    assert plan.schedule["jobs"] == 2 and not plan.schedule["mapping"]["sparse"]


def test_batch_matmul_refuses_sparse_mappings_and_bad_shapes():
    accelerator = FlexArrayAccelerator(**SMALL)
    rng = np.random.default_rng(1)
    layer, (lhs, rhs) = get_kind("batch_matmul").random(rng, batch=1, m=2, n=3, k=4)
    with pytest.raises(UnsupportedLayer, match="activation .unknown when mapping.: map it densely"):
        accelerator.plan_with(layer, (lhs.shape, rhs.shape), compiler.Mapping(rows=1, channels=1, chunk=(2,),
                                                                              sparse=True))
    with pytest.raises(UnsupportedLayer, match="do not chain"):
        accelerator.plan(layer, lhs.shape, (1, 5, 3))
    with pytest.raises(UnsupportedLayer, match="takes 2 input shape"):
        accelerator.make_plan(layer, lhs.shape)


def test_transformer_block_attention_matmuls_offload_bit_exact(tmp_path):
    """The zoo's attention block through the LiteRT delegate: both BATCH_MATMULs (Q.K^T and A.V) on flexarray."""
    import json
    from accelkit.sw.commands import main as cli
    path = tmp_path / "tb.json"
    assert cli.main(["run", "transformer_block", "--accel", "flexarray", "--backend", "model", "--compare", "ref",
                     "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["compare"]["output_bit_exact"] and record["compare"]["offloaded_layers_bit_exact"]
    matmuls = [layer for layer in record["layers"] if layer["op"] == "BATCH_MATMUL"]
    assert len(matmuls) == 2 and all(layer["where"] == "accelerator" and layer["bit_exact"] for layer in matmuls)
    assert record["totals"]["share_of_macs_offloaded"] == 1.0


def test_art_layouts_are_reported_and_its_configuration_counted():
    """rn=art: the compiler says which VN layouts the tree reduces (with the reason when not), and its per-node
    configuration (one byte a node) is loaded with the map, counted in config_bytes."""
    fan, art_design = (FlexArrayAccelerator(**{**SMALL, "rn": rn, "reach": 0}).design for rn in (0, 2))
    assert compiler.vn_layout_legal(art_design, [(0, 2), (3, 3), (5, 7)]) == (True, "")
    assert compiler.vn_layout_legal(art_design, [(0, 2), (2, 3)])[1].startswith("VN 2..3 overlaps")
    assert compiler.vn_layout_legal(art_design, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]) == (
        False, "5 VNs exceed rn_bw=4 output lanes")
    assert compiler.vn_layout_legal(fan, [(1, 6)]) == (True, "")
    assert art_design.map_bytes == fan.map_bytes + SMALL["multipliers"] - 1
    rng = np.random.default_rng(4)
    layer, (x,) = get_kind("gemm").random(rng, m=5, n=3, k=9)
    mapping = compiler.Mapping(rows=1, channels=3, chunk=(2,))
    plans = [FlexArrayAccelerator(**{**SMALL, "rn": rn, "reach": 0}).plan_with(layer, x.shape, mapping)
             for rn in (0, 2)]
    maps = [compiler.compile_program(d, compiler.structure_of(layer, x.shape), mapping).commands
            for d in (fan, art_design)]
    map_loads = sum(c.op == "MAP" for c in maps[1])
    assert plans[1].schedule["config_bytes"] - plans[0].schedule["config_bytes"] == map_loads * (
        art_design.map_beats - fan.map_beats) * art_design.beat_bytes


def test_tree_distribution_sends_a_value_once_per_tree_that_needs_it():
    """dn=tree: lane l of a beat feeds only tree l (multipliers l*N/dn_bw..), so a step takes as many beats as
    its busiest tree has distinct values; a value several trees need is sent on each. The crossbar sends it
    once. The cycle model follows (its exactness on RTL: the random-mapping tests above)."""
    xbar, tree = (FlexArrayAccelerator(**{**SMALL, "dn": dn, "reach": 0}) for dn in ("xbar", "tree"))
    assert tree.params["dn"] == 1 and tree.design.dn_depth == 1 and xbar.design.dn_depth == 1
    rng = np.random.default_rng(5)
    layer, (x,) = get_kind("gemm").random(rng, m=6, n=4, k=2)
    # one pixel, 4 channels of a k-chunk of 2: every tree of 2 multipliers holds one VN, both operands of
    # the row, so each step sends the row's 2 values on each of the 4 trees (2 beats) instead of once (1 beat)
    mapping = compiler.Mapping(rows=1, channels=4, chunk=(2,))
    plans = {name: a.plan_with(layer, x.shape, mapping) for name, a in (("xbar", xbar), ("tree", tree))}
    assert plans["tree"].schedule["data_bytes"] == 2 * plans["xbar"].schedule["data_bytes"]
    program = compiler.compile_program(tree.design, compiler.structure_of(layer, x.shape), mapping)
    fold = program.tiles[0].folds[0]
    assert fold.per_step == 2 and fold.value_index.shape[1] == 2 * tree.design.dn_bw
    assert all((fold.value_index[:, b * 4:(b + 1) * 4] == fold.value_index[:, b * 4:b * 4 + 1]).all() for b in (0, 1))
    dma = DmaTiming(4, 0)
    assert tree.estimate(plans["tree"], dma).cycles > xbar.estimate(plans["xbar"], dma).cycles


def test_network_parameters_by_name_and_their_limits():
    assert FlexArrayAccelerator(rn="art", dn="tree", reach=0).params | {"rn": 2, "dn": 1} == FlexArrayAccelerator(
        rn=2, dn=1, reach=0).params
    with pytest.raises(ParameterError, match=r"a lane reach \(8\) works with rn=fan and dn=xbar only: add reach=0"):
        FlexArrayAccelerator(rn="art")
    with pytest.raises(ParameterError, match=r"reach \(16\) must not exceed multipliers \(8\)"):
        FlexArrayAccelerator(multipliers=8, rn_bw=8, reach=16)
    with pytest.raises(ParameterError, match=r"reach must be a power of two, not 6"):
        FlexArrayAccelerator(reach=6)
    with pytest.raises(ParameterError, match=r"rn must be one of fan, seq, art \(or 0..2\), not 'ar'"):
        FlexArrayAccelerator(rn="ar")
    with pytest.raises(ParameterError, match=r"dn=tree needs dn_bw \(16\) <= multipliers \(8\)"):
        FlexArrayAccelerator(multipliers=8, dn_bw=16, rn_bw=4, dn=1)
    with pytest.raises(ParameterError, match=r"dn=tree needs dn_bw \(16\) <= multipliers \(8\)"):
        FlexArrayCore(multipliers=8, dn_bw=16, rn_bw=4, dn="tree")
    from accelkit.accelerators.base import parse_params
    assert parse_params("rn=art,dn=tree,multipliers=16") == {"rn": "art", "dn": "tree", "multipliers": 16}


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
        _check(accelerator, device, layer, (data,), plan)
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
    at most 0.2x the dense run (the issue's bar; 0.12x on the bench). A sparse group holds at most ``rn_bw``
    channels and streams every k any of them needs; 16 lanes take the 64 channels in four groups, and at 10%
    density most k have a non-zero weight in each (see the README)."""
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
    assert cycles[0.9] <= 0.2 * cycles[0.0], cycles


def test_fold_without_weights_accumulates_onto_the_word_written_two_cycles_before(device_pool):
    """Folds that share their weights, sent as a bare STEPS header and one beat each (the compiler always
    resends weights between the folds of a tile; the core must not depend on it): each step reads its
    accumulation word in the cycle the step before writes it, so only the last-write bypass gets it right."""
    accelerator, device = device_pool(SMALL, "verilator", DmaTiming(4, 0), FlexArrayAccelerator)
    rng = np.random.default_rng(31)
    layer, (x,) = get_kind("gemm").random(rng, m=1, n=2, k=32)
    # no bias and a scale that keeps the sums off the clamp: a fold lost shows in the output
    layer = replace(layer, b=np.full_like(layer.b, 3), bias=np.zeros_like(layer.bias),
                    scale=np.full_like(layer.scale, 0.05))
    expected = layer.reference(x)
    assert np.all(np.abs(expected.astype(int)) < 120), expected
    plan = accelerator.plan(layer, x.shape)
    program = program_of(accelerator, plan)
    commands, dropped = [], 0
    for command in program.commands:
        if command.op == "WEIGHTS" and any(c.op == "WEIGHTS" for c in commands):
            dropped += 1
            continue
        if command.op == "STEPS" and command.headless and dropped and commands[-1].op != "WEIGHTS":
            command = replace(command, headless=False)
        commands.append(command)
    assert dropped >= 3 and all(c.count == 1 and c.per_step == 1 for c in commands if c.op == "STEPS")
    edited = replace(program, commands=commands)
    gemm, source = compiler.operands_of(layer, x)
    out, _ = _run_job(accelerator.design, device, edited, gemm, source, 10_000)
    assert np.array_equal(out.reshape(plan.output_shape), expected), (out, expected)
