"""Single-operator int8 DEPTHWISE_CONV_2D and BATCH_MATMUL .tflite models, built without TensorFlow.

They hold the kinds' numpy semantics (``driver/kinds/depthwise_conv2d.py``,
``driver/kinds/batch_matmul.py``) to LiteRT 2.3's BUILTIN_REF kernels in the
tests: :func:`layer_reference` builds the model for a layer and runs it.
"""

import numpy as np
import tflite

from .single_op import ACTIVATIONS, PADDINGS, Tensor, build_model, run_reference

__all__ = ["depthwise_conv2d_model", "batch_matmul_model", "layer_reference", "run_reference"]

# Operator versions (op_version.cc): int8 DEPTHWISE_CONV_2D is 3; int8 BATCH_MATMUL is 2.
_DEPTHWISE_INT8_VERSION = 3
_BATCH_MATMUL_INT8_VERSION = 2


def depthwise_conv2d_model(layer, input_shape) -> bytes:
    """A one-operator model computing ``layer`` (a ``DepthwiseConv2D``) on an int8 input of ``input_shape``."""
    c = layer.out_channels
    scales = np.asarray(layer.filter_scales, np.float32).reshape(-1)      # one value: per-tensor weights
    bias = np.zeros(c, np.int32) if layer.bias is None else np.asarray(layer.bias).astype(np.int32)
    bias_scales = (np.float64(np.float32(layer.input_scale)) * scales.astype(np.float64)).astype(np.float32)
    no_zero_points = np.zeros(scales.size, np.int64)
    tensors = [
        Tensor("input", input_shape, tflite.TensorType.INT8, [layer.input_scale], [layer.input_zero_point]),
        Tensor("filters", layer.filters.shape, tflite.TensorType.INT8, scales, no_zero_points, quantized_dimension=3,
               data=np.ascontiguousarray(layer.filters, np.int8).tobytes()),
        Tensor("bias", [c], tflite.TensorType.INT32, bias_scales, no_zero_points, data=bias.astype("<i4").tobytes()),
        Tensor("output", layer.output_shape(tuple(input_shape)), tflite.TensorType.INT8, [layer.output_scale],
               [layer.output_zero_point]),
    ]

    def options(builder):
        tflite.DepthwiseConv2DOptionsStart(builder)
        tflite.DepthwiseConv2DOptionsAddPadding(builder, PADDINGS[layer.padding])
        tflite.DepthwiseConv2DOptionsAddStrideH(builder, layer.stride[0])
        tflite.DepthwiseConv2DOptionsAddStrideW(builder, layer.stride[1])
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(builder, layer.multiplier)
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(builder, ACTIVATIONS[layer.activation])
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(builder, layer.dilation[0])
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(builder, layer.dilation[1])
        return tflite.DepthwiseConv2DOptionsEnd(builder)

    return build_model(tensors=tensors, opcode=tflite.BuiltinOperator.DEPTHWISE_CONV_2D,
                       op_version=_DEPTHWISE_INT8_VERSION, options_type=tflite.BuiltinOptions.DepthwiseConv2DOptions,
                       build_options=options, inputs=[0, 1, 2], outputs=[3])


def batch_matmul_model(layer, lhs_shape, rhs_shape) -> bytes:
    """A one-operator model computing ``layer`` (a ``BatchMatMul``) on int8 operands of the given shapes."""
    tensors = [
        Tensor("lhs", lhs_shape, tflite.TensorType.INT8, [layer.lhs_scale], [layer.lhs_zero_point]),
        Tensor("rhs", rhs_shape, tflite.TensorType.INT8, [layer.rhs_scale], [layer.rhs_zero_point]),
        Tensor("output", layer.output_shape(lhs_shape, rhs_shape), tflite.TensorType.INT8, [layer.output_scale],
               [layer.output_zero_point]),
    ]

    def options(builder):
        tflite.BatchMatMulOptionsStart(builder)
        tflite.BatchMatMulOptionsAddAdjX(builder, layer.adj_x)
        tflite.BatchMatMulOptionsAddAdjY(builder, layer.adj_y)
        return tflite.BatchMatMulOptionsEnd(builder)

    return build_model(tensors=tensors, opcode=tflite.BuiltinOperator.BATCH_MATMUL,
                       op_version=_BATCH_MATMUL_INT8_VERSION, options_type=tflite.BuiltinOptions.BatchMatMulOptions,
                       build_options=options, inputs=[0, 1], outputs=[2], graph_input=[0, 1])


def layer_reference(layer, *inputs):
    """LiteRT BUILTIN_REF's output for a depthwise_conv2d or batch_matmul ``layer`` on ``inputs``."""
    if layer.op == "depthwise_conv2d":
        (x,) = inputs
        return run_reference(depthwise_conv2d_model(layer, x.shape), x)
    if layer.op == "batch_matmul":
        lhs, rhs = inputs
        return run_reference(batch_matmul_model(layer, lhs.shape, rhs.shape), lhs, rhs)
    raise ValueError(f"no single-operator model for kind {layer.op!r}")
