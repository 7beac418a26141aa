"""flexarray's reduction networks against numpy, on Amaranth's simulator: random virtual-neuron partitions."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from accelkit.accelerators.flexarray import art
from accelkit.accelerators.flexarray.networks import (AugmentedReductionTree, ForwardingAdderNetwork, SegmentedSum,
                                                      latency)


def _partition(rng, n, lanes):
    """Random VNs [(first, last)] over n multipliers: any sizes, gaps of unused multipliers, at most ``lanes``."""
    spans, i = [], int(rng.integers(0, 3))
    while i < n and len(spans) < lanes:
        size = int(rng.choice([1, 1, 2, 3, 5, n]))
        last = min(n - 1, i + size - 1)
        spans.append((i, last))
        i = last + 1 + int(rng.choice([0, 0, 0, 1, 2]))
    return spans


def _markings(spans, n):
    """VN end bits (unused multipliers end their own one-multiplier VN), lane of each multiplier, and
    where each lane collects: the lowest common ancestor of its VN's first and last multiplier."""
    ends = np.ones(n, dtype=int)
    lane_of = [None] * n
    select = []
    for lane, (a, b) in enumerate(spans):
        ends[a:b] = 0
        lane_of[a:b + 1] = [lane] * (b - a + 1)
        level = (a ^ b).bit_length()
        select.append((a >> level, level))
    return ends, lane_of, select


def _run_steps(dut, steps, n, lanes, drive):
    """Feed (spans, products, expected sums) one step a cycle, ``drive(ctx, spans, products)`` setting the
    network's markings, and check every lane's sums when the step comes out."""
    seen = []

    async def bench(ctx):
        for spans, products, _ in steps + [(None, None, None)] * (latency(n) + 1):
            if spans is not None:
                ctx.set(dut.valid, 1)
                for i in range(n):
                    ctx.set(dut.products[i], int(products[i]))
                drive(ctx, spans, products)
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if ctx.get(dut.out_valid):
                seen.append([ctx.get(dut.sums[j]) for j in range(lanes)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == len(steps)
    for (spans, _, expected), got in zip(steps, seen):
        assert got == expected, spans


@pytest.mark.parametrize("network_class", [ForwardingAdderNetwork, SegmentedSum, AugmentedReductionTree],
                         ids=["fan", "seq", "art"])
@pytest.mark.parametrize("n, lanes", [(8, 4), (16, 8)])
def test_every_vn_sum_arrives_on_its_lane(network_class, n, lanes):
    rng = np.random.default_rng(n * 7 + lanes)
    dut = network_class(n=n, lanes=lanes)
    steps = []
    for step in range(40):
        spans = _partition(rng, n, lanes)
        products = rng.integers(-16384, 16385, n)
        if step % 8 < 2:
            # the extremes, where a register too narrow would wrap
            products = np.full(n, 16384 if step % 8 == 0 else -16256)
        expected = [int(products[a:b + 1].sum()) for a, b in spans] + [0] * (lanes - len(spans))
        steps.append((spans, products, expected))
    def drive(ctx, spans, products):
        ends, lane_of, select = _markings(spans, n)
        if network_class is AugmentedReductionTree:
            nodes, collect = art.configure(n, spans)
            select = [(node, level) for level, node in collect]
            for i, byte in enumerate(nodes):
                ctx.set(dut.nodes[i], byte)
        for i in range(n):
            ctx.set(dut.lane_of[i].lane, lane_of[i] or 0)
            ctx.set(dut.lane_of[i].enable, int(lane_of[i] is not None))
        ctx.set(dut.ends, int("".join(str(e) for e in ends[::-1]), 2))
        for j in range(lanes):
            ctx.set(dut.select[j].enable, int(j < len(spans)))
            if j < len(spans):
                ctx.set(dut.select[j].index, select[j][0])
                ctx.set(dut.select[j].level, select[j][1])

    _run_steps(dut, steps, n, lanes, drive)


def _layouts(n):
    """Every layout of VNs over n multipliers: every cut into runs (runs left out are unused multipliers)."""
    for cuts in range(1 << (n - 1)):
        spans, first = [], 0
        for i in range(n - 1):
            if cuts >> i & 1:
                spans.append((first, i))
                first = i + 1
        spans.append((first, n - 1))
        yield spans


@pytest.mark.parametrize("n", [4, 8, 16])
def test_art_routes_every_contiguous_layout(n):
    """Every one of the 2^(N-1) layouts (and, for a third of them, with some VNs left unused) is legal, and the
    routed configuration, evaluated by the tree's rule, delivers every VN's sum where it is collected."""
    rng = np.random.default_rng(n)
    for spans in _layouts(n):
        if rng.random() < 1 / 3:
            spans = [span for span in spans if rng.random() < 0.7]
        nodes, collect = art.configure(n, spans)
        products = rng.integers(-16384, 16385, n)
        assert art.evaluate(n, nodes, products, collect) == [int(products[a:b + 1].sum()) for a, b in spans], spans


def test_art_says_why_a_layout_is_illegal():
    assert art.legal(8, [(0, 2), (3, 7)]) == (True, "")
    assert art.legal(8, [(0, 3), (3, 5)]) == (False, "VN 3..5 overlaps or precedes the VN before it (ending at 3): "
                                                     "VNs are disjoint runs of multipliers in lane order")
    assert art.legal(8, [(4, 9)]) == (False, "VN 4..9 is not within the 8 multipliers")
    assert not art.legal(6, [(0, 1)])[0]


@pytest.mark.parametrize("n, lanes, reach", [(16, 16, 4), (16, 8, 8), (32, 32, 8)])
def test_lanes_with_a_reach_collect_every_placed_vn(n, lanes, reach):
    """Lanes that reach only their region (and its ancestors): VNs of random sizes placed by the compiler's
    ``region_spans`` (each over its lane's region, unused multipliers between) arrive on their lanes."""
    from accelkit.accelerators.flexarray.compiler import Design, region_spans, vn_layout_legal
    from accelkit.accelerators.flexarray.networks import reaches
    from accelkit.errors import UnsupportedLayer
    design = Design(n, 4, lanes, 16, reach=reach)
    rng = np.random.default_rng(n + lanes + reach)
    dut = ForwardingAdderNetwork(n=n, lanes=lanes, reach=reach)
    steps = []
    while len(steps) < 40:
        used = int(rng.integers(1, lanes + 1))
        sizes = [int(s) for s in rng.choice([0, 1, 1, 2, 3, reach, 2 * reach], used)]
        try:
            spans = region_spans(design, sizes)
        except UnsupportedLayer:
            continue                      # sizes that cannot overlap their regions: the compiler refuses them
        assert vn_layout_legal(design, spans) == (True, "")
        products = rng.integers(-16384, 16385, n)
        expected = [int(products[a:b + 1].sum()) if b >= a else 0 for a, b in spans] + [0] * (lanes - used)
        steps.append((spans, products, expected))
    def drive(ctx, spans, products):
        ends = np.ones(n, dtype=int)
        for a, b in spans:
            if b >= a:
                ends[a:b] = 0
        ctx.set(dut.ends, int("".join(str(e) for e in ends[::-1]), 2))
        for j in range(lanes):
            a, b = spans[j] if j < len(spans) else (0, -1)
            ctx.set(dut.select[j].enable, int(b >= a))
            if b >= a:
                level = (a ^ b).bit_length()
                assert reaches(j, level, a >> level, n, reach)
                # the lane's index is the node's within its region (its low bits)
                ctx.set(dut.select[j].index, (a >> level) % max(1, reach >> level))
                ctx.set(dut.select[j].level, level)

    _run_steps(dut, steps, n, lanes, drive)


def test_lane_reach_legality_names_the_problem():
    from accelkit.accelerators.flexarray.compiler import Design, region_spans, vn_layout_legal
    from accelkit.errors import UnsupportedLayer
    design = Design(16, 4, 4, 16, reach=4)
    # lane 1's region is multipliers 8..11 (bit-reversed order over the four regions): a VN at 4..5 is out of reach
    ok, reason = vn_layout_legal(design, [(2, 3), (4, 5)])
    assert not ok and "lane 1's region (multipliers 8..11" in reason
    assert vn_layout_legal(design, [(0, 1), (8, 9)]) == (True, "")
    assert region_spans(design, [2, 2]) == [(0, 1), (7, 8)]
    # two VNs of 8 can overlap lanes 0's and 1's regions (0..3 and 8..11); three of 6 cannot all
    assert region_spans(design, [8, 8]) == [(0, 7), (8, 15)]
    with pytest.raises(UnsupportedLayer, match="do not fit the lane regions"):
        region_spans(design, [6, 6, 6])
