"""Single-operator int8 TRANSPOSE_CONV .tflite models, built without TensorFlow, and LiteRT's reference result.

Used by ``accelkit bench tconv`` and the tests to hold accelkit's TRANSPOSE_CONV
semantics (``driver.layers.TransposeConv2D``) to LiteRT 2.3's BUILTIN_REF kernel.
Inputs of the operator, in TFLite's order: output_shape (constant int32 [4]),
weights (int8 [Cout, KH, KW, Cin], per-channel symmetric, axis 0), the int8
activation, and an int32 bias.
"""

import numpy as np
import tflite

from .single_op import ACTIVATIONS, PADDINGS, Tensor, build_model, run_reference

__all__ = ["tconv_model", "run_reference", "layer_reference"]

# TRANSPOSE_CONV versions (op_version.cc): 3 = int8 with bias, 4 = with a fused activation.
_VERSION_BIAS, _VERSION_ACTIVATION = 3, 4


def tconv_model(layer, input_shape) -> bytes:
    """A one-operator model computing ``layer`` (a :class:`TransposeConv2D`) on an int8 input of ``input_shape``."""
    cout = layer.filters.shape[0]
    scales = np.asarray(layer.filter_scales, np.float32).reshape(-1)      # one value: per-tensor weights
    bias = np.zeros(cout, np.int32) if layer.bias is None else np.asarray(layer.bias).astype(np.int32)
    bias_scales = (np.float64(np.float32(layer.input_scale)) * scales.astype(np.float64)).astype(np.float32)
    no_zero_points = np.zeros(scales.size, np.int64)
    tensors = [
        Tensor("output_shape", [4], tflite.TensorType.INT32, None, None,
               data=np.asarray(layer.output_shape, "<i4").tobytes()),
        Tensor("weights", layer.filters.shape, tflite.TensorType.INT8, scales, no_zero_points,
               data=np.ascontiguousarray(layer.filters, np.int8).tobytes()),
        Tensor("input", input_shape, tflite.TensorType.INT8, [layer.input_scale], [layer.input_zero_point]),
        Tensor("bias", [cout], tflite.TensorType.INT32, bias_scales, no_zero_points, data=bias.astype("<i4").tobytes()),
        Tensor("output", layer.output_shape, tflite.TensorType.INT8, [layer.output_scale], [layer.output_zero_point]),
    ]

    def options(builder):
        tflite.TransposeConvOptionsStart(builder)
        tflite.TransposeConvOptionsAddPadding(builder, PADDINGS[layer.padding])
        tflite.TransposeConvOptionsAddStrideH(builder, layer.stride[0])
        tflite.TransposeConvOptionsAddStrideW(builder, layer.stride[1])
        tflite.TransposeConvOptionsAddFusedActivationFunction(builder, ACTIVATIONS[layer.activation])
        return tflite.TransposeConvOptionsEnd(builder)

    return build_model(tensors=tensors, opcode=tflite.BuiltinOperator.TRANSPOSE_CONV,
                       op_version=_VERSION_BIAS if layer.activation == "NONE" else _VERSION_ACTIVATION,
                       options_type=tflite.BuiltinOptions.TransposeConvOptions, build_options=options,
                       inputs=[0, 1, 2, 3], outputs=[4], graph_input=2)


def layer_reference(layer, x):
    """LiteRT BUILTIN_REF's output for ``layer`` on ``x``."""
    return run_reference(tconv_model(layer, x.shape), x)
