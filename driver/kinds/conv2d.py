"""CONV_2D: int8 NHWC convolution with per-channel symmetric weights (TFLite semantics)."""

from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError, UnsupportedLayer
from ..layers import check_pair, check_quantization, conv_output_size, im2col, lower_to_gemm
from ..quant import ACTIVATIONS, DOUBLE
from .base import LayerKind, LoweredToGemm, ShapeOption
from .fields import activation_quant, constant_bias, random_quantization, symmetric_weights

__all__ = ["Conv2D", "KIND"]


@dataclass
class Conv2D(LoweredToGemm):
    """A TFLite int8 CONV_2D: NHWC input, (Cout, KH, KW, Cin) filter, per-channel symmetric weights.

    Lowers to one GEMM by im2col (``lower``); CONV_2D requantizes with TFLite's
    fixed-point multiplier and double rounding (LiteRT 2.3 BUILTIN_REF).
    """

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

    def __post_init__(self):
        if np.ndim(self.filters) != 4 or min(np.shape(self.filters)) < 1:
            raise ParameterError(f"CONV_2D filters must be (Cout, KH, KW, Cin) with every size at least 1, "
                                 f"not {np.shape(self.filters)}")
        check_pair(self.stride, "stride", "CONV_2D")
        check_pair(self.dilation, "dilation", "CONV_2D")
        if self.padding not in ("SAME", "VALID"):
            raise ParameterError(f"CONV_2D padding must be 'SAME' or 'VALID', not {self.padding!r}")
        check_quantization("CONV_2D", self.input_scale, self.output_scale, self.filter_scales)

    def gemm_shape(self, input_shape):
        """(M, N, K) of the lowered GEMM for an NHWC input shape, without any data."""
        n, h, w, _ = input_shape
        cout, kh, kw, cin = self.filters.shape
        oh = conv_output_size(h, kh, self.stride[0], self.dilation[0], self.padding)
        ow = conv_output_size(w, kw, self.stride[1], self.dilation[1], self.padding)
        return n * oh * ow, cout, kh * kw * cin

    def gemm_weights(self):
        """The weights as the lowered GEMM's B [K, N] (no input needed)."""
        cout = self.filters.shape[0]
        return self.filters.reshape(cout, -1).T

    def output_shape_for(self, input_shape):
        n, h, w, _ = input_shape
        cout, kh, kw, _ = self.filters.shape
        return (n, conv_output_size(h, kh, self.stride[0], self.dilation[0], self.padding),
                conv_output_size(w, kw, self.stride[1], self.dilation[1], self.padding), cout)

    def lower(self, x):
        """Return (QuantizedGemm, output shape NHWC)."""
        if x.ndim != 4 or x.shape[3] != self.filters.shape[3]:
            raise ParameterError(f"CONV_2D input shape {x.shape} does not match filter {self.filters.shape}")
        cout, kh, kw, cin = self.filters.shape
        patches, (n, oh, ow) = im2col(x, (kh, kw), self.stride, self.dilation, self.padding,
                                      self.input_zero_point)
        return lower_to_gemm(patches, self.gemm_weights(), self), (n, oh, ow, cout)



class Conv2DKind(LayerKind):
    name = "conv2d"
    description = "CONV_2D: int8 NHWC convolution, per-channel symmetric weights"
    layer_class = Conv2D
    tflite_ops = ("CONV_2D",)
    shape_options = (
        ShapeOption("batch", 1), ShapeOption("height", 16), ShapeOption("width", 16),
        ShapeOption("in_channels", 8), ShapeOption("out_channels", 16), ShapeOption("kernel", 3),
        ShapeOption("stride", 1), ShapeOption("dilation", 1),
        ShapeOption("padding", "SAME", choices=("SAME", "VALID")),
        ShapeOption("activation", "NONE", choices=ACTIVATIONS),
    )

    def from_tflite(self, op, tensors):
        x, weights, out = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
        quant = activation_quant(x, out, op)
        if len(weights.shape) != 4:
            raise UnsupportedLayer(f"filter of shape {list(weights.shape)} is not OHWI")
        cout, _, _, cin = weights.shape
        if len(x.shape) != 4 or x.shape[3] != cin:
            raise UnsupportedLayer(f"grouped convolution (input has {x.shape[-1]} channels, filters {cin})")
        scales = symmetric_weights(weights, cout)
        return Conv2D(filters=np.asarray(weights.data, np.int8), bias=constant_bias(tensors, op, cout),
                      filter_scales=scales, stride=tuple(op.options.get("stride", (1, 1))),
                      dilation=tuple(op.options.get("dilation", (1, 1))),
                      padding=str(op.options.get("padding", "SAME")), **quant)

    def relax_compute(self, p):
        p.parts["w_dq"] = p.dequantize(p.parts["w"], p.parts["w_scale"], p.parts["w_zp"])
        return p.is_op("relax.nn.conv2d")(p.parts["x_dq"], p.parts["w_dq"])

    def from_relax(self, matched, f):
        attrs = matched["compute"].attrs
        layouts = (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout))
        if layouts != ("NHWC", "HWIO", "NHWC"):
            raise UnsupportedLayer(f"convolution layouts {'/'.join(layouts)} (the pattern expects NHWC/HWIO/NHWC)")
        if int(attrs.groups) != 1:
            raise UnsupportedLayer(f"grouped convolution (groups={int(attrs.groups)})")
        weights, input_shape, output_shape = f.weights, f.input_shape, f.output_shape
        if len(input_shape) != 4 or weights.ndim != 4 or input_shape[3] != weights.shape[2]:
            raise UnsupportedLayer(f"convolution input {list(input_shape)} does not match filter {list(weights.shape)}")
        kh, kw, _, cout = weights.shape
        stride = tuple(int(s) for s in attrs.strides)
        dilation = tuple(int(d) for d in attrs.dilation)
        padding = f.padding_mode(input_shape, output_shape, (kh, kw), stride, dilation,
                                 [int(v) for v in attrs.padding])
        return Conv2D(filters=np.ascontiguousarray(weights.transpose(3, 0, 1, 2)),   # HWIO -> TFLite OHWI
                      bias=f.bias(matched, cout), filter_scales=f.weight_scales(matched, cout, axis=3),
                      stride=stride, dilation=dilation, padding=padding, **f.quant)

    def random(self, rng, batch=1, height=16, width=16, in_channels=8, out_channels=16, kernel=3, stride=1,
               dilation=1, padding="SAME", activation="NONE", zero_points="random", narrow=False):
        q = random_quantization(rng, out_channels, kernel * kernel * in_channels, zero_points, narrow)
        layer = Conv2D(filters=rng.integers(-127, 128, (out_channels, kernel, kernel, in_channels), dtype=np.int8),
                       stride=(stride, stride), dilation=(dilation, dilation), padding=padding,
                       activation=activation, **q)
        return layer, (rng.integers(-128, 128, (batch, height, width, in_channels), dtype=np.int8),)

    def random_shape(self, rng, limits):
        max_k = limits.get("max_k", 2048)
        while True:
            kernel = int(rng.choice([1, 3, 5]))
            cin = int(rng.integers(1, 9))
            if kernel * kernel * cin <= max_k:
                break
        dilation = int(rng.choice([1, 1, 2]))
        reach = (kernel - 1) * dilation + 1
        return dict(batch=int(rng.integers(1, 3)), height=int(rng.integers(reach, 14)),
                    width=int(rng.integers(reach, 14)), in_channels=cin, out_channels=int(rng.integers(1, 20)),
                    kernel=kernel, stride=int(rng.choice([1, 2])), dilation=dilation,
                    padding=str(rng.choice(["SAME", "VALID"])))


KIND = Conv2DKind()
