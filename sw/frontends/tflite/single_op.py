"""Single-operator TFLite models built without TensorFlow, and LiteRT's reference result for them.

The flatbuffer is assembled with the schema bindings of the ``tflite`` PyPI
package; :func:`run_reference` executes it on LiteRT's BUILTIN_REF kernels.
``accelkit bench tconv`` and the tests use these one-operator models as the
golden reference for accelkit's integer semantics.
"""

import flatbuffers
import numpy as np
import tflite

__all__ = ["ACTIVATIONS", "PADDINGS", "Tensor", "build_model", "run_reference"]

_SCHEMA_VERSION = 3
_FILE_IDENTIFIER = b"TFL3"
# Buffers holding weights are 16-byte aligned so kernels may read them in place
# from the model bytes.
_DATA_ALIGNMENT = 16

ACTIVATIONS = {
    "NONE": tflite.ActivationFunctionType.NONE,
    "RELU": tflite.ActivationFunctionType.RELU,
    "RELU6": tflite.ActivationFunctionType.RELU6,
    "RELU_N1_TO_1": tflite.ActivationFunctionType.RELU_N1_TO_1,
}

PADDINGS = {
    "SAME": tflite.Padding.SAME,
    "VALID": tflite.Padding.VALID,
}


class Tensor:
    """One tensor of the model: constant when ``data`` (little-endian bytes) is given."""

    def __init__(self, name, shape, ttype, scales, zero_points, quantized_dimension=0, data=None):
        self.name = name
        self.shape = np.asarray(shape, dtype=np.int32)
        self.ttype = ttype
        # scales None: no quantization table at all (readers such as TVM's importer expect none on,
        # e.g., an int32 shape tensor, rather than an empty one)
        self.scales = None if scales is None else np.asarray(scales, dtype=np.float32).reshape(-1)
        self.zero_points = None if scales is None else np.asarray(zero_points, dtype=np.int64).reshape(-1)
        self.quantized_dimension = int(quantized_dimension)
        self.data = data  # None for activations; little-endian bytes for constants


def _aligned_bytes_vector(builder, payload):
    # CreateByteVector only aligns to 4 bytes; do the same thing with a wider
    # alignment (this mirrors what flatbuffers' own CreateNumpyVector does).
    n = len(payload)
    builder.StartVector(1, n, _DATA_ALIGNMENT)
    builder.head = builder.head - n
    builder.Bytes[builder.head : builder.head + n] = payload
    return builder.EndVector()


def _offsets_vector(builder, start_fn, offsets):
    start_fn(builder, len(offsets))
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def build_model(*, tensors, opcode, op_version, options_type, build_options, inputs, outputs,
                graph_input=None):
    """Serialize one subgraph holding one operator.

    ``inputs`` are tensor indices for the operator (-1 = omitted optional
    input); the graph input is ``graph_input`` (default: the operator's first
    input; a list for several) and the graph outputs are ``outputs``.
    """
    builder = flatbuffers.Builder(4096)

    # Buffer 0 is the conventional empty sentinel; each constant tensor gets its
    # own buffer, activations point at the sentinel.
    buffer_data = [None]
    tensor_buffer_index = []
    for t in tensors:
        if t.data is None:
            tensor_buffer_index.append(0)
        else:
            tensor_buffer_index.append(len(buffer_data))
            buffer_data.append(t.data)

    buffer_offsets = []
    for payload in buffer_data:
        data_off = None if payload is None else _aligned_bytes_vector(builder, payload)
        tflite.BufferStart(builder)
        if data_off is not None:
            tflite.BufferAddData(builder, data_off)
        buffer_offsets.append(tflite.BufferEnd(builder))

    tensor_offsets = []
    for t, buf_idx in zip(tensors, tensor_buffer_index):
        name_off = builder.CreateString(t.name)
        shape_off = builder.CreateNumpyVector(t.shape)
        quant_off = None
        if t.scales is not None:
            scale_off = builder.CreateNumpyVector(t.scales)
            zp_off = builder.CreateNumpyVector(t.zero_points)
            tflite.QuantizationParametersStart(builder)
            tflite.QuantizationParametersAddScale(builder, scale_off)
            tflite.QuantizationParametersAddZeroPoint(builder, zp_off)
            tflite.QuantizationParametersAddQuantizedDimension(builder, t.quantized_dimension)
            quant_off = tflite.QuantizationParametersEnd(builder)

        tflite.TensorStart(builder)
        tflite.TensorAddShape(builder, shape_off)
        tflite.TensorAddType(builder, t.ttype)
        tflite.TensorAddBuffer(builder, buf_idx)
        tflite.TensorAddName(builder, name_off)
        if quant_off is not None:
            tflite.TensorAddQuantization(builder, quant_off)
        tensor_offsets.append(tflite.TensorEnd(builder))

    options_off = build_options(builder)
    op_inputs_off = builder.CreateNumpyVector(np.asarray(inputs, dtype=np.int32))
    op_outputs_off = builder.CreateNumpyVector(np.asarray(outputs, dtype=np.int32))
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, 0)
    tflite.OperatorAddInputs(builder, op_inputs_off)
    tflite.OperatorAddOutputs(builder, op_outputs_off)
    tflite.OperatorAddBuiltinOptionsType(builder, options_type)
    tflite.OperatorAddBuiltinOptions(builder, options_off)
    operator_off = tflite.OperatorEnd(builder)

    sg_tensors_off = _offsets_vector(builder, tflite.SubGraphStartTensorsVector, tensor_offsets)
    graph_inputs = [inputs[0]] if graph_input is None else np.atleast_1d(graph_input).tolist()
    sg_inputs_off = builder.CreateNumpyVector(np.asarray(graph_inputs, dtype=np.int32))
    sg_outputs_off = builder.CreateNumpyVector(np.asarray(outputs, dtype=np.int32))
    sg_ops_off = _offsets_vector(builder, tflite.SubGraphStartOperatorsVector, [operator_off])
    sg_name_off = builder.CreateString("main")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, sg_tensors_off)
    tflite.SubGraphAddInputs(builder, sg_inputs_off)
    tflite.SubGraphAddOutputs(builder, sg_outputs_off)
    tflite.SubGraphAddOperators(builder, sg_ops_off)
    tflite.SubGraphAddName(builder, sg_name_off)
    subgraph_off = tflite.SubGraphEnd(builder)

    # Both code fields are written: old readers look at the int8 deprecated
    # field, new ones take max(deprecated, builtin_code). Our opcodes are < 127.
    tflite.OperatorCodeStart(builder)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, opcode)
    tflite.OperatorCodeAddBuiltinCode(builder, opcode)
    tflite.OperatorCodeAddVersion(builder, op_version)
    opcode_off = tflite.OperatorCodeEnd(builder)

    opcodes_off = _offsets_vector(builder, tflite.ModelStartOperatorCodesVector, [opcode_off])
    subgraphs_off = _offsets_vector(builder, tflite.ModelStartSubgraphsVector, [subgraph_off])
    buffers_off = _offsets_vector(builder, tflite.ModelStartBuffersVector, buffer_offsets)
    description_off = builder.CreateString("accelkit: single-operator model")
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, _SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(builder, opcodes_off)
    tflite.ModelAddSubgraphs(builder, subgraphs_off)
    tflite.ModelAddDescription(builder, description_off)
    tflite.ModelAddBuffers(builder, buffers_off)
    model_off = tflite.ModelEnd(builder)
    builder.Finish(model_off, file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def run_reference(model_bytes, *inputs_int8) -> np.ndarray:
    """Run a model on LiteRT's reference kernels with one int8 array per graph input; return a copy of the output."""
    # Imported lazily so that building models does not require the runtime.
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=bytes(model_bytes),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        num_threads=1,
    )
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    if len(inputs_int8) != len(details):
        raise ValueError(f"the model has {len(details)} input(s), {len(inputs_int8)} given")
    for inp, x in zip(details, inputs_int8):
        x = np.asarray(x)
        if x.dtype != np.int8:
            raise TypeError(f"input must be an int8 array, got {x.dtype}")
        expected = tuple(int(d) for d in inp["shape"])
        if x.shape != expected:
            raise ValueError(f"input shape {x.shape} does not match model input {expected}")
        interpreter.set_tensor(inp["index"], np.ascontiguousarray(x))
    interpreter.invoke()
    return np.array(interpreter.get_tensor(out["index"]), copy=True)
