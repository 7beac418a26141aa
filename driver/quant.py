"""TFLite int8 integer semantics, in numpy: the reference every accelerator is held to.

LiteRT 2.3's reference kernels (``OpResolverType.BUILTIN_REF``) requantize in two
different ways, established by comparing against them on rounding-tie cases
(tests/sw/test_tflite_reference.py keeps checking it):

* CONV_2D: ``MultiplyByQuantizedMultiplier`` with *double rounding* (gemmlowp's
  saturating rounding doubling high multiply, then a rounding divide by a power
  of two); :data:`DOUBLE`.
* FULLY_CONNECTED: in floating point, ``round(double(acc) * scale)`` with
  halves away from zero, where ``scale = double(s_in) * double(s_w) / double(s_out)``
  from float32 scales; :data:`FLOAT`.

Fused activation bounds are ``zp + roundf(float32(v) / float32(scale))``.
"""

import math

import numpy as np

from ..errors import ParameterError

__all__ = ["DOUBLE", "FLOAT", "ROUNDINGS", "quantize_multiplier", "effective_scale", "float_scale_fields",
           "multiply_double_rounding", "multiply_float", "requantize", "activation_range", "ACTIVATIONS"]

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
DOUBLE = "double"
FLOAT = "float"
ROUNDINGS = (DOUBLE, FLOAT)


def effective_scale(input_scale, filter_scales, output_scale):
    """Per-channel real multiplier, computed as TFLite does (float32 scales, double arithmetic)."""
    filter_scales = np.asarray(filter_scales, dtype=np.float32).astype(np.float64)
    return float(np.float32(input_scale)) * filter_scales / float(np.float32(output_scale))


def quantize_multiplier(real_multiplier):
    """Split positive real multipliers into (int32 multiplier in [2^30, 2^31), shift), as TFLite does.

    Accepts a scalar or an array; returns int64 arrays of the same shape. Vectorized (a GEMM lowers
    one multiplier per output channel for every job): ``fraction * 2^31`` is exact in a double, and
    ``np.rint`` rounds its halves to even as Python's ``round`` does.
    """
    real = np.atleast_1d(np.asarray(real_multiplier, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        bad = (real != 0.0) & ~((real > 0.0) & np.isfinite(real))
    if bad.any():
        value = real[bad][0]
        raise ParameterError(f"requantization scale must be a positive finite number, not {value}")
    fraction, exponent = np.frexp(real)
    multipliers = np.rint(fraction * float(1 << 31)).astype(np.int64)
    shifts = exponent.astype(np.int64)
    carried = multipliers == 1 << 31
    multipliers[carried] //= 2
    shifts[carried] += 1
    flushed = shifts < -31          # too small to represent: TFLite flushes to zero
    multipliers[flushed], shifts[flushed] = 0, 0
    if np.ndim(real_multiplier) == 0:
        return multipliers[0], shifts[0]
    return multipliers, shifts


def float_scale_fields(scale):
    """A double scale as (53-bit integer mantissa M, exponent E) with scale == M * 2^-E exactly."""
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    mantissas = np.zeros(scale.shape, dtype=np.int64)
    exponents = np.zeros(scale.shape, dtype=np.int64)
    for index, value in np.ndenumerate(scale):
        if not value > 0.0 or not math.isfinite(value):
            raise ParameterError(f"requantization scale must be a positive finite number, not {value}")
        fraction, exponent = math.frexp(value)
        mantissa, shift = int(fraction * (1 << 53)), 53 - exponent
        if not 0 <= shift <= 127:
            raise ParameterError(f"requantization scale {value} is outside the supported range 2^-74..2^53")
        mantissas[index], exponents[index] = mantissa, shift
    return mantissas, exponents


def _wrap32(x):
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)


def multiply_double_rounding(x, multiplier, shift):
    """TFLite's double-rounding ``MultiplyByQuantizedMultiplier`` on int arrays (broadcasting)."""
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any(shift > 30) or np.any(shift < -31):
        raise ParameterError(f"requantization shift must be in -31..30, got {shift.min()}..{shift.max()}")
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    a = _wrap32(x << left)
    product = a * multiplier
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    # C's integer division truncates toward zero.
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def multiply_float(x, scale):
    """``round(double(x) * scale)`` with halves away from zero, as the FULLY_CONNECTED reference kernel."""
    product = np.asarray(x, dtype=np.float64) * np.asarray(scale, dtype=np.float64)
    return np.clip(_round_half_away(product), -(2.0 ** 31), 2.0 ** 31 - 1).astype(np.int64)


def _round_half_away(values):
    # Exact std::round: adding 0.5 first could round up in floating point.
    whole = np.trunc(values)
    return whole + np.sign(values) * (np.abs(values - whole) >= 0.5)


def requantize(acc, bias, output_zero_point, act_min, act_max, *, rounding, multiplier=None, shift=None,
               scale=None):
    """int32 accumulators (last axis = output channel) to int8, TFLite-exactly."""
    acc = _wrap32(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64))
    if rounding == DOUBLE:
        scaled = multiply_double_rounding(acc, multiplier, shift)
    elif rounding == FLOAT:
        scaled = multiply_float(acc, scale)
    else:
        raise ParameterError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    return np.clip(scaled + int(output_zero_point), act_min, act_max).astype(np.int8)


def activation_range(activation, scale, zero_point):
    """The int8 clamp range of a fused activation (TFLite's CalculateActivationRangeQuantized)."""
    if activation not in ACTIVATIONS:
        raise ParameterError(f"fused activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
    low, high = -128, 127

    def quantize(value):
        # float32 division, then roundf (halves away from zero)
        q = np.float32(value) / np.float32(scale)
        return int(zero_point) + int(_round_half_away(np.float64(q)))

    if activation == "RELU":
        low = max(low, quantize(0.0))
    elif activation == "RELU6":
        low, high = max(low, quantize(0.0)), min(high, quantize(6.0))
    elif activation == "RELU_N1_TO_1":
        low, high = max(low, quantize(-1.0)), min(high, quantize(1.0))
    return low, high
