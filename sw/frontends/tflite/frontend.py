"""TFLite operators to accelkit layers: what the accelerator may take, and why not when it may not."""

import numpy as np

from ....driver.layers import Conv2D, FullyConnected, TransposeConv2D
from ....errors import UnsupportedLayer

__all__ = ["to_layer", "GEMM_OPS", "input_position"]

#: TFLite builtin ops that lower to a GEMM layer.
GEMM_OPS = {"CONV_2D": "conv2d", "FULLY_CONNECTED": "fc", "TRANSPOSE_CONV": "tconv"}


def _int8_activation(tensor, role):
    if tensor.dtype != np.int8:
        raise UnsupportedLayer(f"{role} is {tensor.type_name or tensor.dtype}, not int8")
    if tensor.scales is None or tensor.scales.size != 1:
        raise UnsupportedLayer(f"{role} is not per-tensor quantized")


def _symmetric_weights(tensor, channels):
    if tensor.dtype != np.int8:
        raise UnsupportedLayer(f"weights are {tensor.type_name or tensor.dtype}, not int8")
    if tensor.data is None:
        raise UnsupportedLayer("weights are not a constant tensor")
    if tensor.scales is None:
        raise UnsupportedLayer("weights are not quantized")
    if tensor.zero_points is not None and np.any(tensor.zero_points != 0):
        raise UnsupportedLayer("weights are not symmetric (non-zero weight zero point)")
    if tensor.scales.size not in (1, channels) or (tensor.scales.size > 1 and tensor.quantized_dimension != 0):
        raise UnsupportedLayer(f"weight quantization is neither per-tensor nor per output channel "
                               f"({tensor.scales.size} scales, axis {tensor.quantized_dimension})")
    return tensor.scales.astype(np.float64)


def _bias(tensors, op, channels, position=2):
    if len(op.inputs) <= position or op.inputs[position] < 0:
        return None
    bias = tensors[op.inputs[position]]
    if bias.dtype != np.int32 or bias.data is None:
        raise UnsupportedLayer(f"bias is {bias.type_name or bias.dtype}{'' if bias.data is not None else ' (not constant)'}, "
                               "not a constant int32 tensor")
    if bias.data.size != channels:
        raise UnsupportedLayer(f"bias has {bias.data.size} values for {channels} channels")
    return bias.data.astype(np.int64)


def to_layer(op, tensors):
    """The ``driver.layers`` layer for a TFLite op, or :class:`UnsupportedLayer` saying why not."""
    if op.op not in GEMM_OPS:
        raise UnsupportedLayer(f"{op.op} is not a GEMM-shaped layer")
    if op.op == "TRANSPOSE_CONV":
        return _transpose_conv(op, tensors)
    x, weights, out = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    _int8_activation(x, "input")
    _int8_activation(out, "output")
    activation = op.options.get("fused_activation_function", op.options.get("activation", "NONE"))
    quant = dict(input_scale=float(x.scales[0]), input_zero_point=int(x.zero_points[0]),
                 output_scale=float(out.scales[0]), output_zero_point=int(out.zero_points[0]),
                 activation=str(activation))
    if op.op == "CONV_2D":
        cout, _, _, cin = weights.shape
        if len(x.shape) != 4 or x.shape[3] != cin:
            raise UnsupportedLayer(f"grouped convolution (input has {x.shape[-1]} channels, filters {cin})")
        scales = _symmetric_weights(weights, cout)
        return Conv2D(filters=np.asarray(weights.data, np.int8), bias=_bias(tensors, op, cout),
                      filter_scales=scales, stride=tuple(op.options.get("stride", (1, 1))),
                      dilation=tuple(op.options.get("dilation", (1, 1))),
                      padding=str(op.options.get("padding", "SAME")), **quant)
    if op.options.get("weights_format", "DEFAULT") != "DEFAULT":
        raise UnsupportedLayer(f"weights format {op.options['weights_format']}")
    n, k = weights.shape
    scales = _symmetric_weights(weights, n)
    if int(np.prod(x.shape)) % k:
        raise UnsupportedLayer(f"input of shape {x.shape} does not flatten to rows of {k}")
    return FullyConnected(weights=np.asarray(weights.data, np.int8), bias=_bias(tensors, op, n),
                          filter_scales=scales, **quant)


def input_position(op):
    """Which of the op's inputs is the activation the layer runs on."""
    return 2 if op.op == "TRANSPOSE_CONV" else 0


def _transpose_conv(op, tensors):
    """TRANSPOSE_CONV inputs: output_shape (constant int32), weights [Cout, KH, KW, Cin], input, optional bias."""
    shape, weights, x, out = (tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.inputs[2]],
                              tensors[op.outputs[0]])
    _int8_activation(x, "input")
    _int8_activation(out, "output")
    if shape.data is None:
        raise UnsupportedLayer("the output shape is not a constant tensor")
    if len(weights.shape) != 4 or len(x.shape) != 4 or x.shape[3] != weights.shape[3]:
        raise UnsupportedLayer(f"input {list(x.shape)} and weights {list(weights.shape)} are not NHWC / OHWI")
    cout = weights.shape[0]
    scales = _symmetric_weights(weights, cout)
    activation = op.options.get("activation", "NONE")
    padding = str(op.options.get("padding", "SAME"))
    if padding not in ("SAME", "VALID"):
        raise UnsupportedLayer(f"padding {padding}")
    return TransposeConv2D(filters=np.asarray(weights.data, np.int8), bias=_bias(tensors, op, cout, 3),
                           input_scale=float(x.scales[0]), input_zero_point=int(x.zero_points[0]),
                           filter_scales=scales, output_scale=float(out.scales[0]),
                           output_zero_point=int(out.zero_points[0]),
                           output_shape=tuple(int(v) for v in np.asarray(shape.data).reshape(-1)),
                           stride=tuple(op.options.get("stride", (1, 1))), padding=padding,
                           activation=str(activation))
