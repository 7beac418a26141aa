"""Running a TFLite model on LiteRT with the accelerator's layers delegated to a device."""

import time
import warnings

from ....errors import ModelError, UnsupportedLayer
from ...reports.model_report import LayerRecord
from .delegate import PythonDelegate
from .frontend import activation_inputs, kind_for
from .model import op_macs, read_model

__all__ = ["LayerRecord", "DelegatedModel", "make_interpreter", "one_inference", "CPU_KERNELS"]

CPU_KERNELS = ("ref", "optimized")


def make_interpreter(path, cpu_kernels="ref", delegates=(), preserve_all_tensors=False):
    """A LiteRT interpreter; ``ref`` uses the reference kernels (bit-exact comparisons)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    if cpu_kernels not in CPU_KERNELS:
        raise ModelError(f"--cpu-kernels must be one of {', '.join(CPU_KERNELS)}, not {cpu_kernels!r}")
    resolver = OpResolverType.BUILTIN_REF if cpu_kernels == "ref" else OpResolverType.AUTO
    try:
        with warnings.catch_warnings():
            # keeping every tensor is asked for on purpose here (per-layer comparisons); LiteRT's
            # warning that it is "for debugging" would only confuse the report
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
            interpreter = Interpreter(model_path=str(path), experimental_delegates=list(delegates),
                                      experimental_op_resolver_type=resolver,
                                      experimental_preserve_all_tensors=preserve_all_tensors)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ModelError(f"LiteRT cannot load {path}: {error}") from None
    return interpreter


class DelegatedModel:
    """A .tflite model on LiteRT whose supported layers run through ``executor`` (see ``sw.execution.executors``).

    Which layers are offloaded is decided up front from the flatbuffer: the
    layer-kind registry turns each operator it recognises into a layer, then the
    accelerator plans it or declines it with a reason; every other op, and every
    declined one, runs on LiteRT's CPU kernels, and :attr:`records` says why.
    """

    def __init__(self, path, executor, cpu_kernels="ref", preserve_all_tensors=False):
        self.path = path
        self.model = read_model(path)
        self.executor = executor
        self.accelerator = accelerator = executor.accelerator
        self.layers = {}
        self.records = []
        self.outputs_by_node = {}
        self.layer_seconds = 0.0
        self.plans = {}
        tensors = self.model.tensors
        for op in self.model.ops:
            record = LayerRecord(op.index, op.op, [list(tensors[i].shape) for i in op.inputs if i >= 0],
                                 [list(tensors[i].shape) for i in op.outputs], op_macs(op, tensors), "cpu")
            try:
                layer = kind_for(op).from_tflite(op, tensors)
                plan = accelerator.plan(layer, *(tensors[i].shape for i in activation_inputs(op)))
                self.layers[op.index], self.plans[op.index] = layer, plan
                record.where = "accelerator"
                record.extra["accelerator"] = plan.accelerator
                record.extra["plan"] = plan.as_dict()
            except UnsupportedLayer as error:
                record.reason = str(error) if not str(error).endswith("has no accelkit layer kind") \
                    else f"{op.op} is not offloaded to {accelerator.name}"
            self.records.append(record)
        self.delegate = PythonDelegate(lambda index, code: index in self.layers, self._execute,
                                       model=self.model)
        self.interpreter = make_interpreter(path, cpu_kernels, [self.delegate], preserve_all_tensors)
        self.input_detail = self.interpreter.get_input_details()[0]
        self.output_details = self.interpreter.get_output_details()

    @property
    def offloaded(self):
        return [r for r in self.records if r.where == "accelerator"]

    def _execute(self, nodes, read_tensor, write_tensor):
        partition = next(p for p in self.delegate.partitions if p.nodes == list(nodes))
        values = {}
        tensors = self.model.tensors
        started = time.perf_counter()
        for node in nodes:
            op = self.model.ops[node]
            inputs = [values[i] if i in values else read_tensor(i) for i in activation_inputs(op)]
            out, stats = self.executor.run(self.plans[node], *inputs)
            out = out.reshape(tensors[op.outputs[0]].shape)
            values[op.outputs[0]] = out
            self.outputs_by_node[node] = out
            self.records[node].take_stats(stats)
        self.layer_seconds += time.perf_counter() - started
        for index in partition.outputs:
            write_tensor(index, values[index])

    def layer_outputs(self):
        """Every operator's output tensors after the last invoke: {tensor index: array}.

        Offloaded layers' outputs come from the accelerator (tensors inside a delegated
        partition are never allocated by LiteRT); the CPU ops' need ``preserve_all_tensors``.
        """
        values = {}
        for op in self.model.ops:
            if op.index in self.outputs_by_node:
                values[op.outputs[0]] = self.outputs_by_node[op.index]
                continue
            for tensor in op.outputs:
                try:
                    values[tensor] = self.interpreter.get_tensor(tensor)
                except ValueError:      # not preserved (intermediate of a partition, or not kept)
                    pass
        return values

    def invoke(self, sample):
        """Run one sample (the model's input shape); returns the list of output arrays."""
        self.interpreter.set_tensor(self.input_detail["index"], sample)
        try:
            self.interpreter.invoke()
        except RuntimeError as error:
            if self.delegate.last_error is not None:
                error, self.delegate.last_error = self.delegate.last_error, None
                raise error
            # not accelkit's delegate: one of LiteRT's own kernels refused the model
            raise ModelError(f"LiteRT could not run the model: {error}") from None
        return [self.interpreter.get_tensor(d["index"]) for d in self.output_details]


def one_inference(path, executor, seed):
    """One seeded inference of a zoo model: (DelegatedModel, wall seconds, outputs, BUILTIN_REF outputs)."""
    from ..inputs import load_inputs
    started = time.perf_counter()
    model = DelegatedModel(path, executor)
    x = load_inputs(None, model.input_detail, seed)
    outputs = model.invoke(x)
    wall = time.perf_counter() - started
    reference = make_interpreter(path, "ref")
    reference.set_tensor(reference.get_input_details()[0]["index"], x)
    reference.invoke()
    expected = [reference.get_tensor(d["index"]) for d in reference.get_output_details()]
    return model, wall, outputs, expected
