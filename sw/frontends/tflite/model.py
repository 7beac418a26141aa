"""Read a .tflite flatbuffer into plain Python data.

Only subgraph 0 (the one LiteRT executes) is decoded into operators and
tensors. The schema bindings of the ``tflite`` PyPI package do the field
decoding; this module adds what they lack for untrusted input: the file
identifier check, bounds checks on strings and buffers (the Python
flatbuffers runtime slices silently past the end of a truncated file), and
index validation, so that every malformed input ends as ``ModelError``.

Node ``i`` of a LiteRT interpreter built from the model is ``ops[i]`` here:
the interpreter adds subgraph 0's operators in flatbuffer order.
"""

from __future__ import annotations

import inspect
import os
import re
import struct
import sys
from dataclasses import dataclass, field

import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from ....errors import ModelError

__all__ = [
    "OpInfo", "TensorInfo", "TfliteModel", "read_model", "op_macs",
    "builtin_name", "TENSOR_TYPE_NAMES",
]

_FILE_IDENTIFIER = b"TFL3"
_SCHEMA_VERSION = 3

# Schema TensorType -> numpy. This is the *schema* enum (FLOAT32 = 0), which is
# numbered differently from the runtime's TfLiteType (kTfLiteFloat32 = 1).
_NUMPY_TYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.FLOAT64: np.float64,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.BOOL: np.bool_,
    tflite.TensorType.INT16: np.int16,
    tflite.TensorType.COMPLEX64: np.complex64,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.COMPLEX128: np.complex128,
    tflite.TensorType.UINT64: np.uint64,
    tflite.TensorType.UINT32: np.uint32,
    tflite.TensorType.UINT16: np.uint16,
    # INT4 constants are stored packed two per byte; they are unpacked to int8.
    tflite.TensorType.INT4: np.int8,
}

TENSOR_TYPE_NAMES = {
    v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")
}
_ACTIVATION_NAMES = {
    v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")
}
_PADDING_NAMES = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
_WEIGHTS_FORMAT_NAMES = {
    v: k
    for k, v in vars(tflite.FullyConnectedOptionsWeightsFormat).items()
    if not k.startswith("_")
}
_OPTIONS_CLASS_NAMES = {
    v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")
}
_OPTIONS2_CLASS_NAMES = {
    v: k for k, v in vars(tflite.BuiltinOptions2).items() if not k.startswith("_")
}

# Options tables these ops must carry: without them TFLite would run with
# zeroed parameters (stride 0), so a missing table is a malformed model.
_REQUIRED_OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
}
# Options tables that, when present, must be of this type for the op.
_EXPECTED_OPTIONS = {
    **_REQUIRED_OPTIONS,
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "BATCH_MATMUL": "BatchMatMulOptions",
}

# Exceptions the flatbuffers runtime and numpy raise on out-of-bounds reads.
_DECODE_ERRORS = (struct.error, IndexError, ValueError, TypeError, OverflowError)


def builtin_name(code: int) -> str:
    """Builtin operator name for a code ("CONV_2D" for 3); "BUILTIN_<n>" if unknown."""
    return BUILTIN_OPCODE2NAME.get(int(code), f"BUILTIN_{int(code)}")


@dataclass(eq=False)
class TensorInfo:
    """One tensor of subgraph 0.

    ``dtype`` is None for types without a numpy equivalent (STRING, RESOURCE,
    VARIANT, BFLOAT16); their constant data, if any, is given as raw uint8.
    ``scales``/``zero_points`` are None when the tensor is not quantized.
    ``data`` is the constant payload (read-only view into the model bytes,
    reshaped to ``shape`` unless the tensor is sparse) or None for activations.
    """

    index: int
    name: str
    dtype: np.dtype | None
    shape: tuple[int, ...]
    scales: np.ndarray | None = None
    zero_points: np.ndarray | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None
    type_name: str = ""
    shape_signature: tuple[int, ...] | None = None
    is_variable: bool = False
    sparse: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def per_channel(self) -> bool:
        return self.scales is not None and self.scales.size > 1


@dataclass(eq=False)
class OpInfo:
    """One operator of subgraph 0 (= LiteRT node ``index``)."""

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)
    builtin_code: int = 0
    version: int = 1
    custom_code: str | None = None


@dataclass(eq=False)
class TfliteModel:
    """Subgraph 0 of a .tflite model, as plain data."""

    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    metadata: dict[str, bytes]
    description: str = ""
    version: int = _SCHEMA_VERSION
    num_subgraphs: int = 1
    source: str = "<bytes>"

    def tensor(self, index: int) -> TensorInfo:
        return self.tensors[index]

    def macs(self) -> int:
        """Multiply-accumulates of the ops ``op_macs`` knows (others count 0)."""
        return sum(op_macs(op, self.tensors) for op in self.ops)


# --------------------------------------------------------------------------
# Bounds-checked primitives the generated bindings do not provide


class _Truncated(Exception):
    pass


def _u32(buf, pos):
    if pos < 0 or pos + 4 > len(buf):
        raise _Truncated(f"offset {pos} is outside the {len(buf)}-byte file")
    return struct.unpack_from("<I", buf, pos)[0]


def _string_field(obj, vtable_slot):
    """A string field read with bounds checks.

    The generated accessors slice ``Bytes[start:start+length]``, which returns
    a short string instead of failing when the file is cut inside it.
    """
    tab = obj._tab
    o = tab.Offset(vtable_slot)
    if not o:
        return None
    pos = o + tab.Pos
    ref = pos + _u32(tab.Bytes, pos)
    length = _u32(tab.Bytes, ref)
    start = ref + 4
    if start + length > len(tab.Bytes):
        raise _Truncated(f"string at {start} of length {length} runs past the end of the file")
    return bytes(tab.Bytes[start : start + length]).decode("utf-8", errors="replace")


# vtable slots (4 + 2 * field id) of the string fields we read, from schema.fbs.
_SLOT_MODEL_DESCRIPTION = 10
_SLOT_OPCODE_CUSTOM_CODE = 6
_SLOT_TENSOR_NAME = 10
_SLOT_METADATA_NAME = 4


def _np_vector(value, dtype):
    # Generated *AsNumpy accessors return the int 0 when the field is absent.
    if isinstance(value, np.ndarray):
        return value.astype(dtype, copy=False)
    return np.zeros(0, dtype=dtype)


# --------------------------------------------------------------------------
# Options


def _snake(name):
    # "DilationWFactor" -> "dilation_w_factor": split before a capital that
    # follows a lower-case letter, and before the last capital of a run.
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _generic_options(obj):
    """Every scalar, string and numeric-vector field of an options table.

    Reflection over the generated class keeps this working for the ~150
    options tables without a hand-written decoder each.
    """
    out = {}
    cls = type(obj)
    for name, fn in vars(cls).items():
        if name.startswith("_") or name == "Init" or name.startswith("GetRootAs"):
            continue
        if name.endswith(("BufferHasIdentifier", "Length", "IsNone")) or not callable(fn):
            continue
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        if params != ["self"]:
            continue  # element accessors X(j): the XAsNumpy form is used instead
        value = fn(obj)
        if name.endswith("AsNumpy"):
            out[_snake(name[: -len("AsNumpy")])] = value.tolist() if isinstance(value, np.ndarray) else []
        elif isinstance(value, (bool, int, float, np.integer, np.floating)):
            out.setdefault(_snake(name), value.item() if isinstance(value, np.generic) else value)
        elif isinstance(value, bytes):
            out[_snake(name)] = value.decode("utf-8", errors="replace")
        # Nested tables (e.g. StableHLO sub-structures) are left out.
    return out


def _normalize_options(opts):
    """Rename the common fields to accelkit's vocabulary (names, (h, w) pairs)."""
    if "fused_activation_function" in opts:
        act = opts.pop("fused_activation_function")
        opts["activation"] = _ACTIVATION_NAMES.get(act, f"ACTIVATION_{act}")
    if "padding" in opts and isinstance(opts["padding"], int):
        opts["padding"] = _PADDING_NAMES.get(opts["padding"], f"PADDING_{opts['padding']}")
    if "stride_h" in opts and "stride_w" in opts:
        opts["stride"] = (opts.pop("stride_h"), opts.pop("stride_w"))
    if "dilation_h_factor" in opts and "dilation_w_factor" in opts:
        opts["dilation"] = (opts.pop("dilation_h_factor"), opts.pop("dilation_w_factor"))
    if "weights_format" in opts:
        wf = opts["weights_format"]
        opts["weights_format"] = _WEIGHTS_FORMAT_NAMES.get(wf, f"WEIGHTS_FORMAT_{wf}")
    return opts


def _op_options(op_fb, op_name, index):
    opts = {}
    otype = op_fb.BuiltinOptionsType()
    if otype:
        cls_name = _OPTIONS_CLASS_NAMES.get(otype)
        table = op_fb.BuiltinOptions()
        if cls_name is None or table is None:
            raise ModelError(f"operator {index} ({op_name}) has unknown builtin options type {otype}")
        expected = _EXPECTED_OPTIONS.get(op_name)
        if expected is not None and cls_name != expected:
            raise ModelError(
                f"operator {index} ({op_name}) carries {cls_name}; expected {expected}"
            )
        obj = getattr(tflite, cls_name)()
        obj.Init(table.Bytes, table.Pos)
        opts.update(_generic_options(obj))
    elif op_name in _REQUIRED_OPTIONS:
        raise ModelError(
            f"operator {index} ({op_name}) has no {_REQUIRED_OPTIONS[op_name]}; "
            "TFLite would run it with zero strides"
        )
    otype2 = op_fb.BuiltinOptions2Type()
    if otype2:
        cls_name = _OPTIONS2_CLASS_NAMES.get(otype2)
        table = op_fb.BuiltinOptions2()
        if cls_name is not None and table is not None:
            obj = getattr(tflite, cls_name)()
            obj.Init(table.Bytes, table.Pos)
            opts.update(_generic_options(obj))
    return _normalize_options(opts)


# --------------------------------------------------------------------------
# Tensors


def _unpack_int4(raw, count):
    # TFLite packs INT4 two per byte, element 2i in the low nibble.
    lo = (raw & 0x0F).astype(np.int8)
    hi = (raw >> 4).astype(np.int8)
    out = np.empty(raw.size * 2, dtype=np.int8)
    out[0::2], out[1::2] = lo, hi
    out = np.where(out > 7, out - 16, out).astype(np.int8)
    return out[:count]


def _buffer_bytes(model_fb, buf, buffer_index, n_buffers, what):
    """Raw bytes of a model buffer (None if empty), including >2 GB-style external offsets."""
    if not 0 <= buffer_index < n_buffers:
        raise ModelError(f"{what} refers to buffer {buffer_index}; the model has {n_buffers}")
    b = model_fb.Buffers(buffer_index)
    offset, size = b.Offset(), b.Size()
    if offset > 1:
        # Buffers of models over 2 GB live after the flatbuffer, addressed by
        # absolute file offset (offset 1 is the "empty" marker).
        if offset + size > len(buf):
            raise ModelError(
                f"{what}: buffer {buffer_index} spans bytes {offset}..{offset + size} "
                f"of a {len(buf)}-byte file (truncated?)"
            )
        return np.frombuffer(buf, dtype=np.uint8, count=size, offset=offset) if size else None
    data = b.DataAsNumpy()
    if not isinstance(data, np.ndarray) or data.size == 0:
        return None
    return data


def _read_tensor(model_fb, sg, i, buf, n_buffers):
    t = sg.Tensors(i)
    name = _string_field(t, _SLOT_TENSOR_NAME) or ""
    ttype = t.Type()
    type_name = TENSOR_TYPE_NAMES.get(ttype, f"TYPE_{ttype}")
    np_type = _NUMPY_TYPES.get(ttype)
    dtype = np.dtype(np_type) if np_type is not None else None
    shape = tuple(int(d) for d in _np_vector(t.ShapeAsNumpy(), np.int64))
    sig = None if t.ShapeSignatureIsNone() else tuple(
        int(d) for d in _np_vector(t.ShapeSignatureAsNumpy(), np.int64)
    )
    if any(d < 0 for d in shape):
        raise ModelError(f"tensor {i} ({name!r}) has a negative dimension in shape {shape}")

    scales = zero_points = None
    qdim = 0
    q = t.Quantization()
    if q is not None:
        s = _np_vector(q.ScaleAsNumpy(), np.float32)
        z = _np_vector(q.ZeroPointAsNumpy(), np.int64)
        qdim = int(q.QuantizedDimension())
        if s.size:
            scales = np.array(s, dtype=np.float32)
            zero_points = np.array(z, dtype=np.int64) if z.size else np.zeros(s.size, np.int64)
            if zero_points.size != scales.size:
                raise ModelError(
                    f"tensor {i} ({name!r}) has {scales.size} scales but {zero_points.size} zero points"
                )
            if scales.size > 1 and not (0 <= qdim < len(shape) and shape[qdim] == scales.size):
                raise ModelError(
                    f"tensor {i} ({name!r}): {scales.size} per-channel scales do not match "
                    f"dimension {qdim} of shape {shape}"
                )

    sparse = t.Sparsity() is not None
    raw = _buffer_bytes(model_fb, buf, t.Buffer(), n_buffers, f"tensor {i} ({name!r})")
    data = None
    if raw is not None:
        count = int(np.prod(shape, dtype=np.int64))
        if dtype is None:
            data = raw
        elif ttype == tflite.TensorType.INT4:
            if raw.size * 2 < count and not sparse:
                raise ModelError(f"tensor {i} ({name!r}): {raw.size} bytes hold fewer than {count} int4 values")
            data = _unpack_int4(raw, raw.size * 2 if sparse else count)
        else:
            if raw.size % dtype.itemsize:
                raise ModelError(
                    f"tensor {i} ({name!r}): buffer of {raw.size} bytes is not a whole number "
                    f"of {type_name} elements"
                )
            # Flatbuffer payloads are little-endian; a zero-copy view on
            # little-endian hosts, a converted copy elsewhere.
            data = raw.view(dtype) if sys.byteorder == "little" else raw.view(dtype.newbyteorder("<")).astype(dtype)
            if not sparse and data.size != count:
                raise ModelError(
                    f"tensor {i} ({name!r}): buffer holds {data.size} elements, shape {shape} needs {count}"
                )
        if not sparse:
            data = data.reshape(shape)
    return TensorInfo(
        index=i, name=name, dtype=dtype, shape=shape, scales=scales, zero_points=zero_points,
        quantized_dimension=qdim, data=data, type_name=type_name, shape_signature=sig,
        is_variable=bool(t.IsVariable()), sparse=sparse,
    )


# --------------------------------------------------------------------------
# Entry point


def _load_bytes(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            return f.read(), path
    except FileNotFoundError:
        raise ModelError(f"model file {path!r} does not exist") from None
    except IsADirectoryError:
        raise ModelError(f"model path {path!r} is a directory, not a .tflite file") from None
    except OSError as e:
        raise ModelError(f"cannot read model file {path!r}: {e.strerror or e}") from None


def read_model(source) -> TfliteModel:
    """Decode a .tflite model from a path or from its bytes.

    Raises ``ModelError`` for a missing/unreadable file, an empty or
    truncated file, a file that is not a TFLite flatbuffer, and
    structurally invalid content (bad tensor/buffer/opcode indices).
    """
    buf, where = _load_bytes(source)
    if not buf:
        raise ModelError(f"{where}: the model file is empty")
    if len(buf) < 8:
        raise ModelError(f"{where}: {len(buf)} bytes is too short to be a TFLite flatbuffer")
    if buf[4:8] != _FILE_IDENTIFIER:
        raise ModelError(
            f"{where}: not a TFLite model (file identifier at bytes 4..8 is {buf[4:8]!r}, "
            f"expected {_FILE_IDENTIFIER!r})"
        )
    try:
        return _decode(buf, where)
    except ModelError:
        raise
    except (_Truncated, *_DECODE_ERRORS) as e:
        raise ModelError(
            f"{where}: truncated or corrupt TFLite flatbuffer ({len(buf)} bytes): {e}"
        ) from e


def _decode(buf, where):
    root = _u32(buf, 0)
    if root >= len(buf):
        raise _Truncated(f"root table offset {root} is past the end")
    model_fb = tflite.Model.GetRootAs(buf, 0)
    version = model_fb.Version()
    if version != _SCHEMA_VERSION:
        raise ModelError(f"{where}: schema version {version}; only version {_SCHEMA_VERSION} is supported")
    n_subgraphs = model_fb.SubgraphsLength()
    if n_subgraphs < 1:
        raise ModelError(f"{where}: the model has no subgraph")
    n_buffers = model_fb.BuffersLength()

    opcodes = []
    for j in range(model_fb.OperatorCodesLength()):
        oc = model_fb.OperatorCodes(j)
        # Codes >= 127 only fit the new int32 field; older files only set the
        # deprecated int8 one. TFLite takes the max of the two.
        code = max(int(oc.DeprecatedBuiltinCode()), int(oc.BuiltinCode()))
        custom = _string_field(oc, _SLOT_OPCODE_CUSTOM_CODE)
        opcodes.append((code, int(oc.Version()), custom))

    sg = model_fb.Subgraphs(0)
    n_tensors = sg.TensorsLength()
    tensors = [_read_tensor(model_fb, sg, i, buf, n_buffers) for i in range(n_tensors)]

    def check_indices(values, what, allow_optional):
        for v in values:
            if not (-1 if allow_optional else 0) <= v < n_tensors:
                raise ModelError(f"{where}: {what} refers to tensor {v}; subgraph 0 has {n_tensors} tensors")
        return tuple(int(v) for v in values)

    ops = []
    for i in range(sg.OperatorsLength()):
        op_fb = sg.Operators(i)
        oc_index = op_fb.OpcodeIndex()
        if not 0 <= oc_index < len(opcodes):
            raise ModelError(f"{where}: operator {i} uses opcode {oc_index}; the model has {len(opcodes)}")
        code, op_version, custom = opcodes[oc_index]
        name = custom if code == tflite.BuiltinOperator.CUSTOM and custom else builtin_name(code)
        ins = check_indices(_np_vector(op_fb.InputsAsNumpy(), np.int64), f"operator {i} ({name}) input", True)
        outs = check_indices(_np_vector(op_fb.OutputsAsNumpy(), np.int64), f"operator {i} ({name}) output", False)
        ops.append(OpInfo(
            index=i, op=builtin_name(code), inputs=ins, outputs=outs,
            options=_op_options(op_fb, builtin_name(code), i), builtin_code=code,
            version=op_version, custom_code=custom,
        ))

    inputs = check_indices(_np_vector(sg.InputsAsNumpy(), np.int64), "subgraph input", False)
    outputs = check_indices(_np_vector(sg.OutputsAsNumpy(), np.int64), "subgraph output", False)

    metadata = {}
    for j in range(model_fb.MetadataLength()):
        m = model_fb.Metadata(j)
        mname = _string_field(m, _SLOT_METADATA_NAME) or f"metadata_{j}"
        raw = _buffer_bytes(model_fb, buf, m.Buffer(), n_buffers, f"metadata {mname!r}")
        metadata[mname] = b"" if raw is None else raw.tobytes()

    return TfliteModel(
        tensors=tensors, ops=ops, inputs=inputs, outputs=outputs, metadata=metadata,
        description=_string_field(model_fb, _SLOT_MODEL_DESCRIPTION) or "",
        version=version, num_subgraphs=n_subgraphs, source=where,
    )


# --------------------------------------------------------------------------
# Cost


def _prod(values):
    p = 1
    for v in values:
        p *= max(int(v), 0)
    return p


def op_macs(op: OpInfo, tensors) -> int:
    """Multiply-accumulates of one operator (0 for ops other than the ones below).

    * CONV_2D: out elements x KH x KW x filter input channels (grouped conv too)
    * DEPTHWISE_CONV_2D: out elements x KH x KW
    * FULLY_CONNECTED: out elements x K
    * TRANSPOSE_CONV: input pixels x KH x KW x Cin x Cout (every input scatters)
    * BATCH_MATMUL: out elements x K (K from the lhs, honouring adj_x)

    ``tensors`` is indexable by tensor index (``TfliteModel.tensors``).
    """
    try:
        shape = lambda idx: tensors[idx].shape  # noqa: E731
        if op.op == "CONV_2D":
            _, kh, kw, cin = shape(op.inputs[1])
            return _prod(shape(op.outputs[0])) * kh * kw * cin
        if op.op == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = shape(op.inputs[1])
            return _prod(shape(op.outputs[0])) * kh * kw
        if op.op == "FULLY_CONNECTED":
            k = shape(op.inputs[1])[-1]
            return _prod(shape(op.outputs[0])) * k
        if op.op == "TRANSPOSE_CONV":
            # inputs: output_shape, weights (Cout, KH, KW, Cin), input (N, H, W, Cin)
            cout, kh, kw, cin = shape(op.inputs[1])
            n, h, w, _ = shape(op.inputs[2])
            return n * h * w * kh * kw * cin * cout
        if op.op == "BATCH_MATMUL":
            a = shape(op.inputs[0])
            k = a[-2] if op.options.get("adj_x") else a[-1]
            return _prod(shape(op.outputs[0])) * k
    except (ValueError, IndexError) as e:
        raise ModelError(f"operator {op.index} ({op.op}): unexpected tensor ranks for a MAC count: {e}") from e
    return 0
