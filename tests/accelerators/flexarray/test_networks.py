"""flexarray's reduction networks against numpy, on Amaranth's simulator: random virtual-neuron partitions."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from accelkit.accelerators.flexarray.networks import ForwardingAdderNetwork, SegmentedSum, latency


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


@pytest.mark.parametrize("network_class", [ForwardingAdderNetwork, SegmentedSum], ids=["fan", "seq"])
@pytest.mark.parametrize("n, lanes", [(8, 4), (16, 8)])
def test_every_vn_sum_arrives_on_its_lane(network_class, n, lanes):
    rng = np.random.default_rng(n * 7 + lanes)
    dut = network_class(n=n, lanes=lanes)
    steps = []
    for _ in range(40):
        spans = _partition(rng, n, lanes)
        products = rng.integers(-16384, 16385, n)
        expected = [int(products[a:b + 1].sum()) for a, b in spans] + [0] * (lanes - len(spans))
        steps.append((spans, products, expected))
    seen = []

    async def bench(ctx):
        for spans, products, _ in steps + [(None, None, None)] * (latency(n) + 1):
            if spans is not None:
                ends, lane_of, select = _markings(spans, n)
                ctx.set(dut.valid, 1)
                for i in range(n):
                    ctx.set(dut.products[i], int(products[i]))
                    ctx.set(dut.lane_of[i].lane, lane_of[i] or 0)
                    ctx.set(dut.lane_of[i].enable, int(lane_of[i] is not None))
                ctx.set(dut.ends, int("".join(str(e) for e in ends[::-1]), 2))
                for j in range(lanes):
                    ctx.set(dut.select[j].enable, int(j < len(spans)))
                    if j < len(spans):
                        ctx.set(dut.select[j].index, select[j][0])
                        ctx.set(dut.select[j].level, select[j][1])
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
