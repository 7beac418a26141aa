"""The shared requantizer pipeline against the TFLite-exact golden model, value by value."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from accelkit.driver.quant import DOUBLE, FLOAT, float_scale_fields, requantize
from accelkit.hw.requantize import LATENCY, Requantizer

EXTREMES = [-(1 << 31), (1 << 31) - 1, 0, 1, -1, 1 << 30, -(1 << 30)]


def _cases(rng, count):
    """(mode, bias, zero point, act_min, act_max, parameters, accumulators) groups."""
    cases = []
    for index in range(count):
        float_mode = index % 2 == 1
        accs = [int(v) for v in rng.integers(-(1 << 20), 1 << 20, 6)] + [EXTREMES[index % len(EXTREMES)]]
        bias = int(rng.integers(-(1 << 16), 1 << 16)) if index % 5 else int(rng.integers(-(1 << 31), 1 << 31))
        zero_point = int(rng.integers(-128, 128))
        act_min = int(rng.integers(-128, 0)) if index % 3 == 0 else -128
        act_max = int(rng.integers(0, 128)) if index % 3 == 0 else 127
        if float_mode:
            # Mostly scales that keep results in range, sometimes huge or tiny ones (saturation, zero).
            exponent = rng.uniform(-16, -6) if index % 7 else rng.choice([-70.0, -40.0, 2.0, 30.0])
            scale = float(2.0 ** exponent)
            cases.append((FLOAT, bias, zero_point, act_min, act_max, {"scale": scale}, accs))
        else:
            shift = int(rng.integers(-31, 31)) if index % 4 == 0 else int(rng.integers(-14, -4))
            multiplier = int(rng.integers(1 << 30, 1 << 31)) if index % 9 else 0
            cases.append((DOUBLE, bias, zero_point, act_min, act_max,
                          {"multiplier": multiplier, "shift": shift}, accs))
    # exact halves in the final rounding (a half times 2^-1 of an odd value), where a negative value must
    # round away from zero: the threshold that differs between signs
    cases.append((DOUBLE, 0, 0, -128, 127, {"multiplier": 1 << 30, "shift": -1}, [-6, -2, 2, 6, -10, 10, -14]))
    return cases


@pytest.mark.parametrize("float_support, registered_masks, shared_valid, external_masks",
                         [(True, False, False, False), (False, True, False, False), (True, False, True, False),
                          (True, True, True, False), (True, False, True, True)])
def test_requantizer_matches_golden_in_both_modes(float_support, registered_masks, shared_valid, external_masks):
    # mm2im's variant (no float datapath, rounding masks registered from the shift) on the double-rounding
    # cases; stage valid bits from outside (here from the testbench's own record of valid), with the masks
    # registered or, as gemm has them, decoded by the core (here by the testbench) and held with the shifts
    cases = [case for case in _cases(np.random.default_rng(2026), 60) if float_support or case[0] == DOUBLE]
    # gemm's variant also takes the clamp's bounds from outside (shared_bounds)
    dut = Requantizer(float_support=float_support, registered_masks=registered_masks, shared_valid=shared_valid,
                      external_masks=external_masks, shared_bounds=external_masks)
    seen = []
    history = [0] * LATENCY      # valid of the last LATENCY cycles, newest first

    async def bench(ctx):
        nonlocal history
        for rounding, bias, zero_point, act_min, act_max, params, accs in cases:
            if rounding == FLOAT:
                mantissa, exponent = (int(v[0]) for v in float_scale_fields(params["scale"]))
                multiplier, shifts = mantissa, exponent
            else:
                shift = params["shift"]
                multiplier, shifts = params["multiplier"], max(shift, 0) | (max(-shift, 0) << 8)
            for port, value in ((dut.float_mode, int(rounding == FLOAT)), (dut.bias, bias),
                                (dut.multiplier, multiplier), (dut.shifts, shifts), (dut.zero_point, zero_point),
                                (dut.act_min, act_min), (dut.act_max, act_max)):
                ctx.set(port, value)
            if external_masks:
                mask = (1 << ((shifts >> 8) & 31)) - 1
                for port, value in ((dut.round_mask, mask), (dut.round_below, mask >> 1),
                                    (dut.round_above, (mask >> 1) + 1), (dut.clamp_low, act_min - zero_point),
                                    (dut.clamp_high, act_max - zero_point)):
                    ctx.set(port, value)
            outputs = []
            for cycle in range(len(accs) + LATENCY):
                ctx.set(dut.valid, cycle < len(accs))
                ctx.set(dut.acc, accs[cycle] if cycle < len(accs) else 0)
                if shared_valid:
                    ctx.set(dut.stage_valid, sum(bit << k for k, bit in enumerate(history)))
                if ctx.get(dut.out_valid):
                    outputs.append(ctx.get(dut.value))
                history = [int(cycle < len(accs))] + history[:-1]
                await ctx.tick()
            seen.append(outputs)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for (rounding, bias, zero_point, act_min, act_max, params, accs), outputs in zip(cases, seen):
        expected = requantize(np.array(accs), bias, zero_point, act_min, act_max, rounding=rounding, **params)
        assert outputs == [int(v) for v in expected], (rounding, bias, params, accs)


def _fields(rounding, params):
    if rounding == FLOAT:
        mantissa, exponent = (int(v[0]) for v in float_scale_fields(params["scale"]))
        return mantissa, exponent
    shift = params["shift"]
    return params["multiplier"], max(shift, 0) | (max(-shift, 0) << 8)


@pytest.mark.parametrize("registered", [False, True])
def test_parameters_that_follow_the_data_may_change_every_cycle(registered):
    """follow_params: a new multiplier, shifts and bias with every value, back to back, each mode's stream;
    ``registered``: flexarray's variant, the rounding masks and the float path's shift amount registered a stage
    early (the float stream's shifts span the range, so a wrong amount shows)."""
    cases = _cases(np.random.default_rng(7), 40)
    dut = Requantizer(follow_params=True, registered_masks=registered, registered_shift=registered)
    streams = {mode: [(acc, bias, _fields(mode, params), params) for rounding, bias, _, _, _, params, accs in cases
                      if rounding == mode for acc in accs] for mode in (DOUBLE, FLOAT)}
    seen = {}

    async def bench(ctx):
        for mode, values in streams.items():
            for port, value in ((dut.float_mode, int(mode == FLOAT)), (dut.zero_point, -5), (dut.act_min, -128),
                                (dut.act_max, 127)):
                ctx.set(port, value)
            outputs = []
            for cycle in range(len(values) + LATENCY + 1):
                current = values[cycle] if cycle < len(values) else (0, 0, (0, 0), None)
                ctx.set(dut.valid, cycle < len(values))
                ctx.set(dut.acc, current[0])
                ctx.set(dut.multiplier, current[2][0])
                ctx.set(dut.shifts, current[2][1])
                # the bias is read a cycle after its accumulator
                ctx.set(dut.bias, values[cycle - 1][1] if 0 < cycle <= len(values) else 0)
                if ctx.get(dut.out_valid):
                    outputs.append(ctx.get(dut.value))
                await ctx.tick()
            seen[mode] = outputs

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for mode, values in streams.items():
        expected = [int(requantize(np.array([acc]), bias, -5, -128, 127, rounding=mode, **params)[0])
                    for acc, bias, _, params in values]
        assert seen[mode] == expected, mode


def test_external_masks_need_shifts_that_hold_still():
    with pytest.raises(ValueError, match="external_masks"):
        Requantizer(follow_params=True, external_masks=True)
    with pytest.raises(ValueError, match="external_masks"):
        Requantizer(registered_masks=True, external_masks=True)



def test_decoded_rounding_masks_equal_the_adder_form_for_every_shift():
    """flexarray's requantizers decode the rounding masks with no adder: the same three values for every
    right shift 0..31."""
    from amaranth import Module, Signal
    from amaranth.sim import Simulator
    from accelkit.hw.requantize import decoded_rounding_masks, rounding_masks
    m = Module()
    right = Signal(5)
    outputs = {}
    for label, decode in (("adder", rounding_masks), ("decoded", decoded_rounding_masks)):
        for name, value, width in zip(("mask", "below", "above"), decode(right), (32, 32, 33)):
            outputs[label, name] = Signal(width, name=f"{label}_{name}")
            m.d.comb += outputs[label, name].eq(value)
    seen = []

    async def bench(ctx):
        for r in range(32):
            ctx.set(right, r)
            values = {key: ctx.get(signal) for key, signal in outputs.items()}
            mask = (1 << r) - 1
            expected = {"mask": mask, "below": mask >> 1, "above": (mask >> 1) + 1}
            for name, value in expected.items():
                assert values["adder", name] == value and values["decoded", name] == value, (r, name)
            seen.append(r)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert seen == list(range(32))
