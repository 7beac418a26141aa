"""TFLite operators that stay on the CPU, in numpy, bit-exact with LiteRT's reference kernels.

A board without LiteRT (PYNQ-Z1/Z2 images are armv7l, for which no LiteRT
wheel exists) still runs a whole model: the layers the accelerator takes go to
it, declined layers of a registered kind run the kind's ``reference``, and the
operators here run everything else. Each one is a small dataclass made from a
TFLite operator (``from_tflite``, reading the project's flatbuffer objects by
attribute, as the kinds do), holding plain values only so that it can be
written into a board program and read back, with ``reference(*inputs)``.

Only the operators the bundled models need beside their accelerated layers
are here; :func:`cpu_op_for` refuses any other with the operator's name, so a
model the board cannot run is refused on the host, when its program is written.

SOFTMAX follows LiteRT 2.3's reference kernel for int8, which is gemmlowp's
fixed-point arithmetic (not the float lookup table of the optimized kernel):
the input difference to the row maximum is rescaled to Q5.26, exponentiated
in Q0.31, summed in Q12.19, and the sum's reciprocal is computed by Newton
iterations; the helpers below are those primitives on int64 numpy arrays
holding int32 values.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ParameterError, UnsupportedLayer

__all__ = ["CpuOp", "Reshape", "Softmax", "CPU_OPS", "cpu_op_for", "cpu_op_from_dict"]

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def _wrap32(x):
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)


def _doubling_high_mul(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    product = a * b
    total = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))     # C division truncates toward zero
    return np.where((a == b) & (a == _INT32_MIN), _INT32_MAX, high)


def _divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent, halves away from zero."""
    x = np.asarray(x, dtype=np.int64)
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def _multiply_by_pot(x, exponent):
    """gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent: a saturating left shift."""
    x = np.asarray(x, dtype=np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, _INT32_MAX, np.where(x < -threshold, _INT32_MIN, _wrap32(x << exponent)))


def _exp_on_quarter_interval(a):
    """exp(a) for Q0.31 ``a`` in [-1/4, 0): a Taylor polynomial around -1/8 (gemmlowp's constants)."""
    exp_minus_one_eighth, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = _doubling_high_mul(x, x)
    x3 = _doubling_high_mul(x2, x)
    x4 = _doubling_high_mul(x2, x2)
    x4_over_4 = _divide_by_pot(x4, 2)
    tail = _divide_by_pot(_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1)
    return exp_minus_one_eighth + _doubling_high_mul(exp_minus_one_eighth, x + tail)


#: exp(-2^k) in Q0.31 for k = -2..4: the factors of the barrel shifter over a Q5.26 input's integer bits
_EXP_OF_POWERS = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
                  (3, 720401), (4, 242))


def _exp_on_negative_values(a):
    """exp(a) in Q0.31 of Q5.26 values ``a`` <= 0 (gemmlowp's exp_on_negative_values for 5 integer bits)."""
    quarter = 1 << 24
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = _exp_on_quarter_interval(_multiply_by_pot(a_mod_quarter_minus_quarter, 5))
    remainder = _wrap32(a_mod_quarter_minus_quarter - a)
    for exponent, factor in _EXP_OF_POWERS:
        result = np.where(remainder & (1 << (26 + exponent)), _doubling_high_mul(result, factor), result)
    return np.where(a == 0, _INT32_MAX, result)


def _one_over_one_plus_x(a):
    """1 / (1 + a) for Q0.31 ``a`` in [0, 1), as Q0.31 (gemmlowp's Newton-Raphson division)."""
    total = a + _INT32_MAX
    half_denominator = (total + 1) // 2               # RoundingHalfSum of two non-negative values
    x = 1515870810 + _doubling_high_mul(half_denominator, -1010580540)     # 48/17 - 32/17 * d, in Q2.29
    for _ in range(3):
        one_minus = (1 << 29) - _doubling_high_mul(half_denominator, x)
        x = x + _multiply_by_pot(_doubling_high_mul(x, one_minus), 2)
    return _multiply_by_pot(x, 1)


def _reciprocal(total, integer_bits):
    """TFLite's GetReciprocal: (Q0.31 scale, bits over unit) with 1/total = scale * 2^-bits (total > 0)."""
    headroom_plus_one = 32 - int(total).bit_length()
    shifted_minus_one = ((int(total) << headroom_plus_one) & 0xFFFF_FFFF) - (1 << 31)
    return int(_one_over_one_plus_x(np.int64(shifted_minus_one))), integer_bits - headroom_plus_one


class CpuOp:
    """Mixin of the CPU operators: ``op`` is the TFLite operator's name (a class attribute)."""

    op = "abstract"

    def as_dict(self):
        """Plain values only (what a board program stores); :func:`cpu_op_from_dict` reads it back."""
        return {"op": self.op, **asdict(self)}

    def reference(self, *inputs):
        raise NotImplementedError


@dataclass
class Reshape(CpuOp):
    """RESHAPE (and any operator that only relabels the shape): the output tensor's shape."""

    shape: tuple

    op = "RESHAPE"

    def reference(self, x, *_):
        return np.ascontiguousarray(x).reshape(tuple(self.shape))

    @classmethod
    def from_tflite(cls, op, tensors):
        return cls(shape=[int(d) for d in tensors[op.outputs[0]].shape])


@dataclass
class Softmax(CpuOp):
    """int8 SOFTMAX over the last axis, as LiteRT's reference kernel (output scale 1/256, zero point -128)."""

    beta: float
    input_scale: float

    op = "SOFTMAX"
    #: integer bits of the rescaled input difference and of the sum of exponentials (the kernel's constants)
    _DIFF_BITS, _SUM_BITS = 5, 12

    def __post_init__(self):
        if not (self.beta > 0 and math.isfinite(self.beta)) or not (self.input_scale > 0
                                                                    and math.isfinite(self.input_scale)):
            raise ParameterError(f"SOFTMAX needs a positive beta and input scale, not {self.beta} and "
                                 f"{self.input_scale}")

    def _scaling(self):
        """(multiplier, left shift, smallest difference that counts), as TFLite's PreprocessSoftmaxScaling."""
        real = min(float(np.float32(self.beta)) * float(np.float32(self.input_scale))
                   * (1 << (31 - self._DIFF_BITS)), (1 << 31) - 1.0)
        fraction, shift = math.frexp(real)
        multiplier = round(fraction * (1 << 31))
        if multiplier == 1 << 31:
            multiplier, shift = multiplier // 2, shift + 1
        if shift < 0:
            raise ParameterError(f"SOFTMAX input scale {self.input_scale} x beta {self.beta} is too small for "
                                 "the reference kernel's fixed-point scaling")
        radius = math.floor(((1 << self._DIFF_BITS) - 1) * (1 << (31 - self._DIFF_BITS)) / (1 << shift))
        return multiplier, shift, -radius

    def reference(self, x):
        x = np.asarray(x)
        if x.dtype != np.int8:
            raise ParameterError(f"SOFTMAX input must be int8, not {x.dtype}")
        multiplier, shift, diff_min = self._scaling()
        rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
        out = np.full(rows.shape, -128, dtype=np.int8)
        for row, result in zip(rows, out):
            diff = row - row.max()
            counted = diff >= diff_min
            # the kernel skips the rest before scaling them, so their scaled values never overflow int32
            exps = _exp_on_negative_values(_doubling_high_mul(np.where(counted, diff, 0) << shift, multiplier))
            total = 0
            for value in _divide_by_pot(exps[counted], self._SUM_BITS):     # Q0.31 to Q12.19, summed in order
                total = int(_wrap32(total + int(value)))
            scale, bits_over_unit = _reciprocal(total, self._SUM_BITS)
            exponent = bits_over_unit + 31 - 8
            if not 0 <= exponent <= 31:
                raise ParameterError(f"SOFTMAX over {row.size} values is outside what LiteRT's reference kernel "
                                     f"computes (exponent {exponent})")
            values = _divide_by_pot(_doubling_high_mul(scale, exps), exponent) - 128
            result[counted] = np.clip(values[counted], -128, 127)
        return out.reshape(x.shape)

    @classmethod
    def from_tflite(cls, op, tensors):
        x, out = tensors[op.inputs[0]], tensors[op.outputs[0]]
        if x.dtype != np.int8 or out.dtype != np.int8:
            raise UnsupportedLayer("only int8 SOFTMAX runs on the board's CPU")
        if x.scales is None or x.scales.size != 1 or out.scales is None or out.scales.size != 1:
            raise UnsupportedLayer("SOFTMAX tensors are not per-tensor quantized")
        if int(out.zero_points[0]) != -128 or abs(float(out.scales[0]) - 1 / 256) > 1e-3 / 256:
            raise UnsupportedLayer(f"SOFTMAX output quantization is scale {float(out.scales[0])}, zero point "
                                   f"{int(out.zero_points[0])}; LiteRT requires 1/256 and -128")
        return cls(beta=float(op.options.get("beta", 1.0)), input_scale=float(x.scales[0]))


#: TFLite operator name -> the CPU operator class that runs it
CPU_OPS = {cls.op: cls for cls in (Reshape, Softmax)}


def cpu_op_for(op, tensors):
    """The CPU operator for a TFLite operator, or :class:`UnsupportedLayer` naming what is not supported."""
    cls = CPU_OPS.get(op.op)
    if cls is None:
        raise UnsupportedLayer(f"{op.op} has no numpy implementation for the board's CPU (there are: "
                               f"{', '.join(sorted(CPU_OPS))})")
    return cls.from_tflite(op, tensors)


def cpu_op_from_dict(values):
    """The CPU operator :meth:`CpuOp.as_dict` wrote."""
    values = dict(values)
    name = values.pop("op", None)
    if name not in CPU_OPS:
        raise ParameterError(f"CPU operator {name!r} is not one of {', '.join(sorted(CPU_OPS))}")
    return CPU_OPS[name](**values)
