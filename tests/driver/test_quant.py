import numpy as np
import pytest

from accelkit.driver.layers import conv_output_size, im2col
from accelkit.driver.quant import (activation_range, float_scale_fields, multiply_double_rounding, multiply_float,
                                   quantize_multiplier)
from accelkit.errors import ParameterError


def test_quantize_multiplier_matches_frexp_convention():
    multiplier, shift = quantize_multiplier(0.75)
    assert (int(multiplier), int(shift)) == (round(0.75 * (1 << 31)), 0)
    multiplier, shift = quantize_multiplier(np.array([0.001, 1.5]))
    assert np.all(multiplier >= 1 << 30) and np.all(multiplier < 1 << 31)
    assert np.allclose(multiplier * 2.0 ** (shift.astype(float) - 31), [0.001, 1.5], rtol=1e-9)


def test_quantize_multiplier_arrays_match_the_scalar_rule():
    # the scalar rule (math.frexp, Python's round: halves to even) against the vectorized split,
    # on random scales, the carry to 2^31, flushing below 2^-31 and exact halves of the last bit
    import math

    def scalar(value):
        if value == 0.0:
            return 0, 0
        fraction, exponent = math.frexp(value)
        q = round(fraction * (1 << 31))
        if q == 1 << 31:
            q, exponent = q // 2, exponent + 1
        return (0, 0) if exponent < -31 else (q, exponent)

    rng = np.random.default_rng(3)
    values = np.concatenate([2.0 ** rng.uniform(-40, 10, 2000), [0.0, 1.0, 2.0 ** -31, 2.0 ** -32, 1 - 2.0 ** -33],
                             [(k + 0.5) / 2 ** 31 for k in range(1 << 30, (1 << 30) + 20)]])
    multipliers, shifts = quantize_multiplier(values)
    assert [(int(m), int(s)) for m, s in zip(multipliers, shifts)] == [scalar(v) for v in values]


def test_double_rounding_cases_seen_on_litert():
    # acc=281 at scale 0.375: exact 105.375; LiteRT's CONV_2D gives 104 + zp(-2) = 104 -> 106 before zp.
    multiplier, shift = quantize_multiplier(0.375)
    assert multiply_double_rounding(281, multiplier, shift) == 106
    # -88 * 0.5625 = -49.5: the double-rounding path gives -49 (ties away from zero, then round again).
    multiplier, shift = quantize_multiplier(0.5625)
    assert multiply_double_rounding(-88, multiplier, shift) == -49


def test_float_rounding_is_half_away_from_zero_and_exact():
    assert multiply_float(-9600, 2.0 ** -8) == -38
    assert multiply_float(3, 0.5) == 2 and multiply_float(-3, 0.5) == -2
    # 0.49999999999999994 must not round up (adding 0.5 in floating point would).
    assert multiply_float(1, 0.49999999999999994) == 0


def test_float_scale_fields_are_exact():
    mantissa, exponent = float_scale_fields(np.array([0.001, 3.5]))
    assert np.all(mantissa.astype(float) * 2.0 ** -exponent.astype(float) == [0.001, 3.5])
    assert np.all(mantissa < 1 << 53) and np.all(mantissa >= 1 << 52)


def test_bad_scales_and_activations_refused():
    with pytest.raises(ParameterError, match="positive finite"):
        quantize_multiplier(-1.0)
    with pytest.raises(ParameterError, match="fused activation must be one of"):
        activation_range("TANH", 0.1, 0)


def test_relu6_range():
    assert activation_range("RELU6", 0.05, -10) == (-10, 110)


def test_im2col_same_padding_uses_pad_value():
    x = np.arange(1 * 3 * 3 * 1, dtype=np.int8).reshape(1, 3, 3, 1)
    patches, (n, oh, ow) = im2col(x, (3, 3), (1, 1), (1, 1), "SAME", pad_value=-7)
    assert (oh, ow) == (3, 3)
    assert patches[0].tolist() == [-7, -7, -7, -7, 0, 1, -7, 3, 4]
    assert conv_output_size(7, 3, 2, 2, "VALID") == 2
