"""hw/pipeline.py: the registered loop-end flag against the comparison it replaces, cycle by cycle."""

import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from accelkit.hw.pipeline import LastFlag


@pytest.mark.parametrize("limit", [1, 2, 5, 40])
def test_last_flag_equals_counter_plus_one_equals_limit(limit):
    m = Module()
    counter, bound = Signal(8), Signal(8)
    restart, step = Signal(), Signal()
    end = LastFlag(counter, bound, "end")
    with m.If(restart):
        m.d.sync += [counter.eq(0), end.restart()]
    with m.Elif(step):
        # the counter wraps at the limit, as the cores' loops do
        with m.If(end.flag):
            m.d.sync += [counter.eq(0), end.restart()]
        with m.Else():
            m.d.sync += [counter.eq(counter + 1), end.step()]
    rng = random.Random(limit)
    seen = []

    async def bench(ctx):
        ctx.set(bound, limit)
        ctx.set(restart, 1)
        await ctx.tick()
        ctx.set(restart, 0)
        for _ in range(600):
            ctx.set(step, rng.random() < 0.8)
            ctx.set(restart, rng.random() < 0.01)
            seen.append((ctx.get(counter), ctx.get(end.flag)))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert all(flag == (value + 1 == limit) for value, flag in seen)
    assert any(flag for _, flag in seen) and (limit == 1 or not all(flag for _, flag in seen))
