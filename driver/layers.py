"""What layers lower to, and what running one costs.

Every GEMM-shaped accelerator runs a :class:`QuantizedGemm`; the layer kinds
(``driver/kinds``) lower to it with these helpers (im2col, the input zero point
folded into the bias so the array stays pure int8 x int8). :class:`LayerStats`
is what an accelerator reports for one layer, simulated or estimated.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from .quant import DOUBLE, FLOAT, ROUNDINGS, activation_range, effective_scale, quantize_multiplier, requantize

__all__ = ["QuantizedGemm", "LayerStats", "im2col", "conv_output_size", "same_padding", "per_channel_scales",
           "lower_to_gemm"]


@dataclass
class QuantizedGemm:
    """out[M, N] = requantize(a[M, K] @ b[K, N] + bias[N] + row_offset * sum_k a[M, k]), per output column.

    ``scale`` holds each column's real multiplier (double). With ``rounding ==
    "double"`` it is applied as TFLite's fixed-point multiplier/shift pair (CONV_2D),
    with ``"float"`` in double precision (FULLY_CONNECTED); see ``driver.quant``.
    ``row_offset`` (TFLite's ``-zero_point`` of B, -127..128) gives each output row
    the term a product of two zero-point-shifted activations needs, (a - za)(b - zb),
    which a per-column bias cannot hold: -zb * rowsum(a[m]).
    """

    a: np.ndarray            # int8 [M, K]
    b: np.ndarray            # int8 [K, N]
    bias: np.ndarray         # int32 [N], input zero point already folded in
    scale: np.ndarray        # float64 [N]
    rounding: str = DOUBLE
    output_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127
    row_offset: int = 0

    def __post_init__(self):
        if self.a.ndim != 2 or self.b.ndim != 2 or self.a.shape[1] != self.b.shape[0]:
            raise ParameterError(f"GEMM operands do not chain: a {self.a.shape}, b {self.b.shape}")
        if self.a.dtype != np.int8 or self.b.dtype != np.int8:
            raise ParameterError(f"GEMM operands must be int8, not {self.a.dtype} and {self.b.dtype}")
        n = self.b.shape[1]
        self.bias = np.broadcast_to(np.asarray(self.bias, dtype=np.int64), (n,)).copy()
        self.scale = np.broadcast_to(np.asarray(self.scale, dtype=np.float64), (n,)).copy()
        if self.rounding not in ROUNDINGS:
            raise ParameterError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {self.rounding!r}")
        self.multiplier, self.shift = quantize_multiplier(self.scale)
        if not -128 <= self.act_min <= self.act_max <= 127:
            raise ParameterError(f"activation range {self.act_min}..{self.act_max} is not within int8")
        if not -128 <= self.output_zero_point <= 127:
            raise ParameterError(f"output zero point {self.output_zero_point} is not int8")
        if not -127 <= self.row_offset <= 128:
            raise ParameterError(f"row offset {self.row_offset} is not the negation of an int8 zero point "
                                 "(-127..128)")

    @property
    def shape(self):
        return self.a.shape[0], self.b.shape[1], self.a.shape[1]   # M, N, K

    @property
    def macs(self):
        m, n, k = self.shape
        return m * n * k

    def reference(self) -> np.ndarray:
        """TFLite-exact result in numpy."""
        # float64 BLAS is exact here: |a*b| <= 2^14, so sums stay far below 2^53 for any K this
        # package accepts, and it is much faster than numpy's integer matmul.
        acc = (self.a.astype(np.float64) @ self.b.astype(np.float64)).astype(np.int64)
        if self.row_offset:
            acc += self.row_offset * self.a.astype(np.int64).sum(axis=1, keepdims=True)
        return requantize(acc, self.bias, self.output_zero_point, self.act_min, self.act_max,
                          rounding=self.rounding, multiplier=self.multiplier, shift=self.shift, scale=self.scale)


@dataclass
class LayerStats:
    """What one layer cost on an accelerator."""

    op: str
    shape: dict
    macs: int
    cycles: int
    pes: int
    bytes_in: int
    bytes_out: int
    jobs: int = 1
    busy_cycles: int = 0
    in_stall_cycles: int = 0
    out_stall_cycles: int = 0
    array_macs: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def utilization(self):
        return self.macs / (self.pes * self.cycles) if self.cycles else 0.0

    def as_dict(self):
        return {"op": self.op, "shape": self.shape, "macs": self.macs, "cycles": self.cycles,
                "utilization": self.utilization, "pes": self.pes, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "jobs": self.jobs, "busy_cycles": self.busy_cycles,
                "in_stall_cycles": self.in_stall_cycles, "out_stall_cycles": self.out_stall_cycles,
                "array_macs": self.array_macs, **self.extra}


def conv_output_size(size, kernel, stride, dilation, padding):
    effective = (kernel - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        return (size - effective) // stride + 1 if size >= effective else 0
    raise ParameterError(f"padding must be 'SAME' or 'VALID', not {padding!r}")


def same_padding(size, kernel, stride, dilation, out):
    """Leading pad of TFLite's SAME padding (the extra odd pixel goes at the end)."""
    effective = (kernel - 1) * dilation + 1
    return max((out - 1) * stride + effective - size, 0) // 2


def im2col(x, kernel_hw, stride, dilation, padding, pad_value):
    """NHWC int8 input to patches [N*OH*OW, KH*KW*C], tap order (kh, kw, c) like TFLite filters."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, stride, dilation
    oh = conv_output_size(h, kh, sh, dh, padding)
    ow = conv_output_size(w, kw, sw, dw, padding)
    if oh <= 0 or ow <= 0:
        raise ParameterError(f"convolution of a {h}x{w} input with a {kh}x{kw} kernel "
                             f"(dilation {dh}x{dw}, {padding}) has no output")
    top = same_padding(h, kh, sh, dh, oh) if padding == "SAME" else 0
    left = same_padding(w, kw, sw, dw, ow) if padding == "SAME" else 0
    bottom = max((oh - 1) * sh + (kh - 1) * dh + 1 - h - top, 0)
    right = max((ow - 1) * sw + (kw - 1) * dw + 1 - w - left, 0)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    strides = padded.strides
    windows = np.lib.stride_tricks.as_strided(
        padded, shape=(n, oh, ow, kh, kw, c),
        strides=(strides[0], strides[1] * sh, strides[2] * sw, strides[1] * dh, strides[2] * dw, strides[3]),
        writeable=False)
    return np.ascontiguousarray(windows).reshape(n * oh * ow, kh * kw * c), (n, oh, ow)


def per_channel_scales(scales, channels, what):
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    if scales.size == 1:
        scales = np.repeat(scales, channels)
    if scales.size != channels:
        raise ParameterError(f"{what} has {scales.size} scales for {channels} output channels")
    return scales


def check_pair(value, what, layer):
    """Raise ParameterError unless ``value`` is a (height, width) pair of positive integers (stride, dilation)."""
    try:
        pair = tuple(value)
    except TypeError:
        pair = None
    if pair is None or len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                                             for v in pair):
        raise ParameterError(f"{layer} {what} must be two positive integers, not {value!r}")


def check_quantization(layer, input_scale, output_scale, filter_scales):
    """Raise ParameterError unless the scales are finite, input/output positive, filters non-negative."""
    for what, scale in (("input scale", input_scale), ("output scale", output_scale)):
        if not np.isfinite(scale) or scale <= 0:
            raise ParameterError(f"{layer} {what} must be positive and finite, not {scale}")
    scales = np.asarray(filter_scales, dtype=np.float64)
    if scales.size == 0 or not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise ParameterError(f"{layer} filter scales must be finite and non-negative, not {scales.tolist()[:8]}")


def lower_to_gemm(a, b, layer):
    """The QuantizedGemm of patches ``a`` [M, K] and weights ``b`` [K, N] with ``layer``'s quantization.

    The input zero point is folded into the bias (bias - zp * column sums of b), so the array stays int8 x int8.
    """
    n = b.shape[1]
    scales = per_channel_scales(layer.filter_scales, n, "filter")
    scale = effective_scale(layer.input_scale, scales, layer.output_scale)
    bias = np.zeros(n, np.int64) if layer.bias is None else np.asarray(layer.bias, dtype=np.int64)
    folded = bias - int(layer.input_zero_point) * b.astype(np.int64).sum(axis=0)
    act_min, act_max = activation_range(layer.activation, layer.output_scale, layer.output_zero_point)
    return QuantizedGemm(np.ascontiguousarray(a, dtype=np.int8), np.ascontiguousarray(b, dtype=np.int8),
                         folded, scale, layer.rounding, int(layer.output_zero_point), act_min, act_max)
