"""A LiteRT delegate whose node selection and kernels are Python callables.

Pure ctypes, no compiler: the C structs of ``tflite/core/c/common.h`` are
declared below and the callbacks LiteRT calls are ctypes function pointers::

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    def select(node_index, builtin_code):          # during delegate Prepare
        return builtin_code == 9                   # FULLY_CONNECTED

    def execute(node_indices, read_tensor, write_tensor):   # during Invoke
        ...                                        # compute the partition

    d = PythonDelegate(select, execute)
    it = Interpreter(model_path=p, experimental_delegates=[d],
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors(); it.set_tensor(...)
    try:
        it.invoke()
    except RuntimeError:
        if d.last_error is not None:
            raise d.last_error                      # the callback's own traceback
        raise

Semantics
---------
* ``select`` sees every node of the execution plan that no delegate owns
  yet, with the builtin code read from the node's TfLiteRegistration (32 =
  CUSTOM). Node indices are subgraph-0 operator indices of the flatbuffer
  (``model.read_model(...).ops[node_index]``).
* LiteRT groups the selected nodes into partitions (maximal runs it can
  replace without creating cycles) and makes each one a kernel. ``execute``
  is called once per partition per invoke, with the partition's node list
  in execution order.
* ``read_tensor(i)`` returns a copy of tensor ``i`` as LiteRT holds it
  (dtype and shape of the TfLiteTensor); it accepts the partition's input
  tensors (activations and constants such as weights and biases) and its
  output tensors. ``write_tensor(i, array)`` copies into an output tensor;
  dtype and shape must match exactly. Every output must be written, or the
  invoke fails (a forgotten output would silently hand stale data on).
* Tensors *internal* to a partition (produced and consumed by its nodes
  and not graph outputs) get no buffer from LiteRT: the arena only
  allocates tensors the remaining execution plan touches. ``read_tensor``
  and ``write_tensor`` refuse them; ``execute`` must carry such
  intermediates itself (e.g. a numpy array from one layer to the next).
* An exception in ``select`` or ``execute`` (or inside this module) is
  caught, reported through ``context->ReportError`` (LiteRT's Python
  wrapper puts that text into the ValueError/RuntimeError it raises), kept
  in ``delegate.last_error`` with its traceback, and turned into
  kTfLiteError. It never unwinds through C frames. ``last_error`` is not
  cleared by later successful calls: use ``clear_error()``.
* One delegate may serve several interpreters; every ctypes object LiteRT
  may call or read (the TfLiteDelegate, the registration, callbacks,
  strings) is owned by the delegate object, and the Interpreter keeps the
  delegate alive through its ``_delegates`` list.

Binary layout relied on (LiteRT 2.3 = ai-edge-litert 2.3.0, x86-64/LP64)
-----------------------------------------------------------------------
Declared from common.h of google-ai-edge/LiteRT (tflite/core/c/common.h):

* TfLiteTensor, sizeof 112 — it is the element of ``context->tensors``, so
  the size must be exact. Used: type@0, data@8, dims@16, allocation_type@32,
  bytes@40, name@56, quantization@80 {type@0, params@8}; the affine params
  {scale: TfLiteFloatArray*, zero_point: TfLiteIntArray*, quantized_dimension}.
* TfLiteContext (prefix only; we never allocate one): tensors_size@0,
  GetExecutionPlan@8, tensors@16, ReportError@40, GetNodeAndRegistration@56,
  ReplaceNodeSubsetsWithDelegateKernels@64.
* TfLiteNode: inputs@0, outputs@8, user_data@32, delegate@64 (the last
  only in the read-back check).
* TfLiteRegistration, sizeof 88, passed *by value* to
  ReplaceNodeSubsetsWithDelegateKernels, so its size must be exact too:
  init@0 free@8 prepare@16 invoke@24 profiling_string@32 builtin_code@40
  custom_name@48 version@56 registration_external@64 async_kernel@72
  inplace_operator@80.
* TfLiteDelegate, sizeof 56: data_, Prepare, 3 buffer-handle callbacks,
  flags@40, opaque_delegate_builder@48 (must stay NULL: non-NULL means an
  opaque delegate).
* TfLiteDelegateParams: delegate@0, nodes_to_replace@8, input_tensors@16,
  output_tensors@24. TfLiteIntArray/TfLiteFloatArray: int size, then data.

How it is verified at run time (every delegate Prepare; failure aborts the
delegation with a ``LayoutError`` naming the field):

1. Every tensor of ``context->tensors`` read with our stride must have an
   in-range type, allocation type and quantization type, a sane dims
   array, ``bytes == prod(dims) * sizeof(type)`` for fixed-size types, and
   a UTF-8 name. A wrong sizeof(TfLiteTensor) breaks this from tensor 1 on.
2. With ``model=`` (a TfliteModel, path or bytes), names, shapes, types and
   per-channel scales/zero points of the first N tensors are compared with
   the flatbuffer — this also checks the TfLiteFloatArray/affine layout.
3. After the replacement, each new delegate node is read back: its
   registration must equal ours field by field (so TFLite's copy of our
   by-value struct has our size and offsets), builtin_code must be DELEGATE,
   node->user_data must be the handle our init returned, node->delegate our
   delegate, node->inputs/outputs the partition's tensors.
4. In init, params->delegate must be our TfLiteDelegate.

``verify_against(interpreter)`` additionally compares, after construction,
everything the delegate reads with ``interpreter.get_tensor_details()`` and
the tensors' data pointers with the interpreter's own numpy views.
"""

from __future__ import annotations

import ctypes as C
import traceback
from dataclasses import dataclass, field

import numpy as np

from ....errors import AccelkitError

__all__ = [
    "PythonDelegate", "Partition", "DelegateError", "LayoutError",
    "TfLiteTensor", "TfLiteNode", "TfLiteRegistration", "TfLiteDelegate",
    "TfLiteContext", "TfLiteDelegateParams", "TFLITE_TYPE_TO_NUMPY",
    "kTfLiteBuiltinDelegate",
]


class DelegateError(AccelkitError, RuntimeError):
    """A delegate callback was misused, or LiteRT refused the delegation."""


class LayoutError(DelegateError):
    """The struct layouts declared here do not match the loaded LiteRT binary."""


kTfLiteOk = 0
kTfLiteError = 1
kTfLiteBuiltinDelegate = 51  # BuiltinOperator_DELEGATE
_KERNEL_INIT_FAILED = (1 << (8 * C.sizeof(C.c_void_p))) - 1  # (void*)-1 = TfLiteKernelInitFailed()

# TfLiteType (runtime enum; FLOAT32 is 1 here, 0 in the schema) -> numpy.
TFLITE_TYPE_TO_NUMPY = {
    1: np.dtype(np.float32), 2: np.dtype(np.int32), 3: np.dtype(np.uint8),
    4: np.dtype(np.int64), 6: np.dtype(np.bool_), 7: np.dtype(np.int16),
    8: np.dtype(np.complex64), 9: np.dtype(np.int8), 10: np.dtype(np.float16),
    11: np.dtype(np.float64), 12: np.dtype(np.complex128), 13: np.dtype(np.uint64),
    16: np.dtype(np.uint32), 17: np.dtype(np.uint16),
}
_MAX_TFLITE_TYPE = 23          # kTfLiteFloat8E5M2
_MAX_ALLOCATION_TYPE = 8       # kTfLiteNonCpu
_MAX_QUANTIZATION_TYPE = 3     # kTfLiteMultiAxisQuantization
_AFFINE_QUANTIZATION = 1
_MAX_RANK = 16                 # sanity bound for dims->size while probing the layout
# Allocation types whose bytes must agree with dims: everything TFLite sized
# from the model (read-only constants and arena tensors).
_SIZED_ALLOCATIONS = {1, 2, 3, 5}  # MmapRo, ArenaRw, ArenaRwPersistent, PersistentRo


# --------------------------------------------------------------------------
# C declarations (see the module docstring for the offsets they imply)

class TfLiteIntArray(C.Structure):
    _fields_ = [("size", C.c_int)]  # followed by int data[size]


class TfLiteQuantizationParams(C.Structure):
    _fields_ = [("scale", C.c_float), ("zero_point", C.c_int32)]


class TfLiteQuantization(C.Structure):
    _fields_ = [("type", C.c_int), ("params", C.c_void_p)]


class TfLiteAffineQuantization(C.Structure):
    _fields_ = [
        ("scale", C.c_void_p),        # TfLiteFloatArray*
        ("zero_point", C.c_void_p),   # TfLiteIntArray*
        ("quantized_dimension", C.c_int32),
    ]


class TfLiteTensor(C.Structure):
    # Pointers are c_void_p (not c_char_p / POINTER) so that nothing is
    # dereferenced implicitly before the layout checks have passed.
    _fields_ = [
        ("type", C.c_int),
        ("data", C.c_void_p),
        ("dims", C.c_void_p),
        ("params", TfLiteQuantizationParams),
        ("allocation_type", C.c_int),
        ("bytes", C.c_size_t),
        ("allocation", C.c_void_p),
        ("name", C.c_void_p),
        ("delegate", C.c_void_p),
        ("buffer_handle", C.c_int),
        ("data_is_stale", C.c_bool),
        ("is_variable", C.c_bool),
        ("quantization", TfLiteQuantization),
        ("sparsity", C.c_void_p),
        ("dims_signature", C.c_void_p),
    ]


class TfLiteNode(C.Structure):
    _fields_ = [
        ("inputs", C.c_void_p),
        ("outputs", C.c_void_p),
        ("intermediates", C.c_void_p),
        ("temporaries", C.c_void_p),
        ("user_data", C.c_void_p),
        ("builtin_data", C.c_void_p),
        ("custom_initial_data", C.c_void_p),
        ("custom_initial_data_size", C.c_int),
        ("delegate", C.c_void_p),
        ("might_have_side_effect", C.c_bool),
    ]


# Kernel callbacks (context and node are passed as addresses).
_InitFn = C.CFUNCTYPE(C.c_void_p, C.c_void_p, C.c_void_p, C.c_size_t)
_FreeFn = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p)
_PrepareFn = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p)
_InvokeFn = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p)


class TfLiteRegistration(C.Structure):
    _fields_ = [
        ("init", _InitFn),
        ("free", _FreeFn),
        ("prepare", _PrepareFn),
        ("invoke", _InvokeFn),
        ("profiling_string", C.c_void_p),
        ("builtin_code", C.c_int32),
        ("custom_name", C.c_void_p),
        ("version", C.c_int),
        ("registration_external", C.c_void_p),
        ("async_kernel", C.c_void_p),
        ("inplace_operator", C.c_uint64),
    ]


_DelegatePrepareFn = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p)


class TfLiteDelegate(C.Structure):
    _fields_ = [
        ("data_", C.c_void_p),
        ("Prepare", _DelegatePrepareFn),
        ("CopyFromBufferHandle", C.c_void_p),
        ("CopyToBufferHandle", C.c_void_p),
        ("FreeBufferHandle", C.c_void_p),
        ("flags", C.c_int64),
        ("opaque_delegate_builder", C.c_void_p),
    ]


class TfLiteDelegateParams(C.Structure):
    _fields_ = [
        ("delegate", C.c_void_p),
        ("nodes_to_replace", C.c_void_p),
        ("input_tensors", C.c_void_p),
        ("output_tensors", C.c_void_p),
    ]


_GetExecutionPlanFn = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(C.c_void_p))
_GetNodeAndRegistrationFn = C.CFUNCTYPE(
    C.c_int, C.c_void_p, C.c_int, C.POINTER(C.c_void_p), C.POINTER(C.c_void_p)
)
_ReplaceNodeSubsetsFn = C.CFUNCTYPE(C.c_int, C.c_void_p, TfLiteRegistration, C.c_void_p, C.c_void_p)
# ReportError is variadic; it is always called with a format that has no
# conversions ('%' escaped), so no variadic argument is ever passed and the
# fixed-argument prototype is ABI-safe on every platform.
_ReportErrorFn = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p)


class TfLiteContext(C.Structure):
    # Prefix of the struct: LiteRT allocates contexts, we only read these
    # fields through a pointer, so the trailing fields need not be declared.
    _fields_ = [
        ("tensors_size", C.c_size_t),
        ("GetExecutionPlan", _GetExecutionPlanFn),
        ("tensors", C.c_void_p),
        ("impl_", C.c_void_p),
        ("ResizeTensor", C.c_void_p),
        ("ReportError", _ReportErrorFn),
        ("AddTensors", C.c_void_p),
        ("GetNodeAndRegistration", _GetNodeAndRegistrationFn),
        ("ReplaceNodeSubsetsWithDelegateKernels", _ReplaceNodeSubsetsFn),
        ("recommended_num_threads", C.c_int),
    ]


_EXPECTED_LAYOUT = {  # x86-64 / aarch64 LP64 values of LiteRT 2.3
    "sizeof(TfLiteTensor)": (C.sizeof(TfLiteTensor), 112),
    "sizeof(TfLiteRegistration)": (C.sizeof(TfLiteRegistration), 88),
    "sizeof(TfLiteDelegate)": (C.sizeof(TfLiteDelegate), 56),
    "sizeof(TfLiteNode)": (C.sizeof(TfLiteNode), 80),
    "TfLiteTensor.quantization": (TfLiteTensor.quantization.offset, 80),
    "TfLiteContext.ReplaceNodeSubsetsWithDelegateKernels":
        (TfLiteContext.ReplaceNodeSubsetsWithDelegateKernels.offset, 64),
}
if C.sizeof(C.c_void_p) == 8:
    for _what, (_got, _want) in _EXPECTED_LAYOUT.items():
        assert _got == _want, f"ctypes declaration drifted: {_what} = {_got}, expected {_want}"


# --------------------------------------------------------------------------
# Raw readers


def _int_array(addr, what="TfLiteIntArray", limit=1 << 24):
    if not addr:
        return []
    n = C.c_int.from_address(addr).value
    if not 0 <= n <= limit:
        raise LayoutError(f"{what} at 0x{addr:x} claims {n} elements")
    return list((C.c_int * n).from_address(addr + C.sizeof(C.c_int)))


def _float_array(addr, what="TfLiteFloatArray", limit=1 << 24):
    if not addr:
        return []
    n = C.c_int.from_address(addr).value
    if not 0 <= n <= limit:
        raise LayoutError(f"{what} at 0x{addr:x} claims {n} elements")
    return list((C.c_float * n).from_address(addr + C.sizeof(C.c_int)))


def _tensor(ctx, index):
    return TfLiteTensor.from_address(ctx.tensors + index * C.sizeof(TfLiteTensor))


def _tensor_name(t):
    return C.string_at(t.name).decode("utf-8") if t.name else ""


def _affine(t):
    """(scales, zero_points, quantized_dimension) of an affine-quantized tensor, else None."""
    q = t.quantization
    if q.type != _AFFINE_QUANTIZATION or not q.params:
        return None
    a = TfLiteAffineQuantization.from_address(q.params)
    return (
        np.array(_float_array(a.scale, "affine scale"), dtype=np.float32),
        np.array(_int_array(a.zero_point, "affine zero_point"), dtype=np.int64),
        int(a.quantized_dimension),
    )


def _describe(ctx, index):
    if not 0 <= index < ctx.tensors_size:
        return f"tensor {index} (out of range 0..{ctx.tensors_size - 1})"
    t = _tensor(ctx, index)
    name = _tensor_name(t) if t.name else ""
    return f"tensor {index}" + (f" ({name!r})" if name else "")


# --------------------------------------------------------------------------


@dataclass
class Partition:
    """One delegate kernel: the nodes it replaces and its boundary tensors."""

    handle: int
    nodes: list[int]
    inputs: list[int]
    outputs: list[int]
    internal: set[int] = field(default_factory=set)
    context: int = 0  # address of the TfLiteContext it belongs to


@dataclass
class _Node:
    builtin_code: int
    inputs: list[int]
    outputs: list[int]


class PythonDelegate:
    """LiteRT delegate calling ``select`` at Prepare and ``execute`` at Invoke.

    ``model`` (optional: a ``TfliteModel``, a path or the model bytes) makes
    every Prepare compare LiteRT's tensors with the flatbuffer as a layout
    check; without it the structural checks still run.
    """

    def __init__(self, select, execute, name="accelkit", *, model=None):
        if not callable(select) or not callable(execute):
            raise TypeError("select and execute must be callables")
        self.select = select
        self.execute = execute
        self.name = str(name)
        self.last_error: BaseException | None = None
        self._expected = None
        if model is not None:
            from .model import TfliteModel, read_model
            self._expected = model if isinstance(model, TfliteModel) else read_model(model)

        self._partitions: dict[int, Partition] = {}
        self._next_handle = 1
        self._nodes: dict[int, dict[int, _Node]] = {}   # context -> node index -> _Node
        self._last_context = 0

        # ctypes objects LiteRT holds pointers to; they live as long as self.
        self._name_bytes = C.create_string_buffer(self.name.encode("utf-8"))
        self._init_cb = _InitFn(self._kernel_init)
        self._free_cb = _FreeFn(self._kernel_free)
        self._prepare_cb = _PrepareFn(self._kernel_prepare)
        self._invoke_cb = _InvokeFn(self._kernel_invoke)
        self._delegate_prepare_cb = _DelegatePrepareFn(self._delegate_prepare)

        self._registration = TfLiteRegistration(
            init=self._init_cb, free=self._free_cb, prepare=self._prepare_cb,
            invoke=self._invoke_cb, profiling_string=None,
            builtin_code=kTfLiteBuiltinDelegate,
            custom_name=C.addressof(self._name_bytes), version=1,
            registration_external=None, async_kernel=None, inplace_operator=0,
        )
        self._delegate = TfLiteDelegate(
            data_=None, Prepare=self._delegate_prepare_cb, CopyFromBufferHandle=None,
            CopyToBufferHandle=None, FreeBufferHandle=None, flags=0,
            opaque_delegate_builder=None,
        )
        self._replace_arrays = []  # node lists handed to ReplaceNodeSubsets...

    # -- public -------------------------------------------------------------

    def _get_native_delegate_pointer(self):
        """Address of the TfLiteDelegate (the hook LiteRT's Interpreter calls)."""
        return C.addressof(self._delegate)

    @property
    def partitions(self) -> list[Partition]:
        """Live delegate kernels, in creation order."""
        return [self._partitions[h] for h in sorted(self._partitions)]

    def clear_error(self):
        self.last_error = None

    def verify_against(self, interpreter):
        """Compare what this delegate reads from LiteRT with the interpreter's own API.

        Uses the context of the most recent delegate Prepare, so call it on
        the interpreter built last with this delegate (while it is alive).
        Checks tensor count, names, shapes, types, quantization, and data
        pointers of allocated tensors. Raises ``LayoutError`` on a mismatch;
        returns the number of tensors checked.
        """
        ctx_addr = self._last_context
        if not ctx_addr:
            raise DelegateError("no interpreter has prepared this delegate yet")
        ctx = TfLiteContext.from_address(ctx_addr)
        n_api = interpreter._interpreter.NumTensors(0)
        if ctx.tensors_size != n_api:
            raise LayoutError(
                f"context->tensors_size = {ctx.tensors_size} but the interpreter has {n_api} "
                "tensors (wrong TfLiteContext layout, or not the interpreter built last?)"
            )
        details = {d["index"]: d for d in interpreter.get_tensor_details()}
        for i in range(ctx.tensors_size):
            t = _tensor(ctx, i)
            d = details.get(i)
            if d is None:
                continue  # unnamed temporaries are not reported by the API
            where = f"tensor {i} ({d['name']!r})"
            name = _tensor_name(t)
            if name != d["name"]:
                raise LayoutError(f"{where}: read name {name!r} via sizeof(TfLiteTensor)={C.sizeof(TfLiteTensor)}")
            shape = tuple(_int_array(t.dims, "dims", _MAX_RANK))
            if shape != tuple(int(x) for x in d["shape"]):
                raise LayoutError(f"{where}: read dims {shape}, interpreter says {tuple(d['shape'])}")
            dt = TFLITE_TYPE_TO_NUMPY.get(t.type)
            if dt is not None and dt != np.dtype(d["dtype"]):
                raise LayoutError(f"{where}: read type {t.type} ({dt}), interpreter says {np.dtype(d['dtype'])}")
            qp = d["quantization_parameters"]
            aff = _affine(t)
            api_scales = np.asarray(qp["scales"], dtype=np.float32)
            if aff is None:
                if api_scales.size:
                    raise LayoutError(f"{where}: no affine quantization read, interpreter has scales")
            else:
                scales, zps, qdim = aff
                if not (np.array_equal(scales, api_scales)
                        and np.array_equal(zps, np.asarray(qp["zero_points"], np.int64))
                        and (scales.size <= 1 or qdim == qp["quantized_dimension"])):
                    raise LayoutError(
                        f"{where}: read quantization {scales.tolist()}/{zps.tolist()}/dim {qdim}, "
                        f"interpreter says {api_scales.tolist()}/{list(qp['zero_points'])}/"
                        f"dim {qp['quantized_dimension']}"
                    )
            if t.data and dt is not None and t.bytes:
                try:
                    view = interpreter.tensor(i)()
                except ValueError:
                    continue
                addr = view.__array_interface__["data"][0]
                del view  # the interpreter refuses to invoke while views exist
                if addr != t.data:
                    raise LayoutError(f"{where}: read data pointer 0x{t.data:x}, interpreter's is 0x{addr:x}")
        return len(details)

    # -- error plumbing ------------------------------------------------------

    def _fail(self, ctx_addr, exc, where):
        """Record ``exc`` and report it through the context; never raises."""
        self.last_error = exc
        try:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            # LiteRT's Python error reporter concatenates messages: end ours with a newline.
            msg = f"{self.name} delegate: {where} failed: {detail}\n"
            if ctx_addr:
                ctx = TfLiteContext.from_address(ctx_addr)
                if ctx.ReportError:
                    ctx.ReportError(ctx_addr, msg.replace("%", "%%").encode("utf-8", "replace"))
        except BaseException:  # noqa: BLE001 - reporting must not fail the failure path
            pass
        return kTfLiteError

    # -- delegate Prepare ----------------------------------------------------

    def _delegate_prepare(self, ctx_addr, delegate_addr):
        try:
            self._last_context = ctx_addr
            ctx = TfLiteContext.from_address(ctx_addr)
            self._check_tensors(ctx)
            if delegate_addr != C.addressof(self._delegate):
                raise LayoutError("Prepare received a TfLiteDelegate* that is not this delegate's")

            plan = self._execution_plan(ctx, ctx_addr)
            nodes = {}
            selected = []
            for node_index in plan:
                node, reg = self._node_and_registration(ctx, ctx_addr, node_index)
                code = int(reg.builtin_code)
                nodes[node_index] = _Node(
                    code,
                    _int_array(node.inputs, f"node {node_index} inputs"),
                    _int_array(node.outputs, f"node {node_index} outputs"),
                )
                if code == kTfLiteBuiltinDelegate:
                    continue  # already owned by a delegate (this one or another)
                if bool(self.select(node_index, code)):
                    selected.append(node_index)
            self._check_node_tensors(ctx, nodes)
            self._nodes[ctx_addr] = nodes
            if not selected:
                return kTfLiteOk

            arr = (C.c_int * (len(selected) + 1))(len(selected), *selected)
            self._replace_arrays = [arr]
            before = set(self._partitions)
            prior_error = self.last_error
            status = ctx.ReplaceNodeSubsetsWithDelegateKernels(
                ctx_addr, self._registration, C.addressof(arr), delegate_addr
            )
            if status != kTfLiteOk:
                if self.last_error is not prior_error:
                    # Our kernel init failed inside the call: keep that as the cause.
                    raise DelegateError(
                        f"ReplaceNodeSubsetsWithDelegateKernels returned {status} "
                        f"after: {self.last_error!r}"
                    ) from self.last_error
                raise DelegateError(f"ReplaceNodeSubsetsWithDelegateKernels returned {status}")
            self._check_delegate_nodes(ctx, ctx_addr, set(plan), set(self._partitions) - before)
            return kTfLiteOk
        except BaseException as e:  # noqa: BLE001 - must not unwind into C
            return self._fail(ctx_addr, e, "Prepare")

    def _execution_plan(self, ctx, ctx_addr):
        plan_ptr = C.c_void_p()
        status = ctx.GetExecutionPlan(ctx_addr, C.byref(plan_ptr))
        if status != kTfLiteOk:
            raise DelegateError(f"GetExecutionPlan returned {status}")
        return _int_array(plan_ptr.value, "execution plan")

    def _node_and_registration(self, ctx, ctx_addr, node_index):
        node_p, reg_p = C.c_void_p(), C.c_void_p()
        status = ctx.GetNodeAndRegistration(ctx_addr, node_index, C.byref(node_p), C.byref(reg_p))
        if status != kTfLiteOk or not node_p.value or not reg_p.value:
            raise DelegateError(f"GetNodeAndRegistration({node_index}) returned {status}")
        return TfLiteNode.from_address(node_p.value), TfLiteRegistration.from_address(reg_p.value)

    # -- layout checks ------------------------------------------------------

    def _check_tensors(self, ctx):
        n = ctx.tensors_size
        stride = C.sizeof(TfLiteTensor)
        if not 0 < n < 1 << 26 or not ctx.tensors:
            raise LayoutError(f"context->tensors_size = {n}, tensors = {ctx.tensors}: implausible")
        hint = f"(sizeof(TfLiteTensor) = {stride} assumed)"
        for i in range(n):
            t = _tensor(ctx, i)
            if not 0 <= t.type <= _MAX_TFLITE_TYPE:
                raise LayoutError(f"tensor {i}: type field = {t.type}, not a TfLiteType {hint}")
            if not 0 <= t.allocation_type <= _MAX_ALLOCATION_TYPE:
                raise LayoutError(f"tensor {i}: allocation_type = {t.allocation_type} {hint}")
            if not 0 <= t.quantization.type <= _MAX_QUANTIZATION_TYPE:
                raise LayoutError(f"tensor {i}: quantization.type = {t.quantization.type} {hint}")
            dims = _int_array(t.dims, f"tensor {i} dims {hint}", _MAX_RANK)
            if any(d < 0 for d in dims):
                raise LayoutError(f"tensor {i}: dims {dims} {hint}")
            dt = TFLITE_TYPE_TO_NUMPY.get(t.type)
            if t.dims and dt is not None and t.allocation_type in _SIZED_ALLOCATIONS:
                want = int(np.prod(dims, dtype=np.int64)) * dt.itemsize
                if t.bytes != want:
                    raise LayoutError(
                        f"tensor {i}: bytes = {t.bytes} but dims {dims} of {dt} need {want} {hint}"
                    )
            try:
                name = _tensor_name(t)
            except UnicodeDecodeError:
                raise LayoutError(f"tensor {i}: name is not UTF-8 {hint}") from None
            exp = self._expected
            if exp is not None and i < len(exp.tensors):
                self._compare_with_model(t, i, name, dims, dt, exp.tensors[i], hint)
        if self._expected is not None and n < len(self._expected.tensors):
            raise LayoutError(
                f"context has {n} tensors, the model {len(self._expected.tensors)} "
                "(wrong TfLiteContext layout, or a different model than model=)"
            )

    @staticmethod
    def _compare_with_model(t, i, name, dims, dt, info, hint):
        where = f"tensor {i}"
        if name != info.name:
            raise LayoutError(f"{where}: read name {name!r}, the model says {info.name!r} {hint}")
        if tuple(dims) != tuple(info.shape):
            raise LayoutError(f"{where} ({name!r}): read dims {dims}, the model says {info.shape} {hint}")
        if info.dtype is not None and dt is not None and dt != info.dtype and info.type_name != "INT4":
            raise LayoutError(f"{where} ({name!r}): read {dt}, the model says {info.dtype} {hint}")
        if info.scales is not None and info.scales.size:
            aff = _affine(t)
            if aff is None:
                raise LayoutError(f"{where} ({name!r}): no affine quantization read, the model has one")
            scales, zps, qdim = aff
            if not np.array_equal(scales, info.scales) or not np.array_equal(zps, info.zero_points):
                raise LayoutError(
                    f"{where} ({name!r}): read scales {scales.tolist()} / zero points {zps.tolist()}, "
                    f"the model says {info.scales.tolist()} / {info.zero_points.tolist()} "
                    "(TfLiteAffineQuantization/TfLiteFloatArray layout?)"
                )
            if scales.size > 1 and qdim != info.quantized_dimension:
                raise LayoutError(f"{where} ({name!r}): read quantized_dimension {qdim}, model {info.quantized_dimension}")

    @staticmethod
    def _check_node_tensors(ctx, nodes):
        n = ctx.tensors_size
        for idx, node in nodes.items():
            bad = [v for v in node.inputs + node.outputs if not -1 <= v < n]
            if bad:
                raise LayoutError(f"node {idx}: tensor indices {bad} outside 0..{n - 1} (TfLiteNode layout?)")

    def _check_delegate_nodes(self, ctx, ctx_addr, old_plan, new_handles):
        """Read back the delegate nodes LiteRT created from our registration."""
        ours = self._registration
        fn_addr = lambda f: C.cast(f, C.c_void_p).value  # noqa: E731
        expected = {
            "init": fn_addr(ours.init), "free": fn_addr(ours.free),
            "prepare": fn_addr(ours.prepare), "invoke": fn_addr(ours.invoke),
        }
        by_handle = {h: self._partitions[h] for h in new_handles}
        seen = set()
        for node_index in self._execution_plan(ctx, ctx_addr):
            if node_index in old_plan:
                continue
            node, reg = self._node_and_registration(ctx, ctx_addr, node_index)
            where = f"delegate node {node_index}"
            for fname, addr in expected.items():
                got = fn_addr(getattr(reg, fname))
                if got != addr:
                    raise LayoutError(f"{where}: registration.{fname} reads back 0x{got or 0:x}, ours is 0x{addr:x}")
            if reg.builtin_code != kTfLiteBuiltinDelegate or reg.version != ours.version:
                raise LayoutError(
                    f"{where}: registration builtin_code/version read back as "
                    f"{reg.builtin_code}/{reg.version} (sizeof(TfLiteRegistration) = {C.sizeof(TfLiteRegistration)})"
                )
            if reg.custom_name != ours.custom_name or reg.registration_external or reg.async_kernel \
                    or reg.inplace_operator != 0 or reg.profiling_string:
                raise LayoutError(f"{where}: trailing TfLiteRegistration fields do not read back as written")
            handle = node.user_data or 0
            part = by_handle.get(handle)
            if part is None:
                raise LayoutError(f"{where}: node->user_data = {handle} is not a handle our init returned")
            if node.delegate != C.addressof(self._delegate):
                raise LayoutError(f"{where}: node->delegate does not point at this delegate (TfLiteNode layout?)")
            if _int_array(node.inputs) != part.inputs or _int_array(node.outputs) != part.outputs:
                raise LayoutError(f"{where}: node inputs/outputs differ from the TfLiteDelegateParams")
            seen.add(handle)
        if seen != set(new_handles):
            raise LayoutError(f"partitions {sorted(set(new_handles) - seen)} have no node in the execution plan")

    # -- kernel callbacks ----------------------------------------------------

    def _kernel_init(self, ctx_addr, buffer, length):
        try:
            params = TfLiteDelegateParams.from_address(buffer)
            if params.delegate != C.addressof(self._delegate):
                raise LayoutError("TfLiteDelegateParams.delegate is not this delegate (params layout?)")
            nodes = _int_array(params.nodes_to_replace, "nodes_to_replace")
            inputs = _int_array(params.input_tensors, "input_tensors")
            outputs = _int_array(params.output_tensors, "output_tensors")
            known = self._nodes.get(ctx_addr, {})
            missing = [n for n in nodes if n not in known]
            if missing:
                raise DelegateError(f"init got nodes {missing} that Prepare did not see")
            produced = {t for n in nodes for t in known[n].outputs}
            handle = self._next_handle
            self._next_handle += 1
            self._partitions[handle] = Partition(
                handle=handle, nodes=nodes, inputs=[t for t in inputs if t >= 0],
                outputs=outputs, internal=produced - set(outputs), context=ctx_addr,
            )
            return handle
        except BaseException as e:  # noqa: BLE001
            self._fail(ctx_addr, e, "kernel init")
            return _KERNEL_INIT_FAILED

    def _kernel_free(self, ctx_addr, user_data):
        # May run while the interpreter is torn down: touch only self.
        try:
            self._partitions.pop(user_data or 0, None)
        except BaseException:  # noqa: BLE001
            pass

    def _kernel_prepare(self, ctx_addr, node_addr):
        try:
            part = self._partition(node_addr)
            ctx = TfLiteContext.from_address(ctx_addr)
            for i in part.outputs:
                t = _tensor(ctx, i)
                if t.type not in TFLITE_TYPE_TO_NUMPY:
                    raise DelegateError(f"{_describe(ctx, i)}: type {t.type} is not supported by the Python delegate")
                if not t.dims:
                    raise DelegateError(f"{_describe(ctx, i)} has no shape; this delegate does not infer shapes")
            return kTfLiteOk
        except BaseException as e:  # noqa: BLE001
            return self._fail(ctx_addr, e, "kernel prepare")

    def _kernel_invoke(self, ctx_addr, node_addr):
        try:
            part = self._partition(node_addr)
            ctx = TfLiteContext.from_address(ctx_addr)
            readable = set(part.inputs) | set(part.outputs)
            writable = set(part.outputs)
            written = set()

            def refuse(i, verb):
                if i in part.internal:
                    return DelegateError(
                        f"cannot {verb} {_describe(ctx, i)}: it is internal to the partition "
                        f"(nodes {part.nodes}) and has no LiteRT buffer; keep it in execute"
                    )
                allowed = sorted(readable if verb == "read" else writable)
                return DelegateError(
                    f"cannot {verb} {_describe(ctx, i)}: not a partition "
                    f"{'input or output' if verb == 'read' else 'output'} (allowed: {allowed})"
                )

            def read_tensor(i):
                i = int(i)
                if i not in readable:
                    raise refuse(i, "read")
                return _view(ctx, i).copy()

            def write_tensor(i, array):
                i = int(i)
                if i not in writable:
                    raise refuse(i, "write")
                view = _view(ctx, i)
                a = np.asarray(array)
                if a.dtype != view.dtype:
                    raise DelegateError(f"write to {_describe(ctx, i)}: dtype {a.dtype}, the tensor is {view.dtype}")
                if a.shape != view.shape:
                    raise DelegateError(f"write to {_describe(ctx, i)}: shape {a.shape}, the tensor is {view.shape}")
                np.copyto(view, a)
                written.add(i)

            self.execute(list(part.nodes), read_tensor, write_tensor)
            missing = [i for i in part.outputs if i not in written]
            if missing:
                raise DelegateError(
                    f"execute for nodes {part.nodes} did not write output tensor(s) "
                    + ", ".join(_describe(ctx, i) for i in missing)
                )
            return kTfLiteOk
        except BaseException as e:  # noqa: BLE001
            return self._fail(ctx_addr, e, "execute")

    def _partition(self, node_addr):
        handle = TfLiteNode.from_address(node_addr).user_data or 0
        part = self._partitions.get(handle)
        if part is None:
            raise DelegateError(f"node user_data {handle} is not a live partition of this delegate")
        return part


def _view(ctx, i):
    """numpy array aliasing LiteRT's buffer of tensor ``i`` (checked)."""
    if not 0 <= i < ctx.tensors_size:
        raise DelegateError(f"tensor index {i} out of range 0..{ctx.tensors_size - 1}")
    t = _tensor(ctx, i)
    dt = TFLITE_TYPE_TO_NUMPY.get(t.type)
    if dt is None:
        raise DelegateError(f"{_describe(ctx, i)}: TfLiteType {t.type} has no numpy equivalent")
    shape = tuple(_int_array(t.dims, f"tensor {i} dims", _MAX_RANK))
    count = int(np.prod(shape, dtype=np.int64))
    if count * dt.itemsize != t.bytes:
        raise DelegateError(f"{_describe(ctx, i)}: {t.bytes} bytes do not hold {shape} of {dt}")
    if count == 0:
        return np.zeros(shape, dtype=dt)
    if not t.data:
        raise DelegateError(f"{_describe(ctx, i)} has no buffer (not allocated by LiteRT)")
    buf = (C.c_char * t.bytes).from_address(t.data)
    return np.frombuffer(buf, dtype=dt, count=count).reshape(shape)
