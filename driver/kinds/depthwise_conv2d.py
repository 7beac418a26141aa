"""DEPTHWISE_CONV_2D: TFLite's int8 depthwise convolution, and its lowering to GEMMs.

Output channel ``c * multiplier + j`` convolves input channel ``c`` alone with
its own KH x KW filter (``filters[0, :, :, c * multiplier + j]``). LiteRT 2.3's
BUILTIN_REF kernel (``reference_integer_ops::DepthwiseConvPerChannel``) sums
``(x + input_offset) * w`` over the taps inside the image (a tap on the SAME
padding adds nothing, as if the padding held the input zero point), adds the
bias and requantizes per channel with the double-rounding fixed-point multiplier
(pinned on rounding ties in ``tests/driver/kinds/test_depthwise_conv2d.py``).

Lowering: a group of ``g`` input channels becomes one GEMM whose A holds the
group's patches ``[M, KH*KW*g]`` (im2col, tap-major) and whose B is
block-diagonal ``[KH*KW*g, g*multiplier]``: column ``ci * multiplier + j`` is
non-zero only on the rows of input channel ``ci``. Only one in ``g`` products
of a GEMM step is useful, which is the price of running a layer without
reuse across output channels on an array that shares each A operand across a
row of PEs.
"""

from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError, UnsupportedLayer
from ..layers import QuantizedGemm, conv_output_size, im2col, per_channel_scales
from ..quant import ACTIVATIONS, DOUBLE, activation_range, effective_scale, quantize_multiplier, requantize
from .base import Layer, LayerKind, ShapeOption
from .fields import activation_quant, constant_bias, symmetric_weights

__all__ = ["DepthwiseConv2D", "KIND"]


def _pair(value, what):
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ParameterError(f"depthwise {what} must be a positive integer or a pair of them, not {value!r}")
    return tuple(int(v) for v in pair)


@dataclass
class DepthwiseConv2D(Layer):
    """A TFLite int8 DEPTHWISE_CONV_2D: NHWC input, filters [1, KH, KW, C * multiplier], symmetric weights."""

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
    multiplier: int = 1

    op = "depthwise_conv2d"
    rounding = DOUBLE

    def __post_init__(self):
        self.filters = np.asarray(self.filters)
        if self.filters.dtype != np.int8 or self.filters.ndim != 4 or self.filters.shape[0] != 1:
            raise ParameterError(f"depthwise filters must be int8 [1, KH, KW, C*multiplier], not "
                                 f"{self.filters.dtype} {list(self.filters.shape)}")
        if isinstance(self.multiplier, bool) or int(self.multiplier) != self.multiplier or self.multiplier < 1:
            raise ParameterError(f"depth multiplier must be a positive integer, not {self.multiplier!r}")
        self.multiplier = int(self.multiplier)
        if self.filters.shape[3] % self.multiplier:
            raise ParameterError(f"{self.filters.shape[3]} output channels are not a multiple of the depth "
                                 f"multiplier {self.multiplier}")
        self.stride, self.dilation = _pair(self.stride, "stride"), _pair(self.dilation, "dilation")
        if self.padding not in ("SAME", "VALID"):
            raise ParameterError(f"padding must be 'SAME' or 'VALID', not {self.padding!r}")
        if self.activation not in ACTIVATIONS:
            raise ParameterError(f"fused activation must be one of {', '.join(ACTIVATIONS)}, not {self.activation!r}")
        if not -128 <= int(self.input_zero_point) <= 127 or not -128 <= int(self.output_zero_point) <= 127:
            raise ParameterError(f"zero points must be int8, not input {self.input_zero_point} and output "
                                 f"{self.output_zero_point}")

    @property
    def kernel(self):
        return self.filters.shape[1], self.filters.shape[2]

    @property
    def in_channels(self):
        return self.filters.shape[3] // self.multiplier

    @property
    def out_channels(self):
        return self.filters.shape[3]

    def output_shape(self, input_shape):
        """NHWC output shape for an NHWC input shape; raises ParameterError when they do not fit."""
        if len(input_shape) != 4 or input_shape[3] != self.in_channels:
            raise ParameterError(f"DEPTHWISE_CONV_2D input shape {tuple(input_shape)} does not match "
                                 f"{self.in_channels} input channels (filters {list(self.filters.shape)}, "
                                 f"multiplier {self.multiplier})")
        n, h, w, _ = input_shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        oh = conv_output_size(h, kh, sh, dh, self.padding)
        ow = conv_output_size(w, kw, sw, dw, self.padding)
        if oh < 1 or ow < 1:
            raise ParameterError(f"depthwise convolution of a {h}x{w} input with a {kh}x{kw} kernel "
                                 f"(dilation {dh}x{dw}, {self.padding}) has no output")
        return n, oh, ow, self.out_channels

    def output_shape_for(self, input_shape):
        return self.output_shape(input_shape)

    def macs(self, input_shape):
        """Useful multiply-accumulates: output elements x KH x KW."""
        n, oh, ow, c = self.output_shape(input_shape)
        return n * oh * ow * c * self.kernel[0] * self.kernel[1]

    def requant(self):
        """Per-output-channel (bias int64, real scale, act_min, act_max)."""
        c = self.out_channels
        scales = per_channel_scales(self.filter_scales, c, "filter")
        scale = effective_scale(self.input_scale, scales, self.output_scale)
        bias = np.zeros(c, np.int64) if self.bias is None else np.asarray(self.bias, np.int64).reshape(c)
        act_min, act_max = activation_range(self.activation, self.output_scale, self.output_zero_point)
        return bias, scale, act_min, act_max

    def patches(self, x):
        """im2col of ``x`` as int8 [M, KH*KW, C] (padding holds the input zero point) and the output shape."""
        self.output_shape(x.shape)
        kh, kw = self.kernel
        cols, (n, oh, ow) = im2col(np.asarray(x, np.int8), (kh, kw), self.stride, self.dilation, self.padding,
                                   self.input_zero_point)
        return cols.reshape(n * oh * ow, kh * kw, self.in_channels), (n, oh, ow, self.out_channels)

    def reference(self, x):
        """TFLite-exact int8 output (LiteRT 2.3 BUILTIN_REF's DEPTHWISE_CONV_2D)."""
        patches, shape = self.patches(x)
        kh, kw = self.kernel
        w = self.filters.reshape(kh * kw, self.in_channels, self.multiplier).astype(np.int64)
        centred = patches.astype(np.int64) - int(self.input_zero_point)
        acc = np.einsum("mtc,tcj->mcj", centred, w).reshape(patches.shape[0], self.out_channels)
        bias, scale, act_min, act_max = self.requant()
        multiplier, shift = quantize_multiplier(scale)
        out = requantize(acc, bias, self.output_zero_point, act_min, act_max, rounding=DOUBLE,
                         multiplier=multiplier, shift=shift, scale=scale)
        return out.reshape(shape)

    def group_gemm_shape(self, input_shape, group):
        """(M, N, K) of the GEMM of one group of ``group`` input channels."""
        n, oh, ow, _ = self.output_shape(input_shape)
        kh, kw = self.kernel
        return n * oh * ow, group * self.multiplier, kh * kw * group

    def groups(self, group):
        """Input-channel ranges [(first, count), ...] of groups of at most ``group`` channels."""
        if int(group) != group or group < 1:
            raise ParameterError(f"channel group must be a positive integer, not {group!r}")
        return [(c, min(group, self.in_channels - c)) for c in range(0, self.in_channels, int(group))]

    def lower(self, x, group):
        """One :class:`QuantizedGemm` per group of ``group`` input channels (block-diagonal B), and the output shape.

        Returns ``([(first output channel, gemm), ...], NHWC output shape)``; the
        gemms' columns are the group's output channels in order.
        """
        patches, shape = self.patches(x)
        kh, kw = self.kernel
        taps, mult = kh * kw, self.multiplier
        bias, scale, act_min, act_max = self.requant()
        w = self.filters.reshape(taps, self.in_channels, mult)
        gemms = []
        for first, count in self.groups(group):
            a = np.ascontiguousarray(patches[:, :, first:first + count].reshape(-1, taps * count))
            b = np.zeros((taps, count, count, mult), np.int8)
            for ci in range(count):
                b[:, ci, ci, :] = w[:, first + ci, :]
            b = b.reshape(taps * count, count * mult)
            out = slice(first * mult, (first + count) * mult)
            folded = bias[out] - int(self.input_zero_point) * b.astype(np.int64).sum(axis=0)
            gemms.append((first * mult, QuantizedGemm(a, b, folded, scale[out], DOUBLE, int(self.output_zero_point),
                                                      act_min, act_max)))
        return gemms, shape


def _zero_points(rng, mode):
    """(input, output) zero points: ``"large"`` picks the int8 extremes, else random (output near 0)."""
    if mode == "large":
        return int(rng.choice([-128, 127])), int(rng.choice([-128, 127]))
    return int(rng.integers(-128, 128)), int(rng.integers(-20, 21))


class DepthwiseConv2DKind(LayerKind):
    name = "depthwise_conv2d"
    description = "DEPTHWISE_CONV_2D: int8 NHWC depthwise convolution, depth multiplier >= 1, per-channel weights"
    layer_class = DepthwiseConv2D
    tflite_ops = ("DEPTHWISE_CONV_2D",)
    shape_options = (
        ShapeOption("batch", 1), ShapeOption("height", 12), ShapeOption("width", 12), ShapeOption("channels", 16),
        ShapeOption("multiplier", 1, "depth multiplier: output channels per input channel"),
        ShapeOption("kernel", 3), ShapeOption("stride", 1), ShapeOption("dilation", 1),
        ShapeOption("padding", "SAME", choices=("SAME", "VALID")),
        ShapeOption("activation", "NONE", choices=ACTIVATIONS),
    )

    def from_tflite(self, op, tensors):
        x, weights, out = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
        quant = activation_quant(x, out, op)
        if len(weights.shape) != 4 or weights.shape[0] != 1 or len(x.shape) != 4:
            raise UnsupportedLayer(f"input {list(x.shape)} and filters {list(weights.shape)} are not NHWC / "
                                   "[1, KH, KW, C*multiplier]")
        cout, cin = weights.shape[3], x.shape[3]
        # Some converters write a wrong depth_multiplier option; LiteRT derives it from the shapes.
        if cout % cin:
            raise UnsupportedLayer(f"{cout} output channels are not a multiple of {cin} input channels")
        scales = symmetric_weights(weights, cout, axis=3)
        padding = str(op.options.get("padding", "SAME"))
        if padding not in ("SAME", "VALID"):
            raise UnsupportedLayer(f"padding {padding}")
        if quant["activation"] not in ACTIVATIONS:
            raise UnsupportedLayer(f"fused activation {quant['activation']}")
        return DepthwiseConv2D(filters=np.asarray(weights.data, np.int8), bias=constant_bias(tensors, op, cout),
                               filter_scales=scales, stride=tuple(op.options.get("stride", (1, 1))),
                               dilation=tuple(op.options.get("dilation", (1, 1))), padding=padding,
                               multiplier=cout // cin, **quant)

    def relax_compute(self, p):
        # TVM 0.27 imports a per-channel DEPTHWISE_CONV_2D as dequantize(w, axis=3) on the TFLite
        # [1, KH, KW, C*M] weights, a reshape to HWOI [KH, KW, C*M, 1] (HWIO [KH, KW, 1, M] for one
        # input channel) and a grouped conv2d with groups = C.
        p.parts["w_dq"] = p.dequantize(p.parts["w"], p.parts["w_scale"], p.parts["w_zp"])
        p.parts["w_shaped"] = p.is_op("relax.reshape")(p.parts["w_dq"], p.wildcard())
        return p.is_op("relax.nn.conv2d")(p.parts["x_dq"], p.parts["w_shaped"])

    def from_relax(self, matched, f):
        attrs = matched["compute"].attrs
        weights, input_shape, output_shape = f.weights, f.input_shape, f.output_shape
        if weights.ndim != 4 or weights.shape[0] != 1 or len(input_shape) != 4:
            raise UnsupportedLayer(f"weights {list(weights.shape)} and input {list(input_shape)} are not TFLite "
                                   "depthwise [1, KH, KW, C*M] / NHWC")
        channels, groups = input_shape[3], int(attrs.groups)
        if groups != channels or weights.shape[3] % channels:
            raise UnsupportedLayer(f"not a depthwise convolution ({groups} groups, {channels} input channels, "
                                   f"{weights.shape[3]} output channels)")
        layouts = (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout))
        expected = ("NHWC", "HWIO" if channels == 1 else "HWOI", "NHWC")
        if layouts != expected:
            raise UnsupportedLayer(f"depthwise layouts {'/'.join(layouts)} (the pattern expects {'/'.join(expected)})")
        _, kh, kw, cout = weights.shape
        stride = tuple(int(s) for s in attrs.strides)
        dilation = tuple(int(d) for d in attrs.dilation)
        padding = f.padding_mode(input_shape, output_shape, (kh, kw), stride, dilation,
                                 [int(v) for v in attrs.padding])
        return DepthwiseConv2D(filters=np.ascontiguousarray(weights, np.int8), bias=f.bias(matched, cout),
                               filter_scales=f.weight_scales(matched, cout, axis=3), stride=stride,
                               dilation=dilation, padding=padding, multiplier=cout // channels, **f.quant)

    def random(self, rng, batch=1, height=12, width=12, channels=16, multiplier=1, kernel=3, stride=1, dilation=1,
               padding="SAME", activation="NONE", zero_points="random", narrow=False):
        """A seeded random layer and an int8 input for it: ``(layer, (x,))``.

        Scales are drawn so that the outputs use a good part of the int8 range
        (not all saturated, not all zero); ``zero_points="large"`` puts them at
        -128 or 127 and ``narrow`` shrinks the output scale to force saturation.
        """
        kh, kw = _pair(kernel, "kernel")
        c = channels * multiplier
        filters = rng.integers(-127, 128, size=(1, kh, kw, c), dtype=np.int64).astype(np.int8)
        input_scale = float(rng.uniform(0.005, 0.05))
        filter_scales = rng.uniform(0.002, 0.02, size=c)
        # |acc| ~ 60 * 70 * sqrt(taps); aim the output at roughly +-64 steps
        spread = 60.0 * 70.0 * np.sqrt(kh * kw)
        output_scale = float(input_scale * filter_scales.mean() * spread / 64.0)
        if narrow:
            output_scale /= rng.uniform(8.0, 40.0)
        input_zp, output_zp = _zero_points(rng, zero_points)
        layer = DepthwiseConv2D(filters=filters, bias=rng.integers(-3000, 3000, size=c),
                                input_scale=input_scale, input_zero_point=input_zp,
                                filter_scales=filter_scales, output_scale=output_scale,
                                output_zero_point=output_zp, stride=_pair(stride, "stride"),
                                dilation=_pair(dilation, "dilation"), padding=padding, activation=activation,
                                multiplier=multiplier)
        x = rng.integers(-128, 128, size=(batch, height, width, channels), dtype=np.int64).astype(np.int8)
        return layer, (x,)

    def random_shape(self, rng, limits):
        kernel = int(rng.choice([1, 3, 5]))
        dilation = int(rng.choice([1, 1, 2]))
        reach = (kernel - 1) * dilation + 1
        return dict(batch=int(rng.integers(1, 3)), height=int(rng.integers(reach, 12)),
                    width=int(rng.integers(reach, 12)), channels=int(rng.integers(1, 13)),
                    multiplier=int(rng.choice([1, 1, 2, 3])), kernel=kernel, stride=int(rng.choice([1, 2])),
                    dilation=dilation, padding=str(rng.choice(["SAME", "VALID"])))


KIND = DepthwiseConv2DKind()
