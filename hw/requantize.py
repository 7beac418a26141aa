"""One fixed-latency requantizer pipeline, shared by every core.

:class:`Requantizer` takes one int32 accumulator per cycle with its per-channel
bias, multiplier and shifts and returns the clamped int8 output ``LATENCY``
cycles later, whatever the array around it looks like. It implements the two
modes of LiteRT's reference kernels (see ``driver/quant.py``):

* double rounding (CONV_2D): ``multiplier`` < 2^31, ``shifts`` = left |
  right << 8; SaturatingRoundingDoublingHighMul(acc << left, M), then a rounding
  divide by 2^right;
* float (FULLY_CONNECTED): the double scale ``M * 2^-E`` with its 53-bit
  mantissa ``M`` in ``multiplier`` and ``E`` in ``shifts``; the product is
  rounded to 53 significant bits (half to even, as a double multiply does),
  then to an integer with halves away from zero.

Timing is the point of this block: every stage holds at most one carry chain
or one barrel shifter (or a 16x16 multiply), because the un-pipelined tail of
the previous requantizer (shift, negate, zero point, clamp in one cycle) was the
critical path of the whole GEMM shell on the ECP5 (32.9 MHz). The multiplies are
split into 16-bit partial products summed over two further stages, so a DSP
slice never feeds a long carry chain in the same cycle. Stage registers hold
data without reset and load only when a value moves into them, so a simulator
skips the arithmetic in cycles without one; every value is at most 64 bits wide,
which keeps the verilated model fast.
"""

from amaranth import Module, Signal, Cat, Const, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .constants import REQUANT_LATENCY
from .dsp import registered_product

__all__ = ["Requantizer", "LATENCY", "rounding_masks", "decoded_rounding_masks", "clamp_bounds"]

#: Cycles from ``valid`` with an accumulator to ``out_valid`` with its output (declared without Amaranth in
#: ``hw/constants.py``, where the drivers' cost models read it).
LATENCY = REQUANT_LATENCY


def rounding_masks(right):
    """``(mask, below, above)`` of RoundingDivideByPOT for a right shift of ``right`` (0..31).

    ``mask`` keeps the bits shifted out; a value rounds up when its masked bits
    exceed ``below`` (``mask >> 1``) if it is not negative, ``above`` (one more)
    if it is. Widths 32, 32 and 33.
    """
    decoded = ((Const(1, 33) << right) - 1)[:32]
    return decoded, decoded >> 1, (decoded >> 1) + 1


def decoded_rounding_masks(right):
    """:func:`rounding_masks` as comparisons of ``right`` (0..31) with constants, bit by bit, with no adder:
    ``mask`` bit i is ``i < right``, ``below`` bit i is ``i + 1 < right``, and ``above`` (``below + 1``) is
    one-hot, bit ``right - 1`` (bit 0 when ``right`` is 0). The same values; each bit a function of five
    inputs instead of the end of two carry chains."""
    mask = Cat(right > i for i in range(32))
    below = Cat(right > i + 1 for i in range(32))
    above = Cat(Mux(right == 0, i == 0, right == i + 1) for i in range(33))
    return mask, below, above


def clamp_bounds(m, act_min, act_max, zero_point):
    """Registers holding ``act_min - zero_point`` and ``act_max - zero_point`` (signed 10 bits):
    the clamp's bounds for a value before its zero point is added. They lag their inputs by
    a cycle, so those must hold still from a cycle before a value enters the requantizer."""
    low, high = Signal(signed(10), name="clamp_low"), Signal(signed(10), name="clamp_high")
    m.d.sync += [low.eq(act_min - zero_point), high.eq(act_max - zero_point)]
    return low, high


class Requantizer(wiring.Component):
    """Fixed-latency requantization of one int32 value to a clamped int8; see the module docstring.

    ``float_mode`` selects the float (1) or double-rounding (0) mode; with
    ``float_support=False`` (keyword-only) the float datapath is not built and
    ``float_mode`` is ignored. ``bias`` is read exactly one cycle after ``acc``
    (so a core may fold a per-value term into it). The other per-channel inputs
    (``multiplier``, ``shifts``) and the per-job ones (``zero_point``,
    ``act_min``, ``act_max``, ``float_mode``) are read in later stages than
    ``acc``: they must hold still while a value is in the pipeline (the cores
    change them only between tiles).

    With ``follow_params=True`` (keyword-only) ``multiplier`` and ``shifts`` are
    instead sampled with ``acc`` and travel down the pipeline beside it, so they
    may change every cycle (a core that requantizes a different group of
    channels each cycle); this costs registers for their copies, nothing else.

    With ``registered_masks=True`` the rounding mask and thresholds of stage 12
    are decoded from the shift into stage-11 registers instead of in stage 12:
    same latency and contract, a shorter stage 12.

    With ``registered_shift=True`` (keyword-only) the float path's shift amount less
    one, the amount stage 12 shifts the mantissa right by, is worked out into a
    stage-11 register beside the shift, so stage 12 holds the barrel shift alone
    (the subtraction in front of it was on a 16-multiplier flexarray's critical
    path at 98.1 MHz on the ECP5): same latency and contract, six registers more;
    and registered masks are decoded by :func:`decoded_rounding_masks`, with no
    adder (the two carry chains of :func:`rounding_masks` were that design's
    path at 99.0 MHz once the shift was registered).

    With ``external_masks=True`` (keyword-only; not with ``follow_params``) the core
    supplies that decode itself on ``round_mask``, ``round_below`` and
    ``round_above`` (:func:`rounding_masks` of the shift's right amount), from
    registers that hold still with the shifts: a core decodes once, when it files
    a shift word, so the decode is neither in stage 12 nor worked out again for
    every value.

    With ``shared_bounds=True`` (keyword-only) the clamp's bounds less the zero point
    come in on ``clamp_low`` and ``clamp_high`` (:func:`clamp_bounds`, made once by a
    core whose requantizers share ``act_min``, ``act_max`` and ``zero_point``) instead
    of being registered in each requantizer; a verilated model then works them out
    once a cycle, not once per requantizer.

    With ``shared_valid=True`` (keyword-only) the requantizer keeps no valid bits of
    its own: ``stage_valid`` bit ``k - 1`` must be ``valid`` delayed by ``k`` cycles
    (k = 1..LATENCY, the valid bit of stage k), from a delay line the core already
    has or shares between several requantizers fed in lockstep. The hardware is the
    same (synthesis merges identical valid registers anyway); a simulator then
    updates one valid chain instead of one per instance.
    """

    def __init__(self, *, float_support=True, follow_params=False, registered_masks=False, shared_valid=False,
                 external_masks=False, shared_bounds=False, registered_shift=False):
        for name, value in (("float_support", float_support), ("follow_params", follow_params),
                            ("registered_masks", registered_masks), ("shared_valid", shared_valid),
                            ("external_masks", external_masks), ("shared_bounds", shared_bounds),
                            ("registered_shift", registered_shift)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {value!r}")
        if external_masks and (follow_params or registered_masks):
            raise ValueError("external_masks needs shifts that hold still and replaces registered_masks")
        self.external_masks = external_masks
        self.shared_bounds = shared_bounds
        self.registered_shift = registered_shift
        self.float_support = float_support
        self.follow_params = follow_params
        self.registered_masks = registered_masks
        self.shared_valid = shared_valid
        ports = {
            "valid": In(1), "acc": In(signed(32)), "bias": In(signed(32)), "float_mode": In(1),
            "multiplier": In(54), "shifts": In(16), "zero_point": In(signed(8)),
            "act_min": In(signed(8)), "act_max": In(signed(8)),
            "out_valid": Out(1), "value": Out(signed(8)),
        }
        if shared_valid:
            ports["stage_valid"] = In(LATENCY)
        if external_masks:
            ports.update(round_mask=In(32), round_below=In(32), round_above=In(33))
        if shared_bounds:
            ports.update(clamp_low=In(signed(10)), clamp_high=In(signed(10)))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        valid = [self.valid]
        for index in range(LATENCY):
            if self.shared_valid:
                valid.append(self.stage_valid[index])
                continue
            stage_valid = Signal(name=f"valid{index + 1}")
            m.d.sync += stage_valid.eq(valid[-1])
            valid.append(stage_valid)
        m.d.comb += self.out_valid.eq(valid[LATENCY])

        def stage(index, name, value, shape):
            """``value`` registered into stage ``index`` (1-based), loaded only when a value moves in."""
            held = Signal(shape, name=f"{name}_{index}", reset_less=True)
            with m.If(valid[index - 1]):
                m.d.sync += held.eq(value)
            return held

        def wire(name, value, shape):
            signal = Signal(shape, name=name)
            m.d.comb += signal.eq(value)
            return signal

        float_mode = self.float_mode if self.float_support else Const(0, 1)
        if self.follow_params:
            # copies registered stage by stage up to the stage whose logic reads them
            shifts, multipliers = [self.shifts], [self.multiplier]
            for index in range(1, 12):
                shifts.append(stage(index, "shifts", shifts[-1], 16))
                if index <= 5:
                    multipliers.append(stage(index, "multiplier", multipliers[-1], 54))
            left, exponent, right = shifts[2][:5], shifts[4][:7], shifts[11][8:13]
            multiplier = multipliers[5]
        else:
            left, right, exponent = self.shifts[:5], self.shifts[8:13], self.shifts[:7]
            multiplier = self.multiplier

        # 1-2: the accumulator, then with its bias.
        acc = stage(1, "acc", self.acc, signed(32))
        acc = stage(2, "biased", acc + self.bias, signed(32))

        # 3: |acc| for float mode (normalized below) and acc << left for double rounding.
        magnitude = stage(3, "magnitude", Mux(acc < 0, -acc, acc), 32)
        shifted = stage(3, "shifted", (acc << left)[:32].as_signed(), signed(32))
        acc_negative = stage(3, "acc_negative", acc[31], 1)

        # 4: the bit length of |acc| (0 for acc = 0), the shift that normalizes it
        # (32 - length, mod 32) from the same selection tree, and |acc << left|.
        def bit_length(lo, hi):
            # a balanced tree of multiplexers: a chain would nest too deeply for Amaranth's simulator
            if hi - lo == 1:
                return magnitude[lo], Const(lo + 1, range(33)), Const((31 - lo) % 32, 5)
            middle = (lo + hi) // 2
            any_low, length_low, norm_low = bit_length(lo, middle)
            any_high, length_high, norm_high = bit_length(middle, hi)
            return (any_low | any_high, Mux(any_high, length_high, Mux(any_low, length_low, 0)),
                    Mux(any_high, norm_high, Mux(any_low, norm_low, 0)))

        _, length, normalize_by = bit_length(0, 32)
        length = stage(4, "length", length, range(33))
        normalize_by = stage(4, "normalize_by", normalize_by, 5)
        shifted_magnitude = stage(4, "shifted_magnitude", Mux(shifted < 0, -shifted, shifted), 32)
        magnitude = stage(4, "magnitude", magnitude, 32)
        # The one-bit flags and the float shift travel together, one register per stage
        # (a verilated model then moves one value per stage, not four).
        signs = stage(4, "signs", Cat(shifted[31], acc_negative), 2)
        negative, acc_negative = signs[0], signs[1]

        # 5: float mode works on |acc| normalized to [2^31, 2^32), so the product
        # with the 53-bit mantissa has 84 or 85 bits and rounding it to 53
        # significant bits drops a fixed 31 or 32. The operand of the low product
        # serves both modes.
        normalized = wire("normalized", magnitude << normalize_by, 32)
        shift_base = wire("shift_base", exponent + 32 - length, signed(10))
        flags = stage(5, "flags", Cat(negative, acc_negative, length == 0, shift_base), 13)

        # 6-9: low = operand * M[0:32] and high = normalized * M[32:53] from 16-bit
        # partial products: the multipliers' operand registers (6), the registered
        # products (7), the middle terms (8), the sums (9). The products are registered
        # products (hw/dsp.py): on an ECP5 a multiplier block whose own registers are
        # stages 6 and 7, loaded from stage-5 registers with no logic between, so
        # the long routing into the DSP column is a path of its own.
        def product(name, a, b, b_width):
            a_held = stage(6, f"{name}_a", a, 32)
            b_held = stage(6, f"{name}_b", b[:b_width], b_width)
            a_parts = [(a_held[:16], a[:16]), (a_held[16:32], a[16:32])]
            b_parts = [(b_held[:16], b[:16]), (b_held[16:b_width], b[16:b_width])]
            pp = {(i, j): registered_product(m, platform, f"{name}_pp{i}{j}", a=a_parts[i][1], b=b_parts[j][1],
                                             a_held=a_parts[i][0], b_held=b_parts[j][0], a_enable=valid[5],
                                             b_enable=valid[5], p_enable=valid[6])
                  for i in range(2) for j in range(2)}
            middle = stage(8, f"{name}_middle", pp[0, 1] + pp[1, 0], max(32, b_width) + 1)
            outer = stage(8, f"{name}_outer", Cat(pp[0, 0], pp[1, 1]), 32 + b_width)
            return stage(9, name, outer + (middle << 16), 32 + b_width)

        operand = stage(5, "operand", Mux(float_mode, normalized, shifted_magnitude), 32)
        low = product("low", operand, multiplier[:32], 32)
        if self.float_support:
            normalized = stage(5, "normalized", normalized, 32)
            high_part = product("high_part", normalized, multiplier[32:53], 21)
        for index in (6, 7, 8, 9):
            flags = stage(index, "flags", flags, 13)
        negative = flags[0]

        # 10: double rounding, first step on the magnitude: (|p| + 2^30) >> 31 for
        # p >= 0 and -((|p| + 2^30 - 1) >> 31) for p < 0 is the nudge-and-truncate of
        # the reference, without 65-bit values. Float: the product >> 32.
        high_magnitude = stage(10, "high_magnitude", (low[:63] + Mux(negative, (1 << 30) - 1, 1 << 30)) >> 31, 33)
        if self.float_support:
            flags = stage(10, "flags", flags, 13)
            negative, acc_negative, zero, shift_base = flags[0], flags[1], flags[2], flags[3:13].as_signed()
        else:
            negative = stage(10, "negative", negative, 1)

        # 11: the sign; float: round the 84/85-bit product to 53 bits, half to even.
        high = stage(11, "high", Mux(negative, -high_magnitude, high_magnitude), signed(34))

        # 12: RoundingDivideByPOT with the gemmlowp threshold rule (mask from
        # per-channel registers that hold still).
        high_shifted = stage(12, "high_shifted", high >> right, signed(34))
        if self.external_masks:
            round_up = stage(12, "round_up", (high[:32] & self.round_mask) >
                             Mux(high[33], self.round_above, self.round_below), 1)
        elif self.registered_masks:
            # The mask and both thresholds (mask >> 1, plus 1 when negative) are
            # registered a stage ahead, so stage 12 holds one compare.
            # They are decoded into stage 11, beside the value: from the shift's copy one
            # stage earlier when it follows the value, else from the held shift.
            source = shifts[10][8:13] if self.follow_params else right
            # A verilated model works this decode out every cycle, value or not (870
            # instructions a cycle over gemm's eight requantizers, whichever way the
            # expressions are written); gemm decodes once per tile instead (external_masks).
            decode = decoded_rounding_masks if self.registered_shift else rounding_masks
            mask, below, above = (stage(11, name, value, width) for name, value, width
                                  in zip(("mask", "below", "above"), decode(source), (32, 32, 33)))
            round_up = stage(12, "round_up", (high[:32] & mask) > Mux(high[33], above, below), 1)
        else:
            mask = wire("mask", (Const(1, 32) << right)[:32] - 1, 32)
            round_up = stage(12, "round_up", (high[:32] & mask) > ((mask >> 1) + high[33]), 1)
        # 13: the double-rounding result.
        rounded = stage(13, "rounded", high_shifted + round_up, signed(34))

        if self.float_support:
            upper = stage(10, "upper", high_part + low[32:], 54)
            # The bits below the kept ones are reduced beside the adder, not after it.
            low_bits = stage(10, "low_bits", low[30:32], 2)
            sticky_31 = stage(10, "sticky_31", low[:31] != 0, 1)
            sticky_30 = stage(10, "sticky_30", low[:30] != 0, 1)
            top = upper[52]
            kept = wire("kept", Mux(top, upper[:53], Cat(low_bits[1], upper[:52])), 53)
            guard = Mux(top, low_bits[1], low_bits[0])
            sticky = Mux(top, sticky_31, sticky_30)
            mantissa = stage(11, "mantissa", kept + (guard & (sticky | kept[0])), 55)
            shift = stage(11, "shift", shift_base - Mux(top, 32, 31), signed(10))
            signs = stage(11, "signs", Cat(zero, acc_negative), 2)
            # 12-13: mantissa * 2^-shift as ((mantissa >> (shift - 1)) + 1) >> 1, which
            # avoids a left shift that would widen; shifts beyond 63 give 0.
            amount = (stage(11, "shift_less_one", (shift_base - Mux(top, 33, 32))[:6], 6) if self.registered_shift
                      else (shift - 1)[:6])
            scaled_down = stage(12, "scaled_down", mantissa >> amount, 55)
            too_far = stage(12, "too_far", shift > 63, 1)
            overflow = stage(12, "overflow", shift <= 0, 1)
            signs = stage(12, "signs", signs, 2)
            zero, acc_negative = signs[0], signs[1]
            # 13: the rounded integer, saturated: ((x + 1) >> 1) >= 2^31 exactly when x >= 2^32 - 1,
            # which is decided from the bits of x beside the adder, not after it.
            saturate = overflow | (~too_far & ((scaled_down[32:] != 0) | (scaled_down[:32] == 0xFFFF_FFFF)))
            saturated = stage(13, "saturated", Mux(saturate, 1 << 31, Mux(zero | too_far, 0, (scaled_down + 1) >> 1)),
                              33)
            acc_negative = stage(13, "acc_negative", acc_negative, 1)
            # 14: the sign.
            signed_float = Mux(acc_negative, -saturated.as_signed(), saturated.as_signed())
            result = stage(14, "result", Mux(float_mode, signed_float, rounded)[:34].as_signed(), signed(34))
        else:
            result = stage(14, "result", rounded, signed(34))

        # 15: the output zero point, and the clamp's two comparisons made beside it, on the
        # value before the zero point against the bounds less the zero point (per-job
        # values, registered: they hold still while values pass); 16: the clamp's choice.
        # Adding and then comparing in one stage was gemm's critical path (98.8 MHz).
        if self.shared_bounds:
            low, high = self.clamp_low, self.clamp_high
        else:
            low, high = clamp_bounds(m, self.act_min, self.act_max, self.zero_point)
        with_zero_point = stage(15, "with_zero_point", (result + self.zero_point)[:8], 8)
        bounds = stage(15, "clamp", Cat(result < low, result > high), 2)
        clamped = Mux(bounds[0], self.act_min, Mux(bounds[1], self.act_max, with_zero_point.as_signed()))
        m.d.comb += self.value.eq(stage(16, "value", clamped, signed(8)))
        return m
