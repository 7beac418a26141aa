"""Relax BYOC partitioning for accelkit accelerators.

Relax has no QNN operators: TVM 0.27's TFLite importer writes every int8
CONV_2D / FULLY_CONNECTED as a float chain around the integer tensors::

    x_f = dequantize(x_int8, s_x, zp_x)                      # per-tensor
    w_f = dequantize(W_int8, s_w, 0, axis=3)                 # conv: W in HWIO, per output channel
    w_f = dequantize(permute_dims(W_int8, [1, 0]), s_w, 0, axis=1)   # fc: W as [N, K] -> [K, N]
    y   = conv2d(x_f, w_f, NHWC/HWIO, explicit padding) | matmul(x_f, w_f)
    y   = add(y, dequantize(B_int32, s_x * s_w, 0))          # when the op has a bias
    q   = quantize(y, s_out, zp_out)                         # int8
    q   = clip(q, lo, hi)                                    # when the op has a fused activation

The patterns below match that chain (named ``accelkit.<accelerator>.<op>``,
op one of the accelerator's ``kinds``) and recover the layer as the TFLite
front end sees it: int8 weights in TFLite order, the raw int32 bias, float32
scales, zero points, stride/dilation, SAME/VALID padding and the fused
activation (from the clip bounds). The compute part of each chain, and how
its constants become a layer, come from the layer kind (``driver/kinds``); the
check function asks the accelerator for a plan, as the LiteRT delegate does:
there is no second list of what an accelerator supports.

Accepted chains become composite functions (``FuseOpsByPattern(...,
bind_constants=True, annotate_codegen=True)``). ``RunCodegen`` hands them to
the ``relax.ext.accelkit`` hook registered here, which records each one's
layer and returns no runtime module; TVM then rewrites every call site into
``R.call_dps_packed(symbol, x)``. :meth:`PartitionInfo.bind` registers a
Python function under each symbol that runs the layer on a device through
``executor.run(plan, x)`` and writes the int8 result into the VM's output
buffer. The offloaded layers therefore compute TFLite's integer semantics
(the accelerator's fixed-point requantization), not the importer's float
dequantize/quantize approximation of them.
"""

from __future__ import annotations

import atexit
import contextvars
import itertools
import time
from dataclasses import dataclass

import numpy as np

from . import require_tvm

require_tvm()

import tvm_ffi  # noqa: E402
from tvm.ir.expr import Constant  # noqa: E402
from tvm import relax  # noqa: E402
from tvm.relax.backend.pattern_registry import get_patterns_with_prefix, register_patterns  # noqa: E402
from tvm.relax.backend.utils import has_leaking_intermediate_variables  # noqa: E402
from tvm.relax.dpl import is_const, is_op, wildcard  # noqa: E402

from ....accelerators.base import Accelerator, get_accelerator, registry  # noqa: E402
from ....driver.kinds import LayerKind, get_kind, kinds  # noqa: E402
from ....driver.layers import conv_output_size, same_padding  # noqa: E402
from ....driver.quant import ACTIVATIONS, activation_range  # noqa: E402
from ....driver.device import Device  # noqa: E402
from ....errors import AccelkitError, ParameterError, UnsupportedLayer  # noqa: E402

__all__ = ["partition_for_accelkit", "PartitionInfo", "OffloadedLayer", "DeclinedLayer", "Origin",
           "accelkit_patterns", "layer_from_match", "relax_kinds", "CODEGEN"]

#: the BYOC codegen name: pattern names start with it, RunCodegen calls ``relax.ext.<CODEGEN>``
CODEGEN = "accelkit"
#: composite-function attribute carrying the TFLite operator index the chain came from
ORIGIN_ATTR = "accelkit_origin"


@dataclass(frozen=True)
class Origin:
    """Where a Relax compute call came from: a TFLite operator (index, builtin name)."""

    index: int
    op: str
    #: the operator's fused activation, where the importer drops it (TVM 0.27 ignores TRANSPOSE_CONV's)
    activation: str | None = None
    #: the operator's output shape in the .tflite, where the importer may compute another one
    output_shape: tuple | None = None


# --------------------------------------------------------------------------
# Patterns


def relax_kinds():
    """Names of the layer kinds (``driver/kinds``) that declare the compute part of a Relax chain."""
    return [name for name, kind in kinds().items() if type(kind).relax_compute is not LayerKind.relax_compute]


class _Constructors:
    """The pattern constructors a kind's ``relax_compute`` builds its part of the chain with."""

    def __init__(self, parts):
        self.is_op, self.is_const, self.wildcard, self.parts = is_op, is_const, wildcard, parts

    @staticmethod
    def dequantize(data, scale, zero_point):
        return is_op("relax.dequantize")(data, scale, zero_point)


def _chain(op):
    """(root pattern, named sub-patterns) of the importer's chain for one layer kind."""
    parts = {name: is_const() for name in ("x_scale", "x_zp", "w", "w_scale", "w_zp", "bias", "bias_scale",
                                           "bias_zp", "out_scale", "out_zp")}
    p = _Constructors(parts)
    parts["x"] = wildcard()
    parts["x_dq"] = p.dequantize(parts["x"], parts["x_scale"], parts["x_zp"])
    compute = get_kind(op).relax_compute(p) if op in relax_kinds() else None
    if compute is None:
        raise ParameterError(f"no Relax pattern for layer kind {op!r}; known: {', '.join(relax_kinds())}")
    parts["compute"] = compute
    parts["biased"] = is_op("relax.add")(
        parts["compute"], p.dequantize(parts["bias"], parts["bias_scale"], parts["bias_zp"]))
    parts["quantize"] = is_op("relax.quantize")(parts["biased"] | parts["compute"], parts["out_scale"],
                                                parts["out_zp"])
    parts["lo"], parts["hi"] = wildcard(), wildcard()
    parts["clip"] = is_op("relax.clip")(parts["quantize"], parts["lo"], parts["hi"])
    # The clip alternative comes first; FuseOpsByPattern keeps the larger match, so
    # a fused activation travels with its layer instead of staying on the CPU.
    root = parts["clip"] | parts["quantize"]
    return root, parts


def _pattern_name(accelerator_name, op):
    return f"{CODEGEN}.{accelerator_name}.{op}"


def _pattern_entry(accelerator_name, op):
    """(name, pattern, annotations, check, attrs_getter) as register_patterns/FusionPattern take it."""
    root, parts = _chain(op)

    def check(context):
        matched = {str(k): v for k, v in context.annotated_expr.items()}
        # A value inside the chain that something outside also reads (say a dequantized
        # input shared with a residual ADD) would vanish into the composite function.
        leak = "an intermediate value of the chain is also used outside it" \
            if has_leaking_intermediate_variables(context) else None
        return _decide(accelerator_name, op, matched, leak)

    def attrs(annotated):
        # Runs once per accepted group: the TFLite operator index travels with the
        # composite function to the codegen hook, and from there into the report.
        session = _SESSION.get()
        origin = session.origin_of(annotated.get("compute")) if session else None
        return {} if origin is None else {ORIGIN_ATTR: str(origin.index)}

    return _pattern_name(accelerator_name, op), root, dict(parts), check, attrs


def _register_builtin_patterns():
    """Register ``accelkit.<name>.<op>`` for every accelerator plug-in that loads."""
    entries = []
    for name, cls in registry().items():
        if isinstance(cls, str):       # a broken plug-in: the CLI reports it, we skip it
            continue
        entries += [_pattern_entry(name, op) for op in cls.kinds if op in relax_kinds()]
    if entries:
        register_patterns(entries)


def accelkit_patterns(accelerator):
    """The fusion patterns for ``accelerator`` (registered ones when its class is the registered plug-in)."""
    ops = [op for op in accelerator.kinds if op in relax_kinds()]
    if registry().get(accelerator.name) is type(accelerator):
        found = {str(p.name): p for p in get_patterns_with_prefix(f"{CODEGEN}.{accelerator.name}.")}
        if all(_pattern_name(accelerator.name, op) in found for op in ops):
            return [found[_pattern_name(accelerator.name, op)] for op in ops]
    # An accelerator class that is not (or not yet) an entry point: same patterns, unregistered.
    return [relax.transform.FusionPattern(*_pattern_entry(accelerator.name, op)) for op in ops]


# --------------------------------------------------------------------------
# From matched constants to a driver layer


def _array(expr, what):
    # In TVM 0.27 a tensor constant is an ir.Constant whose value is a runtime Tensor
    # (scalars such as T.float64(...) are Constants too, with a Python number).
    value = getattr(expr, "value", None) if isinstance(expr, Constant) else None
    if not hasattr(value, "numpy"):
        raise UnsupportedLayer(f"{what} is not a constant tensor")
    return value.numpy()


def _scalar(expr, what):
    values = _array(expr, what).reshape(-1)
    if values.size != 1:
        raise UnsupportedLayer(f"{what} is not per-tensor ({values.size} values)")
    return values[0]


def _static_shape(expr, what):
    shape = getattr(expr.ty, "shape", None)
    values = getattr(shape, "values", None)
    if values is None or not all(hasattr(v, "value") for v in values):
        raise UnsupportedLayer(f"{what} has no static shape")
    return tuple(int(v.value) for v in values)


def _prim(expr):
    """A clip bound: an IntImm/FloatImm (what relax.op.clip builds) or a scalar tensor constant."""
    value = getattr(expr, "value", None)
    if isinstance(value, int | float):
        return float(value)
    return float(_scalar(expr, "clip bound"))


def _importer_range(activation, scale, zero_point):
    # The importer's own bounds: Python round() of value / scale (halves to even),
    # where TFLite uses roundf of a float32 ratio (halves away from zero).
    def q(value):
        return int(round(value / scale) + zero_point)
    return {"NONE": (-128, 127), "RELU": (max(-128, q(0.0)), 127),
            "RELU6": (max(-128, q(0.0)), min(127, q(6.0))),
            "RELU_N1_TO_1": (max(-128, q(-1.0)), min(127, q(1.0)))}[activation]


def _activation(matched, scale, zero_point):
    """A TFLite fused activation whose int8 clamp equals the importer's clip.

    The importer writes a clip for every fused activation but NONE, even when it
    clamps nothing (RELU with zero point -128), so a clip tries the activations
    first. Only the clamp is recoverable: RELU and RELU6 can give the same
    bounds, and then either name yields the same layer.
    """
    if matched.get("clip") is None:
        return "NONE"
    bounds = (_prim(matched["lo"]), _prim(matched["hi"]))
    for rule in (activation_range, _importer_range):
        for name in ACTIVATIONS[1:] + ACTIVATIONS[:1]:
            if rule(name, scale, zero_point) == bounds:
                return name
    raise UnsupportedLayer(f"clip to [{bounds[0]:g}, {bounds[1]:g}] is not a TFLite fused activation of an "
                           f"output with scale {scale:g} and zero point {zero_point}")


def _weight_scales(matched, channels, axis):
    scales = _array(matched["w_scale"], "weight scale").reshape(-1)
    if np.any(_array(matched["w_zp"], "weight zero point") != 0):
        raise UnsupportedLayer("weights are not symmetric (non-zero weight zero point)")
    if scales.size == 1:
        return scales.astype(np.float64)
    if scales.size != channels or int(matched["w_dq"].attrs.axis) != axis:
        raise UnsupportedLayer(f"weight quantization is neither per-tensor nor per output channel "
                               f"({scales.size} scales on axis {int(matched['w_dq'].attrs.axis)})")
    return scales.astype(np.float64)     # float32 values, exactly: TFLite's effective scale starts from them


def _bias(matched, channels):
    if matched.get("biased") is None:
        return None
    bias = _array(matched["bias"], "bias")
    if bias.dtype != np.int32:
        raise UnsupportedLayer(f"bias is {bias.dtype}, not int32")
    if bias.size != channels:
        raise UnsupportedLayer(f"bias has {bias.size} values for {channels} channels")
    if np.any(_array(matched["bias_zp"], "bias zero point") != 0):
        raise UnsupportedLayer("bias has a non-zero zero point")
    # TFLite's integer kernels add the raw int32 bias; its scale (s_x * s_w) only
    # matters to the importer's float approximation.
    return bias.reshape(-1).astype(np.int64)


def _padding_mode(input_shape, output_shape, kernel, stride, dilation, padding):
    """Explicit [top, left, bottom, right] padding back to TFLite's SAME/VALID, or decline."""
    if len(padding) == 2:
        padding = padding * 2
    elif len(padding) == 1:
        padding = padding * 4
    (h, w), (oh, ow) = input_shape[1:3], output_shape[1:3]
    for mode in ("VALID", "SAME"):
        sizes = [conv_output_size(size, k, s, d, mode) for size, k, s, d in zip((h, w), kernel, stride, dilation)]
        if sizes != [oh, ow]:
            continue
        if mode == "VALID":
            expected = [0, 0, 0, 0]
        else:
            top, left = (same_padding(size, k, s, d, o) for size, k, s, d, o in
                         zip((h, w), kernel, stride, dilation, (oh, ow)))
            bottom = max((oh - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1 - h - top, 0)
            right = max((ow - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1 - w - left, 0)
            expected = [top, left, bottom, right]
        if list(padding) == expected:
            return mode
    raise UnsupportedLayer(f"padding {list(padding)} is neither TFLite SAME nor VALID for a {h}x{w} input")


def layer_from_match(op, matched):
    """(driver layer, input shape, output shape) from a matched chain (name -> Relax expr), or UnsupportedLayer."""
    x, quantize = matched["x"], matched["quantize"]
    if isinstance(x, Constant):
        raise UnsupportedLayer("the layer input is a constant")
    if str(x.ty.dtype) != "int8":
        raise UnsupportedLayer(f"input is {x.ty.dtype}, not int8")
    if str(quantize.attrs.out_dtype) != "int8":
        raise UnsupportedLayer(f"output is {quantize.attrs.out_dtype}, not int8")
    input_shape = _static_shape(x, "input")
    output_shape = _static_shape(matched["clip"] if matched.get("clip") is not None else quantize, "output")
    output_scale = float(_scalar(matched["out_scale"], "output scale"))
    output_zero_point = int(_scalar(matched["out_zp"], "output zero point"))
    quant = dict(input_scale=float(_scalar(matched["x_scale"], "input scale")),
                 input_zero_point=int(_scalar(matched["x_zp"], "input zero point")),
                 output_scale=output_scale, output_zero_point=output_zero_point,
                 activation=_activation(matched, output_scale, output_zero_point))
    weights = _array(matched["w"], "weights")
    if weights.dtype != np.int8:
        raise UnsupportedLayer(f"weights are {weights.dtype}, not int8")
    fields = _Fields(weights=weights, input_shape=input_shape, output_shape=output_shape, quant=quant)
    layer = get_kind(op).from_relax(matched, fields)
    produced = layer.output_shape_for(input_shape)
    if int(np.prod(produced)) != int(np.prod(output_shape)):
        raise UnsupportedLayer(f"the layer's output {list(produced)} is not the importer's {list(output_shape)}")
    return layer, input_shape, output_shape


@dataclass
class _Fields:
    """What a kind's ``from_relax`` reads a matched chain with (constants, shapes, quantization)."""

    weights: np.ndarray
    input_shape: tuple
    output_shape: tuple
    quant: dict

    array = staticmethod(lambda expr, what: _array(expr, what))
    scalar = staticmethod(lambda expr, what: _scalar(expr, what))
    bias = staticmethod(lambda matched, channels: _bias(matched, channels))
    weight_scales = staticmethod(lambda matched, channels, axis: _weight_scales(matched, channels, axis))
    padding_mode = staticmethod(lambda *args: _padding_mode(*args))


# --------------------------------------------------------------------------
# The partitioning session (what check functions and the codegen hook report to)


@dataclass
class OffloadedLayer:
    """One composite function served by the accelerator."""

    symbol: str              # the call_dps_packed symbol (a registered global function)
    op: str                  # its layer kind
    pattern: str
    layer: object            # a driver/kinds layer
    input_shape: tuple
    output_shape: tuple
    plan: object = None      # the accelerator's plan for it
    origin: int | None = None
    stats: object = None     # LayerStats of the last call
    calls: int = 0
    last_output: np.ndarray | None = None
    last_input: np.ndarray | None = None     # kept only with PartitionInfo.keep_inputs
    composite: object = None  # the matched Relax function (what TVM's CPU would have run)

    @property
    def accelerator(self):
        """Name of the accelerator whose pattern took this layer (``accelkit.<name>.<op>``)."""
        return self.pattern.split(".")[1]

    @property
    def macs(self):
        return self.layer.macs(self.input_shape)


@dataclass
class DeclinedLayer:
    """A matched chain the check function refused (it stays on TVM's CPU code)."""

    op: str
    pattern: str
    reason: str
    origin: int | None
    input_shape: tuple | None


_SESSION = contextvars.ContextVar("accelkit_tvm_partition", default=None)
_PARTITION_IDS = itertools.count()
_BOUND = {}   # symbol -> PartitionInfo, for the exit-time cleanup


class PartitionInfo:
    """What :func:`partition_for_accelkit` decided, and the kernels serving its symbols."""

    def __init__(self, accelerator, origins=None):
        self.accelerator = accelerator
        self.origins = dict(origins or {})
        self.id = next(_PARTITION_IDS)
        self.offloaded: list[OffloadedLayer] = []
        self._declined = {}          # compute call -> DeclinedLayer (the last decision wins)
        self.executor = None
        self.keep_inputs = False     # keep each layer's last input (per-layer checks)
        self.layer_seconds = 0.0
        self.last_error: BaseException | None = None

    def origin_of(self, compute):
        return self.origins.get(compute) if compute is not None else None

    @property
    def members(self):
        """The accelerators whose patterns this session uses, first claimer first (one, or an --accel list)."""
        return list(getattr(self.accelerator, "members", [self.accelerator]))

    def member(self, name):
        return next((a for a in self.members if a.name == name), None)

    @property
    def declined(self):
        offloaded = {entry.origin for entry in self.offloaded if entry.origin is not None}
        return [d for d in self._declined.values() if d.origin is None or d.origin not in offloaded]

    @property
    def symbols(self):
        return [entry.symbol for entry in self.offloaded]

    def by_origin(self):
        return {entry.origin: entry for entry in self.offloaded if entry.origin is not None}

    # -- run time

    def bind(self, executor):
        """Serve every offloaded symbol through ``executor`` (registers one global function per symbol).

        ``executor`` is a ``sw.execution.executors`` executor (or an accelerator list's), or a bare
        device, which is then driven by this partition's accelerator. Each layer runs the plan of the
        accelerator whose pattern took it.
        """
        if isinstance(executor, Device):
            from ...execution.executors import DeviceExecutor
            executor = DeviceExecutor(self.accelerator, executor)
        self.executor = executor
        for entry in self.offloaded:
            tvm_ffi.register_global_func(entry.symbol, self._kernel(entry), override=True)
            _BOUND[entry.symbol] = self
        return self

    def unbind(self):
        for entry in self.offloaded:
            if _BOUND.get(entry.symbol) is self:
                del _BOUND[entry.symbol]
                tvm_ffi.registry.remove_global_func(entry.symbol)
        self.executor = None

    def _kernel(self, entry):
        def kernel(x, out):
            # Called by the Relax VM (destination-passing style): x and out are CPU tensors.
            try:
                started = time.perf_counter()
                data = np.from_dlpack(x)
                if self.keep_inputs:
                    entry.last_input = data.copy()     # the VM reuses its buffers
                result, stats = self.executor.run(entry.plan, data)
                np.from_dlpack(out)[...] = result.reshape(tuple(out.shape))
                entry.stats, entry.last_output = stats, result
                entry.calls += 1
                self.layer_seconds += time.perf_counter() - started
            except BaseException as error:
                # TVM re-raises it as a RuntimeError carrying only the text; keep the original.
                self.last_error = error
                raise
        return kernel

    def take_error(self):
        error, self.last_error = self.last_error, None
        return error

    # -- recording, called from the pattern check and the codegen hook

    def _decline(self, compute, op, reason, origin, input_shape, accelerator_name=None):
        accelerator_name = accelerator_name or self.accelerator.name
        earlier = self._declined.get(compute)
        if len(self.members) > 1:
            reason = f"{accelerator_name}: {reason}"
            if earlier is not None and not earlier.reason.startswith(f"{accelerator_name}:") \
                    and f"; {accelerator_name}:" not in earlier.reason:
                reason = f"{earlier.reason}; {reason}"
        self._declined[compute] = DeclinedLayer(op, _pattern_name(accelerator_name, op), reason,
                                                None if origin is None else origin.index, input_shape)

    def _accept(self, compute):
        self._declined.pop(compute, None)


def _default_accelerator(name, cache={}):   # noqa: B006  (one default instance per name)
    if name not in cache:
        cache[name] = get_accelerator(name)
    return cache[name]


def _restore_activation(layer, origin):
    """Give a layer the fused activation of its TFLite operator when the importer dropped it.

    TVM 0.27's importer ignores TRANSPOSE_CONV's fused activation (no clip is written),
    so TVM's own CPU code would not clamp; the offloaded layer follows TFLite and does.
    It also ignores TRANSPOSE_CONV's output_shape input and computes (H - 1) * stride + kernel
    for VALID, which is not TFLite's output when the kernel is smaller than the stride:
    such a layer is declined rather than run with another shape than the model's.
    """
    if origin is not None and origin.output_shape is not None and hasattr(layer, "output_shape") \
            and tuple(layer.output_shape) != tuple(origin.output_shape):
        raise UnsupportedLayer(f"TVM's importer gives this {origin.op} the output {list(layer.output_shape)}, "
                               f"but the model's is {list(origin.output_shape)}")
    if origin is not None and origin.activation is not None and layer.activation == "NONE":
        if origin.activation not in ACTIVATIONS:
            raise UnsupportedLayer(f"fused activation {origin.activation} is not supported")
        layer.activation = origin.activation


def _decide(accelerator_name, op, matched, leak=None):
    """The check function of every accelkit pattern: build the layer, ask the accelerator."""
    session = _SESSION.get()
    if session is not None and session.member(accelerator_name) is not None:
        accelerator = session.member(accelerator_name)
    else:
        session = None     # a registered pattern used outside partition_for_accelkit: default design
        accelerator = _default_accelerator(accelerator_name)
    compute = matched.get("compute")
    origin = session.origin_of(compute) if session else None
    input_shape = None
    try:
        if leak:
            raise UnsupportedLayer(leak)
        if origin is not None and origin.op not in get_kind(op).tflite_ops:
            # e.g. a DEPTHWISE_CONV_2D with one input channel, which the importer writes as a
            # plain conv2d: the LiteRT delegate does not offload it, neither do we.
            raise UnsupportedLayer(f"{origin.op} is not offloaded to {accelerator.name}")
        x = matched.get("x")
        input_shape = _static_shape(x, "input") if x is not None and not isinstance(x, Constant) else None
        layer, input_shape, _ = layer_from_match(op, matched)
        _restore_activation(layer, origin)
        accelerator.plan(layer, input_shape)
    except (UnsupportedLayer, ParameterError) as error:
        if session is not None:
            session._decline(compute, op, str(error), origin, input_shape, accelerator.name)
        return False
    if session is not None:
        session._accept(compute)
    return True


def _composite(function):
    """The inner composite function of an ``annotate_codegen`` wrapper."""
    bindings = function.body.blocks[0].bindings
    callee = bindings[-1].value.op
    if isinstance(callee, relax.Var):
        callee = relax.analysis.get_var2val(function)[callee]
    return callee


@tvm_ffi.register_global_func(f"relax.ext.{CODEGEN}", override=True)
def _codegen(functions, options, constant_names):
    """RunCodegen's hook: record each composite function's layer; produce no runtime module."""
    session = _SESSION.get()
    if session is None:
        raise AccelkitError("accelkit composite functions must be partitioned and compiled through "
                            "accelkit.sw.frontends.tvm.partition.partition_for_accelkit, which serves their symbols")
    for function in functions:
        symbol = str(function.attrs["global_symbol"])
        composite = _composite(function)
        name = str(composite.attrs["Composite"])
        op = name.rsplit(".", 1)[-1]
        root, parts = _chain(op)
        found = root.extract_matched_expr(composite.body.body, relax.analysis.get_var2val(composite))
        if found is None:
            raise AccelkitError(f"composite function {symbol} ({name}) no longer matches its pattern")
        matched = {key: found[pattern] for key, pattern in parts.items() if pattern in found}
        try:
            layer, input_shape, output_shape = layer_from_match(op, matched)
        except UnsupportedLayer as error:   # the check accepted it, so this is a bug of ours
            raise AccelkitError(f"composite function {symbol} ({name}): {error}") from None
        origin = composite.attrs.get(ORIGIN_ATTR) if composite.attrs is not None else None
        if origin is not None:
            _restore_activation(layer, next((o for o in session.origins.values() if o.index == int(origin)), None))
        member = session.member(name.split(".")[1]) or _default_accelerator(name.split(".")[1])
        session.offloaded.append(OffloadedLayer(symbol, op, name, layer, input_shape, output_shape,
                                                member.plan(layer, input_shape),
                                                None if origin is None else int(origin), composite=composite))
    return []


def _unique_symbols(mod, session):
    """Rename the codegen functions' global symbols so that partitions never share a symbol.

    The symbols become process-wide global functions; two models (or one model
    partitioned for two designs) would otherwise serve each other's layers.
    """
    counter = itertools.count()
    for gvar, function in list(mod.functions_items()):
        attrs = function.attrs
        if attrs is None or attrs.get("Codegen") != CODEGEN:
            continue
        op = str(_composite(function).attrs["Composite"]).rsplit(".", 1)[-1]
        member = str(_composite(function).attrs["Composite"]).split(".")[1]
        symbol = f"{CODEGEN}_p{session.id}_{member}_{op}_{next(counter)}"
        mod[gvar] = function.with_attr("global_symbol", symbol)
    return mod


def partition_for_accelkit(mod, accel="gemm", params=None, *, origins=None):
    """Offload the int8 CONV_2D / FULLY_CONNECTED chains of ``mod`` that ``accel`` accepts.

    ``accel`` is a registered accelerator name (``params`` its parameters, e.g.
    ``{"rows": 8, "cols": 8}``) or a configured :class:`Accelerator` instance.
    ``origins`` optionally maps each Relax compute call (conv2d / matmul) of
    ``mod["main"]`` to the :class:`Origin` TFLite operator it came from (see
    ``runner.import_tflite``); declined layers and offloaded ones then carry it.

    Returns ``(mod, info)``: ``mod`` has every accepted layer replaced by an
    ``R.call_dps_packed`` of an external symbol, and ``info`` (a
    :class:`PartitionInfo`) lists the offloaded and declined layers; call
    ``info.bind(executor)`` (``sw.execution.executors.open_executor``) before creating the VM.
    """
    if isinstance(accel, Accelerator) or hasattr(accel, "members"):
        if params:
            raise ParameterError("pass either a configured accelerator or a name with params, not both")
        accelerator = accel
    else:
        accelerator = get_accelerator(accel, params)
    session = PartitionInfo(accelerator, origins)
    token = _SESSION.set(session)
    try:
        # an --accel list: every member's patterns, first claimer first
        patterns = [pattern for member in session.members for pattern in accelkit_patterns(member)]
        mod = relax.transform.FuseOpsByPattern(patterns, bind_constants=True,
                                               annotate_codegen=True)(mod)
        mod = _unique_symbols(mod, session)
        mod = relax.transform.RunCodegen()(mod)
    finally:
        _SESSION.reset(token)
    return mod, session


@atexit.register
def _unregister_kernels():
    # Python callables left in TVM's global registry would be released after the
    # interpreter is gone (the same hazard pattern_registry guards against).
    for session in {id(s): s for s in _BOUND.values()}.values():
        session.unbind()


_register_builtin_patterns()
