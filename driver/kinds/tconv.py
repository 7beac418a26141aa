"""TRANSPOSE_CONV: int8 transposed convolution with per-channel symmetric weights (TFLite semantics)."""

from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError, UnsupportedLayer
from ..layers import check_quantization, per_channel_scales
from ..quant import ACTIVATIONS, DOUBLE, activation_range, effective_scale, quantize_multiplier, requantize
from .base import Layer, LayerKind, ShapeOption
from .conv2d import Conv2D
from .fields import activation_quant, constant_bias, random_quantization, symmetric_weights

__all__ = ["TransposeConv2D", "transpose_conv_padding", "KIND"]


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
class TransposeConv2D(Layer):
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

    def __post_init__(self):
        if self.filters.ndim != 4 or min(self.filters.shape) < 1:
            raise ParameterError(f"TRANSPOSE_CONV filters must be (Cout, KH, KW, Cin) with every size at least 1, "
                                 f"not {self.filters.shape}")
        if self.output_shape is None or len(self.output_shape) != 4:
            raise ParameterError(f"TRANSPOSE_CONV output shape must be NHWC, not {self.output_shape!r}")
        self.output_shape = tuple(int(v) for v in self.output_shape)
        if self.output_shape[3] != self.filters.shape[0] or min(self.output_shape) < 1:
            raise ParameterError(f"TRANSPOSE_CONV output shape {self.output_shape} does not match "
                                 f"{self.filters.shape[0]} filters")
        self.stride = tuple(int(s) for s in self.stride)
        if len(self.stride) != 2 or min(self.stride) < 1:
            raise ParameterError(f"TRANSPOSE_CONV stride must be two positive integers, not {self.stride!r}")
        if self.padding not in ("SAME", "VALID"):
            raise ParameterError(f"TRANSPOSE_CONV padding must be 'SAME' or 'VALID', not {self.padding!r}")
        check_quantization("TRANSPOSE_CONV", self.input_scale, self.output_scale, self.filter_scales)

    def output_shape_for(self, input_shape):
        return tuple(self.output_shape)

    def macs(self, input_shape):
        """The contributions that land inside the output (what a scatter that skips cropped taps computes)."""
        return self.effective_macs(input_shape)

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
        scales = per_channel_scales(self.filter_scales, cout, "filter")
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


class TransposeConv2DKind(LayerKind):
    name = "tconv"
    description = "TRANSPOSE_CONV: int8 transposed convolution (upsampling), per-channel symmetric weights"
    layer_class = TransposeConv2D
    tflite_ops = ("TRANSPOSE_CONV",)
    shape_options = (
        ShapeOption("batch", 1), ShapeOption("height", 8), ShapeOption("width", 8),
        ShapeOption("in_channels", 16), ShapeOption("out_channels", 8), ShapeOption("kernel", 4),
        ShapeOption("stride", 2), ShapeOption("padding", "SAME", choices=("SAME", "VALID")),
        ShapeOption("activation", "NONE", choices=ACTIVATIONS),
    )

    def tflite_inputs(self, op):
        return (2,)      # TRANSPOSE_CONV's inputs: output_shape, weights, input, bias

    def from_tflite(self, op, tensors):
        """TRANSPOSE_CONV inputs: output_shape (constant int32), weights [Cout, KH, KW, Cin], input, optional bias."""
        shape, weights, x, out = (tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.inputs[2]],
                                  tensors[op.outputs[0]])
        quant = activation_quant(x, out, op)
        if shape.data is None:
            raise UnsupportedLayer("the output shape is not a constant tensor")
        if len(weights.shape) != 4 or len(x.shape) != 4 or x.shape[3] != weights.shape[3]:
            raise UnsupportedLayer(f"input {list(x.shape)} and weights {list(weights.shape)} are not NHWC / OHWI")
        cout = weights.shape[0]
        scales = symmetric_weights(weights, cout)
        padding = str(op.options.get("padding", "SAME"))
        if padding not in ("SAME", "VALID"):
            raise UnsupportedLayer(f"padding {padding}")
        try:
            return TransposeConv2D(filters=np.asarray(weights.data, np.int8), bias=constant_bias(tensors, op, cout, 3),
                                   filter_scales=scales,
                                   output_shape=tuple(int(v) for v in np.asarray(shape.data).reshape(-1)),
                                   stride=tuple(op.options.get("stride", (1, 1))), padding=padding, **quant)
        except ParameterError as error:
            raise UnsupportedLayer(str(error)) from None

    def relax_compute(self, p):
        # weights in IOHW, dequantized per output channel (axis 1)
        p.parts["w_dq"] = p.dequantize(p.parts["w"], p.parts["w_scale"], p.parts["w_zp"])
        return p.is_op("relax.nn.conv2d_transpose")(p.parts["x_dq"], p.parts["w_dq"])

    def from_relax(self, matched, f):
        """TransposeConv2D from the importer's conv2d_transpose (NHWC data, IOHW weights, explicit padding)."""
        weights, input_shape, output_shape = f.weights, f.input_shape, f.output_shape
        attrs = matched["compute"].attrs
        layouts = (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout))
        if layouts != ("NHWC", "IOHW", "NHWC"):
            raise UnsupportedLayer(f"transposed-convolution layouts {'/'.join(layouts)} "
                                   "(the pattern expects NHWC/IOHW/NHWC)")
        if int(attrs.groups) != 1 or any(int(d) != 1 for d in attrs.dilation):
            raise UnsupportedLayer("grouped or dilated transposed convolution")
        if any(int(v) != 0 for v in attrs.output_padding):
            raise UnsupportedLayer(f"output padding {[int(v) for v in attrs.output_padding]}")
        if len(input_shape) != 4 or weights.ndim != 4 or input_shape[3] != weights.shape[0] or len(output_shape) != 4:
            raise UnsupportedLayer(f"transposed convolution input {list(input_shape)} does not match filter "
                                   f"{list(weights.shape)}")
        _, cout, kh, kw = weights.shape
        stride = tuple(int(s) for s in attrs.strides)
        padding = [int(v) for v in attrs.padding]
        padding = padding * 2 if len(padding) == 2 else padding * 4 if len(padding) == 1 else padding
        filters = np.ascontiguousarray(weights.transpose(1, 2, 3, 0))     # IOHW -> TFLite OHWI
        bias, scales = f.bias(matched, cout), f.weight_scales(matched, cout, axis=1)
        for mode in ("VALID", "SAME"):
            layer = TransposeConv2D(filters=filters, bias=bias, filter_scales=scales, output_shape=tuple(output_shape),
                                    stride=stride, padding=mode, **f.quant)
            try:
                layer.check_input(tuple(input_shape))     # TFLite ties the input size to the output size per mode
            except ParameterError:
                continue
            pads = []
            for axis, (size, k, s) in enumerate(zip(output_shape[1:3], (kh, kw), stride)):
                lead = transpose_conv_padding(size, k, s, mode)
                full = (input_shape[1 + axis] - 1) * s + k     # the uncropped scatter
                pads.append((lead, full - size - lead))
            if padding == [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]:
                return layer
        raise UnsupportedLayer(f"padding {padding} is neither TFLite SAME nor VALID for input {list(input_shape)} "
                               f"and output {list(output_shape)}")

    def random(self, rng, batch=1, height=8, width=8, in_channels=16, out_channels=8, kernel=4, stride=2,
               padding="SAME", activation="NONE", zero_points="random", narrow=False, output_size=None):
        """A random TRANSPOSE_CONV and its input; the output size is TensorFlow's unless ``output_size`` is given."""
        if output_size is None:
            output_size = tuple(n * stride if padding == "SAME" else n * stride + max(kernel - stride, 0)
                                for n in (height, width))
        q = random_quantization(rng, out_channels, max(1, (kernel // stride) ** 2) * in_channels, zero_points, narrow)
        layer = TransposeConv2D(filters=rng.integers(-127, 128, (out_channels, kernel, kernel, in_channels),
                                                     dtype=np.int8),
                                output_shape=(batch, *output_size, out_channels), stride=(stride, stride),
                                padding=padding, activation=activation, **q)
        return layer, (rng.integers(-128, 128, (batch, height, width, in_channels), dtype=np.int8),)

    def random_shape(self, rng, limits):
        return dict(batch=1, height=int(rng.integers(1, 9)), width=int(rng.integers(1, 9)),
                    in_channels=int(rng.integers(1, 17)), out_channels=int(rng.integers(1, 17)),
                    kernel=int(rng.integers(1, 6)), stride=int(rng.integers(1, 4)),
                    padding=str(rng.choice(["SAME", "VALID"])))


KIND = TransposeConv2DKind()
