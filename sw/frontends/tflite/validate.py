"""Semantic checks of a decoded .tflite model, before LiteRT or TVM is given the file.

:func:`~accelkit.sw.frontends.tflite.model.read_model` already refuses files
that are not well-formed flatbuffers (truncation, indices out of range). What
it decodes may still be nonsense that LiteRT's or TVM's C++ takes on trust and
then divides by, allocates or indexes with: a stride of 0, a per-channel scale
of NaN, a tensor of 2^40 elements, an opcode no runtime knows. Those end here as
``ModelError`` naming the operator or tensor, the value seen and what is accepted.
"""

import math

import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from ....errors import ModelError
from .model import read_model

__all__ = ["MAX_TENSOR_BYTES", "SOFTMAX_ABORT_DEPTH", "check_model", "read_checked_model", "softmax_abort_risk",
           "softmax_scaling_aborts"]

#: Largest tensor accepted (bytes): LiteRT's arena and TVM's buffers are sized in 32-bit
#: arithmetic in places, and nothing this project runs comes near it.
MAX_TENSOR_BYTES = (1 << 31) - 1

_ACTIVATIONS = {name for name in vars(tflite.ActivationFunctionType) if not name.startswith("_")}
_PADDINGS = {name for name in vars(tflite.Padding) if not name.startswith("_")}
# Ops whose option pairs must be positive integers (strides, dilations, pooling windows).
_POSITIVE_PAIRS = ("stride", "dilation", "filter")
_WINDOWED = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D",
             "CONV_3D", "CONV_3D_TRANSPOSE"}
# Minimum operand counts of the ops accelkit reads (LiteRT and the layer kinds index these).
_MIN_INPUTS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "TRANSPOSE_CONV": 3, "FULLY_CONNECTED": 2,
               "BATCH_MATMUL": 2, "ADD": 2, "MUL": 2, "SUB": 2, "RESHAPE": 1, "SOFTMAX": 1, "MEAN": 2,
               "TANH": 1, "LOGISTIC": 1, "AVERAGE_POOL_2D": 1, "MAX_POOL_2D": 1, "CONCATENATION": 1,
               "PAD": 2, "QUANTIZE": 1, "DEQUANTIZE": 1}
# Ranks each operand of the ops accelkit lowers must have: {op: {input position: accepted ranks}}.
_OPERAND_RANKS = {
    "CONV_2D": {0: (4,), 1: (4,), 2: (1,)},
    "DEPTHWISE_CONV_2D": {0: (4,), 1: (4,), 2: (1,)},
    "TRANSPOSE_CONV": {0: (1,), 1: (4,), 2: (4,), 3: (1,)},
    "FULLY_CONNECTED": {1: (2,), 2: (1,)},
    "BATCH_MATMUL": {0: (2, 3, 4, 5), 1: (2, 3, 4, 5)},
}
# LiteRT's reference int8 SOFTMAX divides by the sum of exponentials in gemmlowp
# fixed point with 12 integer bits; once that sum reaches 512 (roughly 512 classes
# within one input step of the largest) the shift exceeds 31 and the kernel
# aborts the process. Only a depth of 512 or more can get there.
SOFTMAX_ABORT_DEPTH = 512


_QUANTIZED_TYPES = (np.dtype(np.int8), np.dtype(np.uint8))


def _conv_output(size, kernel, stride, dilation, padding):
    window = (kernel - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == "SAME" else max((size - window) // stride + 1, 0)


def _expected_output_shape(op, tensors):
    """The output shape TFLite computes for the ops accelkit offloads, or None where it is not checked."""
    shapes = [tensors[i].shape if i >= 0 else None for i in op.inputs]
    options = op.options
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        (n, h, w, c), filters = shapes[0], shapes[1]
        (sh, sw), (dh, dw) = options["stride"], options.get("dilation", (1, 1))
        out_channels = filters[0] if op.op == "CONV_2D" else filters[3]
        return (n, _conv_output(h, filters[1], sh, dh, options["padding"]),
                _conv_output(w, filters[2], sw, dw, options["padding"]), out_channels)
    if op.op == "FULLY_CONNECTED":
        units, depth = shapes[1]
        elements = math.prod(shapes[0])
        if elements % depth:
            return f"an input of {elements} elements, a multiple of the weights' depth {depth}"
        if options.get("keep_num_dims"):
            return (*shapes[0][:-1], units)
        return (elements // depth, units)
    return None


def _check_dataflow(model, where):
    """Every tensor an operator reads is a model input, a constant or some operator's output."""
    available = set(model.inputs)
    for op in model.ops:
        available.update(op.outputs)
        for index in op.outputs:
            # LiteRT maps a constant's data read-only and would write the result into it (a segfault)
            if index >= 0 and model.tensors[index].is_constant:
                raise ModelError(f"{where}: operator {op.index} ({op.op}) writes tensor {index} "
                                 f"({model.tensors[index].name!r}), which holds constant data; an operator's "
                                 "output must have no buffer data")
    for op in model.ops:
        for index in op.inputs:
            if index >= 0 and index not in available and not model.tensors[index].is_constant \
                    and not model.tensors[index].is_variable:
                raise ModelError(f"{where}: operator {op.index} ({op.op}) reads tensor {index} "
                                 f"({model.tensors[index].name!r}), which no operator produces, is not a model "
                                 "input and holds no data")
        expected = _expected_output_shape(op, model.tensors)
        if expected is None:
            continue
        declared = model.tensors[op.outputs[0]].shape
        if isinstance(expected, str) or tuple(declared) != tuple(expected):
            raise ModelError(f"{where}: operator {op.index} ({op.op}) declares output shape {list(declared)}, "
                             f"but its inputs give {expected if isinstance(expected, str) else list(expected)}")


def _tensor_bytes(tensor):
    itemsize = tensor.dtype.itemsize if tensor.dtype is not None else 1
    return math.prod(tensor.shape) * itemsize


def _check_tensor(tensor, where):
    label = f"{where}: tensor {tensor.index} ({tensor.name!r})"
    size = _tensor_bytes(tensor)
    if size > MAX_TENSOR_BYTES:
        raise ModelError(f"{label} has shape {list(tensor.shape)}: {size:,} bytes, more than the "
                         f"{MAX_TENSOR_BYTES:,} a tensor may hold")
    if tensor.scales is None:
        if tensor.dtype in _QUANTIZED_TYPES:
            raise ModelError(f"{label} is {tensor.type_name} without quantization parameters; "
                             f"{tensor.type_name} tensors need a scale and a zero point")
        return
    scales = tensor.scales
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        bad = scales[~(np.isfinite(scales) & (scales >= 0))][0]
        raise ModelError(f"{label} has quantization scale {bad}; scales must be finite and non-negative")
    if tensor.dtype is not None and np.issubdtype(tensor.dtype, np.integer) and tensor.dtype.itemsize <= 2:
        info = np.iinfo(tensor.dtype)
        zero_points = tensor.zero_points
        if zero_points.size and (zero_points.min() < info.min or zero_points.max() > info.max):
            bad = zero_points[(zero_points < info.min) | (zero_points > info.max)][0]
            raise ModelError(f"{label} ({tensor.type_name}) has zero point {bad}; accepted: "
                             f"{info.min}..{info.max}")
    if scales.size > 1 and not 0 <= tensor.quantized_dimension < len(tensor.shape):
        raise ModelError(f"{label} has quantized dimension {tensor.quantized_dimension}; its shape "
                         f"{list(tensor.shape)} has {len(tensor.shape)}")


def _check_op(op, tensors, where):
    label = f"{where}: operator {op.index} ({op.op})"
    if op.op.startswith("BUILTIN_") or (op.builtin_code not in BUILTIN_OPCODE2NAME):
        raise ModelError(f"{label}: builtin opcode {op.builtin_code} is not a TFLite operator "
                         f"(known: 0..{max(BUILTIN_OPCODE2NAME)})")
    if op.version < 1:
        raise ModelError(f"{label}: operator version {op.version}; versions start at 1")
    options = op.options
    for name in _POSITIVE_PAIRS:
        value = options.get(name)
        if value is None:
            continue
        values = value if isinstance(value, (tuple, list)) else (value,)
        if any(not isinstance(v, (int, np.integer)) or v < 1 for v in values):
            raise ModelError(f"{label}: {name} {tuple(int(v) for v in values)}; each must be a positive integer")
    if op.op in _WINDOWED and "stride" not in options:
        raise ModelError(f"{label} has no stride in its options")
    if "depth_multiplier" in options and options["depth_multiplier"] < 0:
        raise ModelError(f"{label}: depth multiplier {options['depth_multiplier']}; it must be >= 0")
    padding = options.get("padding")
    if padding is not None and padding not in _PADDINGS:
        raise ModelError(f"{label}: padding {padding!r}; accepted: {', '.join(sorted(_PADDINGS))}")
    activation = options.get("activation")
    if activation is not None and activation not in _ACTIVATIONS:
        raise ModelError(f"{label}: fused activation {activation!r}; accepted: {', '.join(sorted(_ACTIVATIONS))}")
    present = [i for i in op.inputs if i >= 0]
    if len(op.inputs) < _MIN_INPUTS.get(op.op, 0) or (op.inputs and op.inputs[0] < 0):
        raise ModelError(f"{label} has inputs {list(op.inputs)}; it needs at least {_MIN_INPUTS.get(op.op, 1)}")
    if not op.outputs:
        raise ModelError(f"{label} has no output")
    for position, ranks in _OPERAND_RANKS.get(op.op, {}).items():
        index = op.inputs[position] if position < len(op.inputs) else -1
        if index < 0:
            if position < _MIN_INPUTS.get(op.op, 0):
                raise ModelError(f"{label}: input {position} is omitted (-1); this operator needs it")
            continue
        shape = tensors[index].shape
        if len(shape) not in ranks:
            raise ModelError(f"{label}: input {position} (tensor {index}) has shape {list(shape)}; a rank "
                             f"{' or '.join(map(str, ranks))} shape is accepted")
        if 0 in shape:
            raise ModelError(f"{label}: input {position} (tensor {index}) has shape {list(shape)}; every "
                             "dimension must be at least 1")
    for index in present:
        if tensors[index].dtype is None:
            raise ModelError(f"{label}: input tensor {index} has type {tensors[index].type_name}, which "
                             "accelkit does not run")


def check_model(model):
    """Raise ModelError if ``model`` (a decoded ``TfliteModel``) holds values a runtime would trip on."""
    where = model.source
    if not model.inputs:
        raise ModelError(f"{where}: subgraph 0 has no input")
    if not model.outputs:
        raise ModelError(f"{where}: subgraph 0 has no output")
    if not model.ops:
        raise ModelError(f"{where}: subgraph 0 has no operator")
    for tensor in model.tensors:
        _check_tensor(tensor, where)
    for index in model.inputs:
        tensor = model.tensors[index]
        if tensor.is_constant:
            raise ModelError(f"{where}: input tensor {index} ({tensor.name!r}) is a constant")
        if not tensor.shape or 0 in tensor.shape:
            raise ModelError(f"{where}: input tensor {index} ({tensor.name!r}) has shape {list(tensor.shape)}; "
                             "every dimension must be at least 1")
    for op in model.ops:
        _check_op(op, model.tensors, where)
    _check_dataflow(model, where)
    return model


def read_checked_model(source):
    """:func:`read_model` followed by :func:`check_model`."""
    return check_model(read_model(source))


def softmax_scaling_aborts(model):
    """SOFTMAX operators whose scaling LiteRT's reference kernel refuses with an abort, as (op, product).

    Its Prepare asserts beta x input scale x 2^26 > 1 (PreprocessSoftmaxScaling with 5
    integer bits for the scaled difference); a smaller product kills the process.
    """
    found = []
    for op in model.ops:
        if op.op != "SOFTMAX" or not op.inputs:
            continue
        tensor = model.tensors[op.inputs[0]]
        if tensor.dtype not in _QUANTIZED_TYPES or tensor.scales is None:
            continue
        # LiteRT fills the per-tensor scale its kernels read only for a tensor with exactly one
        # scale; a per-channel tensor reaches SOFTMAX with scale 0. Without an options table,
        # beta is 0.
        scale = float(tensor.scales[0]) if len(tensor.scales) == 1 else 0.0
        product = float(op.options.get("beta", 0.0)) * scale
        if not product * (1 << 26) > 1:
            found.append((op, product))
    return found


def softmax_abort_risk(model):
    """Operators on which LiteRT's reference SOFTMAX kernel may abort (int8, depth >= 512)."""
    risky = []
    for op in model.ops:
        if op.op != "SOFTMAX" or not op.inputs:
            continue
        tensor = model.tensors[op.inputs[0]]
        if tensor.dtype in (np.dtype(np.int8), np.dtype(np.uint8)) and tensor.shape \
                and tensor.shape[-1] >= SOFTMAX_ABORT_DEPTH:
            risky.append(op)
    return risky
