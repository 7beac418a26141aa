"""Layers as the driver sees them, and their lowering to one quantized GEMM.

Every GEMM-shaped accelerator runs a :class:`QuantizedGemm`; CONV_2D (by
im2col) and FULLY_CONNECTED lower to it here, with the input zero point folded
into the bias so the array stays pure int8 x int8.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from .quant import DOUBLE, FLOAT, ROUNDINGS, activation_range, effective_scale, quantize_multiplier, requantize

__all__ = ["QuantizedGemm", "Conv2D", "FullyConnected", "TransposeConv2D", "transpose_conv_padding", "im2col",
           "conv_output_size", "same_padding",
           "LayerStats"]


@dataclass
class QuantizedGemm:
    """out[M, N] = requantize(a[M, K] @ b[K, N] + bias[N]), per output column.

    ``scale`` holds each column's real multiplier (double). With ``rounding ==
    "double"`` it is applied as TFLite's fixed-point multiplier/shift pair (CONV_2D),
    with ``"float"`` in double precision (FULLY_CONNECTED); see ``driver.quant``.
    """

    a: np.ndarray            # int8 [M, K]
    b: np.ndarray            # int8 [K, N]
    bias: np.ndarray         # int32 [N], input zero point already folded in
    scale: np.ndarray        # float64 [N]
    rounding: str = DOUBLE
    output_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127

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


def _per_channel_scales(scales, channels, what):
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    if scales.size == 1:
        scales = np.repeat(scales, channels)
    if scales.size != channels:
        raise ParameterError(f"{what} has {scales.size} scales for {channels} output channels")
    return scales


@dataclass
class Conv2D:
    """A TFLite int8 CONV_2D: NHWC input, (Cout, KH, KW, Cin) filter, per-channel symmetric weights."""

    filters: np.ndarray
    bias: np.ndarray
    input_scale: float
    input_zero_point: int
    filter_scales: np.ndarray
    output_scale: float
    output_zero_point: int
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: str = "SAME"
    activation: str = "NONE"

    op = "conv2d"
    rounding = DOUBLE

    def gemm_shape(self, input_shape):
        """(M, N, K) of the lowered GEMM for an NHWC input shape, without any data."""
        n, h, w, _ = input_shape
        cout, kh, kw, cin = self.filters.shape
        oh = conv_output_size(h, kh, self.stride[0], self.dilation[0], self.padding)
        ow = conv_output_size(w, kw, self.stride[1], self.dilation[1], self.padding)
        return n * oh * ow, cout, kh * kw * cin

    def lower(self, x):
        """Return (QuantizedGemm, output shape NHWC)."""
        if x.ndim != 4 or x.shape[3] != self.filters.shape[3]:
            raise ParameterError(f"CONV_2D input shape {x.shape} does not match filter {self.filters.shape}")
        cout, kh, kw, cin = self.filters.shape
        patches, (n, oh, ow) = im2col(x, (kh, kw), self.stride, self.dilation, self.padding,
                                      self.input_zero_point)
        weights = self.filters.reshape(cout, kh * kw * cin).T
        return _gemm(patches, weights, self), (n, oh, ow, cout)

    def reference(self, x):
        gemm, shape = self.lower(x)
        return gemm.reference().reshape(shape)


@dataclass
class FullyConnected:
    """A TFLite int8 FULLY_CONNECTED: input [batch, K], weights [N, K]."""

    weights: np.ndarray
    bias: np.ndarray
    input_scale: float
    input_zero_point: int
    filter_scales: np.ndarray
    output_scale: float
    output_zero_point: int
    activation: str = "NONE"

    op = "fc"
    rounding = FLOAT

    def gemm_shape(self, input_shape):
        n, k = self.weights.shape
        return int(np.prod(input_shape)) // k, n, k

    def lower(self, x):
        x = x.reshape(-1, self.weights.shape[1]) if x.size % self.weights.shape[1] == 0 else x
        if x.ndim != 2 or x.shape[1] != self.weights.shape[1]:
            raise ParameterError(f"FULLY_CONNECTED input shape {x.shape} does not match weights {self.weights.shape}")
        return _gemm(x, self.weights.T, self), (x.shape[0], self.weights.shape[0])

    def reference(self, x):
        gemm, shape = self.lower(x)
        return gemm.reference().reshape(shape)


def _gemm(a, b, layer):
    n = b.shape[1]
    scales = _per_channel_scales(layer.filter_scales, n, "filter")
    scale = effective_scale(layer.input_scale, scales, layer.output_scale)
    bias = np.zeros(n, np.int64) if layer.bias is None else np.asarray(layer.bias, dtype=np.int64)
    folded = bias - int(layer.input_zero_point) * b.astype(np.int64).sum(axis=0)
    act_min, act_max = activation_range(layer.activation, layer.output_scale, layer.output_zero_point)
    return QuantizedGemm(np.ascontiguousarray(a, dtype=np.int8), np.ascontiguousarray(b, dtype=np.int8),
                         folded, scale, layer.rounding, int(layer.output_zero_point), act_min, act_max)


def _c_div(a, b):
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def transpose_conv_padding(output_size, kernel, stride, padding):
    """Leading crop of TFLite's TRANSPOSE_CONV: the padding of the convolution that maps the output back.

    Mirrors ComputePaddingHeightWidth with the *output* size as the image size (dilation 1).
    """
    if padding == "SAME":
        out = (output_size + stride - 1) // stride
    elif padding == "VALID":
        out = _c_div(output_size + stride - kernel, stride)
    else:
        raise ParameterError(f"padding must be 'SAME' or 'VALID', not {padding!r}")
    return max((out - 1) * stride + kernel - output_size, 0) // 2


@dataclass
class TransposeConv2D:
    """A TFLite int8 TRANSPOSE_CONV: NHWC input, (Cout, KH, KW, Cin) filter, per-channel symmetric weights.

    Every input pixel scatters ``x * w[:, ky, kx, :]`` to output pixel
    ``(iy * sh - pad_h + ky, ix * sw - pad_w + kx)``; contributions outside the
    ``output_shape`` are dropped. Each output is then requantized like CONV_2D
    (bias, double-rounding fixed-point multiplier, zero point, clamp); the input
    zero point is subtracted from every *contributing* input, so it cannot be
    folded into a per-channel bias as for CONV_2D.
    """

    filters: np.ndarray
    bias: np.ndarray
    input_scale: float
    input_zero_point: int
    filter_scales: np.ndarray
    output_scale: float
    output_zero_point: int
    output_shape: tuple = None      # (N, OH, OW, Cout)
    stride: tuple = (1, 1)
    padding: str = "SAME"
    activation: str = "NONE"

    op = "tconv"
    rounding = DOUBLE
    #: position of the activation input among the TFLite op's inputs (output_shape, weights, input, bias)
    input_position = 2

    def __post_init__(self):
        if self.filters.ndim != 4:
            raise ParameterError(f"TRANSPOSE_CONV filters must be (Cout, KH, KW, Cin), not {self.filters.shape}")
        if self.output_shape is None or len(self.output_shape) != 4:
            raise ParameterError(f"TRANSPOSE_CONV output shape must be NHWC, not {self.output_shape!r}")
        self.output_shape = tuple(int(v) for v in self.output_shape)
        if self.output_shape[3] != self.filters.shape[0] or min(self.output_shape) < 1:
            raise ParameterError(f"TRANSPOSE_CONV output shape {self.output_shape} does not match "
                                 f"{self.filters.shape[0]} filters")
        self.stride = tuple(int(s) for s in self.stride)
        if len(self.stride) != 2 or min(self.stride) < 1:
            raise ParameterError(f"TRANSPOSE_CONV stride must be two positive integers, not {self.stride!r}")

    @property
    def kernel(self):
        return self.filters.shape[1], self.filters.shape[2]

    @property
    def pads(self):
        """(top, left) crop of the full transposed-convolution result."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        return (transpose_conv_padding(self.output_shape[1], kh, sh, self.padding),
                transpose_conv_padding(self.output_shape[2], kw, sw, self.padding))

    def check_input(self, input_shape):
        if len(input_shape) != 4 or input_shape[3] != self.filters.shape[3] or input_shape[0] != self.output_shape[0]:
            raise ParameterError(f"TRANSPOSE_CONV input shape {tuple(input_shape)} does not match filter "
                                 f"{self.filters.shape} and output {self.output_shape}")
        for axis, name in ((0, "height"), (1, "width")):
            size, k, s = self.output_shape[1 + axis], self.kernel[axis], self.stride[axis]
            expected = (size + s - 1) // s if self.padding == "SAME" else _c_div(size + s - k, s)
            if expected != input_shape[1 + axis]:
                raise ParameterError(f"TRANSPOSE_CONV output {name} {size} ({self.padding}, kernel {k}, stride {s}) "
                                     f"needs an input {name} of {expected}, not {input_shape[1 + axis]}")

    def requant(self):
        """Per-channel (bias, scale, multiplier, shift, act_min, act_max) of the output stage."""
        cout = self.filters.shape[0]
        scales = _per_channel_scales(self.filter_scales, cout, "filter")
        scale = effective_scale(self.input_scale, scales, self.output_scale)
        multiplier, shift = quantize_multiplier(scale)
        bias = np.zeros(cout, np.int64) if self.bias is None else np.asarray(self.bias, dtype=np.int64).reshape(cout)
        act_min, act_max = activation_range(self.activation, self.output_scale, self.output_zero_point)
        return bias, scale, multiplier, shift, act_min, act_max

    def valid_taps(self, size, axis):
        """Per input index along ``axis`` (0: rows, 1: columns): the [lo, hi) tap range landing inside the output."""
        k, s, pad, out = self.kernel[axis], self.stride[axis], self.pads[axis], self.output_shape[1 + axis]
        base = np.arange(size) * s - pad
        return np.clip(-base, 0, k), np.clip(out - base, 0, k)

    def effective_macs(self, input_shape):
        """MACs of the contributions that land inside the output (what MM2IM computes)."""
        n, h, w, cin = input_shape
        lo_y, hi_y = self.valid_taps(h, 0)
        lo_x, hi_x = self.valid_taps(w, 1)
        pairs = int(np.maximum(hi_y - lo_y, 0).sum()) * int(np.maximum(hi_x - lo_x, 0).sum())
        return n * pairs * cin * self.filters.shape[0]

    def accumulate(self, x):
        """int64 [N, OH, OW, Cout] sums of (x - zp) * w over the contributions inside the output."""
        self.check_input(x.shape)
        n, h, w, cin = x.shape
        cout, kh, kw, _ = self.filters.shape
        (sh, sw), (pt, pl) = self.stride, self.pads
        _, oh, ow, _ = self.output_shape
        xs = x.astype(np.float64) - float(self.input_zero_point)
        acc = np.zeros((n, oh, ow, cout), dtype=np.float64)
        lo_y, hi_y = self.valid_taps(h, 0)
        lo_x, hi_x = self.valid_taps(w, 1)
        for ky in range(kh):
            rows = np.nonzero((lo_y <= ky) & (ky < hi_y))[0]
            if not rows.size:
                continue
            for kx in range(kw):
                cols = np.nonzero((lo_x <= kx) & (kx < hi_x))[0]
                if not cols.size:
                    continue
                # exact in float64: |(x - zp) * w| < 2^16, sums far below 2^53
                part = xs[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] @ self.filters[:, ky, kx, :].astype(np.float64).T
                oy0, ox0 = rows[0] * sh - pt + ky, cols[0] * sw - pl + kx
                acc[:, oy0:oy0 + (rows.size - 1) * sh + 1:sh, ox0:ox0 + (cols.size - 1) * sw + 1:sw] += part
        return acc.astype(np.int64)

    def reference(self, x):
        """TFLite-exact int8 output (LiteRT 2.3 BUILTIN_REF's TRANSPOSE_CONV)."""
        bias, scale, multiplier, shift, act_min, act_max = self.requant()
        return requantize(self.accumulate(x), bias, self.output_zero_point, act_min, act_max, rounding=DOUBLE,
                          multiplier=multiplier, shift=shift, scale=scale)

    def zero_insertion_conv(self, x):
        """The same layer as a stride-1 VALID CONV_2D over the zero-inserted, padded input: (Conv2D, input).

        Zero insertion fills with the input zero point (a real zero), and the kernel is flipped; the result
        is bit-exact with :meth:`reference` and is what a plain GEMM accelerator has to run.
        """
        self.check_input(x.shape)
        n, h, w, cin = x.shape
        (kh, kw), (sh, sw), (pt, pl) = self.kernel, self.stride, self.pads
        _, oh, ow, _ = self.output_shape
        full = np.full((n, oh + kh - 1, ow + kw - 1, cin), self.input_zero_point, dtype=np.int8)
        # input pixel (iy, ix) sits at row iy*sh - pt + kh - 1 of the padded, dilated input
        ys = np.arange(h) * sh - pt + kh - 1
        xs = np.arange(w) * sw - pl + kw - 1
        keep_y = (ys >= 0) & (ys < full.shape[1])
        keep_x = (xs >= 0) & (xs < full.shape[2])
        full[:, ys[keep_y][:, None], xs[keep_x][None, :]] = x[:, keep_y][:, :, keep_x]
        conv = Conv2D(filters=np.ascontiguousarray(self.filters[:, ::-1, ::-1, :]), bias=self.bias,
                      input_scale=self.input_scale, input_zero_point=self.input_zero_point,
                      filter_scales=self.filter_scales, output_scale=self.output_scale,
                      output_zero_point=self.output_zero_point, stride=(1, 1), padding="VALID",
                      activation=self.activation)
        return conv, full

    def gemm_shape(self, input_shape):
        """(M, N, K) of the zero-insertion lowering (for comparisons with GEMM accelerators)."""
        _, oh, ow, cout = self.output_shape
        kh, kw = self.kernel
        return input_shape[0] * oh * ow, cout, kh * kw * input_shape[3]
