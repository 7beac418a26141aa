"""TFLite int8 integer semantics, in numpy: the reference every accelerator is held to.

LiteRT 2.3's reference kernels requantize with a single rounding:
``(acc * multiplier + 2^(s-1)) >> s`` where ``s = 31 - shift``.
"""

import math

import numpy as np

from ..errors import ParameterError

__all__ = ["quantize_multiplier", "multiply_by_quantized_multiplier", "requantize", "activation_range",
           "ACTIVATIONS"]

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def quantize_multiplier(real_multiplier):
    """Split positive real multipliers into (int32 multiplier in [2^30, 2^31), shift), as TFLite does.

    Accepts a scalar or an array; returns int64 arrays of the same shape.
    """
    real = np.atleast_1d(np.asarray(real_multiplier, dtype=np.float64))
    multipliers = np.zeros(real.shape, dtype=np.int64)
    shifts = np.zeros(real.shape, dtype=np.int64)
    for index, value in np.ndenumerate(real):
        if value == 0.0:
            continue
        if not value > 0.0 or not math.isfinite(value):
            raise ParameterError(f"requantization scale must be a positive finite number, not {value}")
        fraction, exponent = math.frexp(value)
        q = round(fraction * (1 << 31))
        if q == 1 << 31:
            q //= 2
            exponent += 1
        if exponent < -31:  # too small to represent: TFLite flushes to zero
            q, exponent = 0, 0
        multipliers[index], shifts[index] = q, exponent
    if np.ndim(real_multiplier) == 0:
        return multipliers[0], shifts[0]
    return multipliers, shifts


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's single-rounding ``MultiplyByQuantizedMultiplier`` on int arrays (broadcasting)."""
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any(shift > 30) or np.any(shift < -31):
        raise ParameterError(f"requantization shift must be in -31..30, got {shift.min()}..{shift.max()}")
    total = 31 - shift
    rounding = np.left_shift(np.int64(1), total - 1)
    return ((x * multiplier + rounding) >> total).astype(np.int64)


def requantize(acc, bias, multiplier, shift, output_zero_point, act_min, act_max):
    """int32 accumulators (last axis = output channel) to int8, TFLite-exactly."""
    acc = np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
    acc = ((acc + (1 << 31)) % (1 << 32)) - (1 << 31)   # int32 wrap-around, as the hardware adder
    scaled = multiply_by_quantized_multiplier(acc, multiplier, shift) + int(output_zero_point)
    return np.clip(scaled, act_min, act_max).astype(np.int8)


def activation_range(activation, scale, zero_point):
    """The int8 clamp range of a fused activation (TFLite's CalculateActivationRangeQuantized)."""
    if activation not in ACTIVATIONS:
        raise ParameterError(f"fused activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
    low, high = -128, 127

    def quantize(value):
        return int(zero_point) + int(np.round(value / scale))

    if activation == "RELU":
        low = max(low, quantize(0.0))
    elif activation == "RELU6":
        low, high = max(low, quantize(0.0)), min(high, quantize(6.0))
    elif activation == "RELU_N1_TO_1":
        low, high = max(low, quantize(-1.0)), min(high, quantize(1.0))
    return low, high
