"""Running a .tflite model through TVM (Relax): import, partition for an accelerator, compile, run on the VM."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import require_tvm

require_tvm()

import tvm  # noqa: E402
from tvm import relax  # noqa: E402

from ....errors import ModelError, ParameterError, UnsupportedLayer  # noqa: E402
from ....driver.kinds import tflite_kinds  # noqa: E402
from ..tflite.model import op_macs, read_model  # noqa: E402
from ..tflite.runner import LayerRecord  # noqa: E402
from ....driver.device import Device  # noqa: E402
from .partition import Origin, partition_for_accelkit  # noqa: E402

__all__ = ["TvmModel", "import_tflite", "relax_ops"]

# TFLite operators whose Relax form has a conv2d / matmul at its heart (the
# candidates a compute call is attributed to).
#: TFLite operators whose Relax compute call is traced back to them (every kind's, and a few more)
_COMPUTE_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}
_COMPUTE_CALLS = {"relax.nn.conv2d", "relax.matmul", "relax.nn.conv2d_transpose"}


def _compute_call(expr, var2val, depth=8):
    """The conv2d / matmul an operator's output expression is computed from.

    Walks back through the operator's own chain (clip <- quantize <- add <- conv2d)
    and stops at dequantize, where the previous operator's int8 output comes in.
    """
    frontier = [expr]
    for _ in range(depth):
        following = []
        for node in frontier:
            if isinstance(node, relax.Var):
                node = var2val.get(node)
            if not isinstance(node, relax.Call):
                continue
            name = getattr(node.op, "name", "")
            if name in _COMPUTE_CALLS:
                return node
            if name != "relax.dequantize":
                following.extend(node.args)
        frontier = following
    return None


def _import_error(path, model, error):
    text = " ".join(str(error).split())
    quoted = [op for op in model.ops if f"'{op.op}'" in text]
    if isinstance(error, tvm.error.OpNotImplemented) and quoted and "quantized" in text.lower():
        names = sorted({op.op for op in quoted})
        where = ", ".join(f"{op.op} #{op.index}" for op in quoted)
        return ModelError(
            f"TVM {tvm.__version__}'s Relax TFLite importer cannot import {path.name}: it has no int8 "
            f"lowering for quantized {' / '.join(names)} ({where}). Relax has no QNN operators; the importer "
            f"rewrites only the quantized operators it knows into dequantize -> float op -> quantize, and "
            f"refuses the others. Run this model on the LiteRT delegate (accelkit run) instead.")
    return ModelError(f"TVM {tvm.__version__}'s Relax TFLite importer cannot import {path.name}: "
                      f"{type(error).__name__}: {text}")


def import_tflite(path, model=None, capture=False):
    """``(IRModule, origins, TfliteModel)`` for a .tflite file (and, with ``capture``, the captured tensors).

    ``origins`` maps each conv2d / matmul call of ``main`` to the TFLite
    operator (:class:`~.partition.Origin`) it was imported from, so that the
    per-layer report can use TFLite's operator indices as the LiteRT path does.
    Anything the importer refuses becomes :class:`ModelError`.

    With ``capture``, ``main`` returns ``(outputs, (t_0, t_1, ...))``: the values of every TFLite
    operator's output tensor the importer's expression table names, and a fourth value lists
    those tensor indices in that order (operators whose tensor it does not name are missing).
    """
    import tflite
    from tvm.relax.frontend.tflite import from_tflite, tflite_frontend

    path = Path(path)
    model = model or read_model(path)          # malformed files fail here, with ModelError
    converters = []

    class RecordingConverter(tflite_frontend.OperatorConverter):
        # The importer keeps its converter (and the tensor -> expression table) to
        # itself; this subclass only keeps a reference to read that table afterwards.
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            converters.append(self)

    try:
        mod = from_tflite(tflite.Model.GetRootAsModel(path.read_bytes(), 0), op_converter=RecordingConverter)
    except Exception as error:   # the importer signals refusals with many types (asserts included)
        raise _import_error(path, model, error) from None

    converter = converters[0]
    var2val = relax.analysis.get_var2val(mod["main"])
    origins = {}
    for op in model.ops:
        if (op.op not in _COMPUTE_OPS and op.op not in tflite_kinds()) or len(op.outputs) != 1:
            continue
        name = tflite_frontend.get_tensor_name(converter.subgraph, op.outputs[0])
        if not converter.exp_tab.has_expr(name):
            continue
        call = _compute_call(converter.exp_tab.get_expr(name), var2val)
        if call is not None and call not in origins:
            if op.op == "TRANSPOSE_CONV":     # what the importer drops or recomputes (see partition.py)
                origins[call] = Origin(op.index, op.op, str(op.options.get("activation", "NONE")),
                                       tuple(model.tensors[op.outputs[0]].shape))
            else:
                origins[call] = Origin(op.index, op.op)
    if not capture:
        return mod, origins, model
    calls = {}
    for op in model.ops:
        for tensor in op.outputs:
            name = tflite_frontend.get_tensor_name(converter.subgraph, tensor)
            if converter.exp_tab.has_expr(name):
                calls[tensor] = converter.exp_tab.get_expr(name)
    mod, origins, captured = _capture(mod, origins, calls)
    return mod, origins, model, captured


def _bindings(function):
    return [binding for block in function.body.blocks for binding in block.bindings]


def _capture(mod, origins, calls):
    """``main`` rewritten to also return the values bound to ``calls`` (tensor index -> importer expression).

    Dataflow variables are invisible outside their block, so the function goes through
    ToNonDataflow, gains the extra results, and back through ConvertToDataflow. Both passes
    keep the bindings in order, so the origins (keyed by compute call) follow by position.
    """
    function = mod["main"]
    before = _bindings(function)
    position = {}
    for tensor, call in calls.items():
        found = next((i for i, b in enumerate(before) if b.value.same_as(call)), None)
        if found is not None:
            position[tensor] = found
    flat = relax.transform.ToNonDataflow()(mod)["main"]
    bound = _bindings(flat)
    captured = sorted(position)
    values = [bound[position[tensor]].var for tensor in captured]
    result = relax.Tuple([flat.body.body, relax.Tuple(values)])
    ret_ty = relax.TupleType([flat.body.body.ty, relax.TupleType([v.ty for v in values])])
    rewritten = relax.Function(flat.params, relax.SeqExpr(flat.body.blocks, result), ret_ty, attrs=flat.attrs)
    out = relax.transform.ConvertToDataflow()(tvm.IRModule({"main": rewritten}))
    after = _bindings(out["main"])
    if len(after) != len(before):
        raise ModelError(f"capturing the layer outputs changed the number of bindings ({len(before)} -> {len(after)})")
    rekeyed = {}
    for call, origin in origins.items():
        found = next((i for i, b in enumerate(before) if b.value.same_as(call)), None)
        if found is not None:
            rekeyed[after[found].value] = origin
    return out, rekeyed, captured


def relax_ops(mod):
    """Operator names of ``main``'s bindings in order (call_dps_packed shows its symbol)."""
    names = []
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call):
                name = getattr(value.op, "name", str(value.op))
                if name == "relax.call_dps_packed":
                    name = f"call_dps_packed:{value.args[0].global_symbol}"
                names.append(name)
    return names


class TvmModel:
    """A .tflite model compiled by TVM (Relax, LLVM), its accepted layers run through ``executor``.

    ``executor`` comes from ``sw.execution.executors.open_executor`` (a simulator, a board
    or the ``model`` backend); ``TvmModel(path, accelerator, device)`` wraps a
    device the same way. With no executor nothing is offloaded: the same
    import compiled for the CPU alone, for comparison. Mirrors ``sw.tflite.runner.DelegatedModel``:
    :meth:`invoke` returns the outputs, :attr:`records` holds one
    ``LayerRecord`` per TFLite operator (same indices as the LiteRT path),
    :attr:`outputs_by_node` the last int8 output of each offloaded layer.
    ``keep_inputs`` keeps each offloaded layer's last input for :meth:`layer_reference`.
    Timings: ``import_seconds`` (Relax importer), ``compile_seconds``
    (partitioning + ``tvm.compile``), ``load_seconds`` (creating the Relax VM,
    which initialises every kernel and constant), ``layer_seconds`` (time inside
    offloaded layers, simulation included).
    """

    def __init__(self, path, executor=None, device=None, target="llvm", keep_inputs=False, capture=False):
        if device is not None:
            from ...execution.executors import DeviceExecutor
            executor = DeviceExecutor(executor, device)
        elif isinstance(executor, Device):
            raise ParameterError("offloading needs an executor (accelkit.sw.execution.executors.open_executor), "
                                 "or an accelerator and a device")
        self.path = Path(path)
        self.executor = executor
        self.accelerator = accelerator = executor.accelerator if executor is not None else None
        self.info = None
        self.outputs_by_node = {}
        started = time.perf_counter()
        imported = import_tflite(self.path, capture=capture)
        self.mod, self.origins, self.model = imported[:3]
        #: with ``capture``: the TFLite tensor indices whose values :attr:`captured` holds after each invoke
        self.captured_tensors = imported[3] if capture else []
        self.captured = {}
        self.import_seconds = time.perf_counter() - started
        tensors = self.model.tensors
        self.records = [LayerRecord(op.index, op.op, [list(tensors[i].shape) for i in op.inputs if i >= 0],
                                    [list(tensors[i].shape) for i in op.outputs], op_macs(op, tensors), "cpu")
                        for op in self.model.ops]
        started = time.perf_counter()
        mod = self.mod
        if accelerator is not None:
            mod, self.info = partition_for_accelkit(self.mod, accelerator, origins=self.origins)
            self.info.keep_inputs = keep_inputs
        self.partitioned = mod
        self._explain()
        try:
            self.executable = tvm.compile(mod, target=target)
        except Exception as error:    # e.g. an imported op TVM cannot build for this target
            hint = ""
            if "conv2d_transpose" in str(error):
                declined = [f"#{d.origin}: {d.reason}" for d in (self.info.declined if self.info else ())
                            if d.op == "tconv"]
                hint = (" (TVM has no CPU lowering of conv2d_transpose: " +
                        (f"{accelerator.name} declined TRANSPOSE_CONV {'; '.join(declined)}" if declined else
                         "offload the TRANSPOSE_CONV layers with --accel mm2im") + ")")
            raise ModelError(f"TVM cannot compile {self.path.name} for {target}{hint}: {type(error).__name__}: "
                             f"{' '.join(str(error).split())[:2000]}") from None
        self.compile_seconds = time.perf_counter() - started
        if self.info is not None:
            self.info.bind(executor)   # the VM looks every external symbol up when it starts
        started = time.perf_counter()
        self.vm = relax.VirtualMachine(self.executable, tvm.cpu())
        self.load_seconds = time.perf_counter() - started
        params = self.mod["main"].params
        self.input_details = [{"name": p.name, "index": i, "shape": np.array(self._shape(p)),
                               "dtype": np.dtype(str(p.ty.dtype)).type} for i, p in enumerate(params)]
        self.input_detail = self.input_details[0]
        self.output_details = [{"index": i, "shape": np.array(tensors[t].shape), "dtype": tensors[t].dtype}
                               for i, t in enumerate(self.model.outputs)]

    @staticmethod
    def _shape(var):
        return tuple(int(d) for d in var.ty.shape.values)

    def _explain(self):
        """Fill ``where``/``reason`` of every record from the partitioning decisions."""
        if self.info is None:
            for record in self.records:
                record.reason = "TVM CPU build (no offload)"
            return
        name = self.accelerator.name
        declined = {d.origin: d.reason for d in self.info.declined if d.origin is not None}
        offloaded = self.info.by_origin()
        by_op = tflite_kinds()
        tensors = self.model.tensors
        for record, op in zip(self.records, self.model.ops):
            if op.index in offloaded:
                record.where, record.reason = "accelerator", ""
            elif op.index in declined:
                record.reason = declined[op.index]
            elif op.op in by_op and by_op[op.op].name not in self.accelerator.kinds:
                record.reason = f"{op.op} is not offloaded to {name}"
            elif op.op in by_op:
                # Not matched at all: the TFLite front end usually knows why (a float
                # layer, asymmetric weights); otherwise the importer's form was unexpected.
                try:
                    by_op[op.op].from_tflite(op, tensors)
                    record.reason = f"the importer's Relax form does not match accelkit.{name}.{by_op[op.op].name}"
                except UnsupportedLayer as error:
                    record.reason = str(error)
            else:
                record.reason = f"{op.op} is not offloaded to {name}"
        for entry in self.info.offloaded:
            if entry.origin is None:       # not attributed to a TFLite operator: report it on its own
                self.records.append(LayerRecord(len(self.records), entry.op, [list(entry.input_shape)],
                                                [list(entry.output_shape)], entry.macs, "accelerator"))
                entry.origin = self.records[-1].index

    @property
    def offloaded(self):
        return [r for r in self.records if r.where == "accelerator"]

    @property
    def layer_seconds(self):
        return self.info.layer_seconds if self.info is not None else 0.0

    def invoke(self, sample, *more):
        """Run one sample per model input (its exact shape and dtype); returns the list of outputs."""
        samples = (sample, *more)
        if len(samples) != len(self.input_details):
            raise ModelError(f"{self.path.name} takes {len(self.input_details)} input(s), got {len(samples)}")
        arguments = []
        for x, detail in zip(samples, self.input_details):
            x = np.asarray(x)
            if x.dtype != detail["dtype"] or tuple(x.shape) != tuple(detail["shape"]):
                raise ModelError(f"input {detail['name']} must be {np.dtype(detail['dtype'])} "
                                 f"{detail['shape'].tolist()}, not {x.dtype} {list(x.shape)}")
            arguments.append(tvm.runtime.tensor(np.ascontiguousarray(x)))
        try:
            result = self.vm["main"](*arguments)
        except Exception:
            error = self.info.take_error() if self.info is not None else None
            if error is not None:
                raise error from None     # the offloaded layer's own exception (e.g. SimulationTimeout)
            raise
        if self.captured_tensors:
            result, values = result
            self.captured = {tensor: value.numpy() for tensor, value in zip(self.captured_tensors, values)}
        outputs = [result] if isinstance(result, tvm.runtime.Tensor) else list(result)
        self._collect()
        return [o.numpy() for o in outputs]

    def _collect(self):
        if self.info is None:
            return
        tensors = self.model.tensors
        for entry in self.info.offloaded:
            if entry.stats is None:
                continue
            record, stats = self.records[entry.origin], entry.stats
            record.cycles, record.utilization = stats.cycles, stats.utilization
            record.bytes_in, record.bytes_out, record.jobs = stats.bytes_in, stats.bytes_out, stats.jobs
            record.stall_cycles = stats.in_stall_cycles + stats.out_stall_cycles
            if entry.origin < len(self.model.ops):
                shape = tensors[self.model.ops[entry.origin].outputs[0]].shape
                self.outputs_by_node[entry.origin] = entry.last_output.reshape(shape)
            else:
                self.outputs_by_node[entry.origin] = entry.last_output

    def layer_reference(self, node):
        """TFLite's integer result for offloaded layer ``node`` on the input it was last given.

        Needs ``keep_inputs=True``. With TVM, an offloaded layer's input comes from
        TVM's float CPU lowering of the layers before it, so comparing it with
        LiteRT's tensor of the same index mixes both paths' CPU differences in;
        this is the per-layer check that isolates the offloaded layer.
        """
        entry = self.info.by_origin()[node] if self.info is not None else None
        if entry is None or entry.last_input is None:
            raise ModelError(f"no recorded input for layer {node}: build the TvmModel with keep_inputs=True, "
                             "offload that layer and invoke the model first")
        return entry.layer.reference(entry.last_input).reshape(self.outputs_by_node[node].shape)

    def close(self):
        """Unregister the offloaded layers' symbols (the VM cannot run afterwards)."""
        if self.info is not None:
            self.info.unbind()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        where = f"{len(self.offloaded)} layer(s) on {self.accelerator!r}" if self.info else "CPU only"
        return f"TvmModel({self.path.name}, {where})"
