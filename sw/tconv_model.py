"""Single-operator int8 TRANSPOSE_CONV .tflite models, built without TensorFlow, and LiteRT's reference result.

Used by ``accelkit bench tconv`` and the tests to hold accelkit's TRANSPOSE_CONV
semantics (``driver.layers.TransposeConv2D``) to LiteRT 2.3's BUILTIN_REF kernel.
Inputs of the operator, in TFLite's order: output_shape (constant int32 [4]),
weights (int8 [Cout, KH, KW, Cin], per-channel symmetric, axis 0), the int8
activation, and an int32 bias.
"""

import flatbuffers
import numpy as np
import tflite

__all__ = ["tconv_model", "run_reference", "layer_reference"]

_ACTIVATIONS = {"NONE": tflite.ActivationFunctionType.NONE, "RELU": tflite.ActivationFunctionType.RELU,
                "RELU6": tflite.ActivationFunctionType.RELU6,
                "RELU_N1_TO_1": tflite.ActivationFunctionType.RELU_N1_TO_1}
_PADDINGS = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}
# TRANSPOSE_CONV versions (op_version.cc): 3 = int8 with bias, 4 = with a fused activation.
_VERSION_BIAS, _VERSION_ACTIVATION = 3, 4


def _vector(builder, start, offsets):
    start(builder, len(offsets))
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def _bytes(builder, payload):
    builder.StartVector(1, len(payload), 16)
    builder.head -= len(payload)
    builder.Bytes[builder.head:builder.head + len(payload)] = payload
    return builder.EndVector()


def tconv_model(layer, input_shape) -> bytes:
    """A one-operator model computing ``layer`` (a :class:`TransposeConv2D`) on an int8 input of ``input_shape``."""
    cout = layer.filters.shape[0]
    scales = np.asarray(layer.filter_scales, np.float32).reshape(-1)      # one value: per-tensor weights
    bias = np.zeros(cout, np.int32) if layer.bias is None else np.asarray(layer.bias).astype(np.int32)
    bias_scales = (np.float64(np.float32(layer.input_scale)) * scales.astype(np.float64)).astype(np.float32)
    # (name, shape, type, scales, zero points, data)
    tensors = [
        ("output_shape", [4], tflite.TensorType.INT32, None, None,
         np.asarray(layer.output_shape, "<i4").tobytes()),
        ("weights", list(layer.filters.shape), tflite.TensorType.INT8, scales, np.zeros(scales.size, np.int64),
         np.ascontiguousarray(layer.filters, np.int8).tobytes()),
        ("input", list(input_shape), tflite.TensorType.INT8, np.float32([layer.input_scale]),
         np.int64([layer.input_zero_point]), None),
        ("bias", [cout], tflite.TensorType.INT32, bias_scales, np.zeros(scales.size, np.int64),
         bias.astype("<i4").tobytes()),
        ("output", list(layer.output_shape), tflite.TensorType.INT8, np.float32([layer.output_scale]),
         np.int64([layer.output_zero_point]), None),
    ]
    b = flatbuffers.Builder(4096)
    buffers, buffer_of = [None], []
    for *_, data in tensors:
        buffer_of.append(len(buffers) if data is not None else 0)
        if data is not None:
            buffers.append(data)
    buffer_offsets = []
    for payload in buffers:
        data_off = None if payload is None else _bytes(b, payload)
        tflite.BufferStart(b)
        if data_off is not None:
            tflite.BufferAddData(b, data_off)
        buffer_offsets.append(tflite.BufferEnd(b))
    tensor_offsets = []
    for (name, shape, ttype, tscales, zps, _), buf in zip(tensors, buffer_of):
        name_off = b.CreateString(name)
        shape_off = b.CreateNumpyVector(np.asarray(shape, np.int32))
        quant_off = None
        if tscales is not None:
            s_off, z_off = b.CreateNumpyVector(np.asarray(tscales, np.float32)), b.CreateNumpyVector(zps)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, s_off)
            tflite.QuantizationParametersAddZeroPoint(b, z_off)
            tflite.QuantizationParametersAddQuantizedDimension(b, 0)
            quant_off = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape_off)
        tflite.TensorAddType(b, ttype)
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, name_off)
        if quant_off is not None:
            tflite.TensorAddQuantization(b, quant_off)
        tensor_offsets.append(tflite.TensorEnd(b))
    tflite.TransposeConvOptionsStart(b)
    tflite.TransposeConvOptionsAddPadding(b, _PADDINGS[layer.padding])
    tflite.TransposeConvOptionsAddStrideH(b, layer.stride[0])
    tflite.TransposeConvOptionsAddStrideW(b, layer.stride[1])
    tflite.TransposeConvOptionsAddFusedActivationFunction(b, _ACTIVATIONS[layer.activation])
    options_off = tflite.TransposeConvOptionsEnd(b)
    in_off = b.CreateNumpyVector(np.int32([0, 1, 2, 3]))
    out_off = b.CreateNumpyVector(np.int32([4]))
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, in_off)
    tflite.OperatorAddOutputs(b, out_off)
    tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.TransposeConvOptions)
    tflite.OperatorAddBuiltinOptions(b, options_off)
    op_off = tflite.OperatorEnd(b)
    tensors_off = _vector(b, tflite.SubGraphStartTensorsVector, tensor_offsets)
    sg_in, sg_out = b.CreateNumpyVector(np.int32([2])), b.CreateNumpyVector(np.int32([4]))
    ops_off = _vector(b, tflite.SubGraphStartOperatorsVector, [op_off])
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_off)
    tflite.SubGraphAddInputs(b, sg_in)
    tflite.SubGraphAddOutputs(b, sg_out)
    tflite.SubGraphAddOperators(b, ops_off)
    subgraph_off = tflite.SubGraphEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.TRANSPOSE_CONV)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.TRANSPOSE_CONV)
    tflite.OperatorCodeAddVersion(b, _VERSION_BIAS if layer.activation == "NONE" else _VERSION_ACTIVATION)
    code_off = tflite.OperatorCodeEnd(b)
    codes_off = _vector(b, tflite.ModelStartOperatorCodesVector, [code_off])
    subgraphs_off = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph_off])
    buffers_off = _vector(b, tflite.ModelStartBuffersVector, buffer_offsets)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_off)
    tflite.ModelAddSubgraphs(b, subgraphs_off)
    tflite.ModelAddBuffers(b, buffers_off)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_reference(model_bytes, x):
    """Run a one-input model on LiteRT's reference kernels (BUILTIN_REF); a copy of its output."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ascontiguousarray(x))
    interpreter.invoke()
    return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), copy=True)


def layer_reference(layer, x):
    """LiteRT BUILTIN_REF's output for ``layer`` on ``x``."""
    return run_reference(tconv_model(layer, x.shape), x)
