"""Differential testing: one model on several paths, every layer's output compared, divergence localized.

Paths:

* ``tflite-ref`` / ``tflite-opt``: LiteRT on its reference (BUILTIN_REF) or optimized kernels, every
  intermediate tensor kept (``experimental_preserve_all_tensors``);
* ``model`` / ``verilator`` / ``amaranth`` / ``cocotb``: the LiteRT delegate with the accelerator's
  layers on that backend (the CPU part on the reference kernels);
* ``tvm-cpu`` / ``tvm``: TVM's Relax import compiled for the CPU, without and with offload; the
  values of the TFLite tensors are taken from the Relax bindings the importer's expression table names
  (``main`` is rewritten to return them too), and layers whose tensor it does not name are reported as
  unmapped.

Every layer's output is compared with the first path's: the largest and mean difference in LSB (in the
tensor's own units for float tensors) and the share of elements that differ. A path that cannot run a
model (TVM cannot build TRANSPOSE_CONV for the CPU, nor import quantized BATCH_MATMUL) is reported with
the reason instead of dropping the model.

Localization: for each path's divergent layers, the layer's inputs on that path are compared with the
first path's. Equal inputs and different outputs: the difference arises there. Different inputs: the
layer is re-run alone from the first path's inputs where the path can run it alone (an offloaded layer,
on the same accelerator and backend; a layer of a known kind, on ``tflite-ref``'s semantics); if that
output equals the first path's, the difference was propagated from earlier layers, otherwise it also
arises there.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from ...driver.kinds import tflite_kinds
from ...errors import AccelkitError, UnsupportedLayer

__all__ = ["PATHS", "ACCELERATOR_PATHS", "PathRun", "LayerDiff", "DiffReport", "differential"]

ACCELERATOR_PATHS = ("model", "verilator", "amaranth", "cocotb")
PATHS = ("tflite-ref", "tflite-opt", "tvm-cpu", "tvm") + ACCELERATOR_PATHS


@dataclass
class PathRun:
    """One path, opened: ``invoke(sample)`` returns (outputs, {tensor index: value})."""

    name: str
    invoke: object = None
    error: str = ""
    offloaded: dict = field(default_factory=dict)      # op index -> (accelerator name, plan)
    executor: object = None
    seconds: float = 0.0
    closers: list = field(default_factory=list)

    def close(self):
        for close in reversed(self.closers):
            close()


@dataclass
class LayerDiff:
    """A layer's output on one path against the first path's, over every sample."""

    max_lsb: float = 0.0
    sum_abs: float = 0.0
    differing: int = 0
    elements: int = 0
    mapped: bool = True
    shape_mismatch: str = ""
    first_sample: int | None = None        # first sample where it differs
    arises: int = 0                        # samples where its inputs equal the first path's but its output does not

    @property
    def mean_lsb(self):
        return self.sum_abs / self.elements if self.elements else 0.0

    @property
    def share(self):
        return self.differing / self.elements if self.elements else 0.0

    @property
    def diverges(self):
        return bool(self.shape_mismatch) or self.differing > 0

    def add(self, a, b, sample):
        if a.shape != b.shape:
            if a.size != b.size:
                self.shape_mismatch = f"{list(a.shape)} vs {list(b.shape)}"
                self.first_sample = sample if self.first_sample is None else self.first_sample
                return
            a = a.reshape(b.shape)
        difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
        count = int(np.count_nonzero(difference))
        self.max_lsb = max(self.max_lsb, float(difference.max()) if difference.size else 0.0)
        self.sum_abs += float(difference.sum())
        self.differing += count
        self.elements += difference.size
        if count and self.first_sample is None:
            self.first_sample = sample

    def as_dict(self):
        return {"mapped": self.mapped, "max_lsb": self.max_lsb, "mean_lsb": self.mean_lsb, "share": self.share,
                "differing": self.differing, "elements": self.elements, "shape_mismatch": self.shape_mismatch,
                "first_sample": self.first_sample, "arises_on_samples": self.arises}


@dataclass
class DiffReport:
    model: str
    paths: list
    layers: list                          # [(op index, op name, output tensor index)]
    diffs: dict                           # path -> {op index: LayerDiff}
    errors: dict                          # path -> reason it could not run
    seconds: dict                         # path -> seconds of inference
    samples: int
    labels: dict = field(default_factory=dict)        # path -> {"accuracy", "changed"}
    localization: dict = field(default_factory=dict)  # path -> {op index: verdict}
    details: dict = field(default_factory=dict)       # op index -> options/parameters

    def first_divergent(self, path):
        for index, _, _ in self.layers:
            diff = self.diffs.get(path, {}).get(index)
            if diff is not None and diff.mapped and diff.diverges:
                return index
        return None

    def as_dict(self):
        return {"model": self.model, "paths": self.paths, "samples": self.samples, "errors": self.errors,
                "seconds": self.seconds, "labels": self.labels,
                "layers": [{"index": index, "op": op, "tensor": tensor, "details": self.details.get(index, {}),
                            "paths": {p: self.diffs[p][index].as_dict() for p in self.diffs if index in self.diffs[p]},
                            "localization": {p: self.localization[p][index] for p in self.localization
                                             if index in self.localization[p]}}
                           for index, op, tensor in self.layers],
                "first_divergent": {p: self.first_divergent(p) for p in self.diffs}}


def _open_litert(name, path):
    from ..frontends.tflite.runner import make_interpreter
    interpreter = make_interpreter(path, "ref" if name == "tflite-ref" else "optimized", preserve_all_tensors=True)
    from ..frontends.tflite.model import read_model
    model = read_model(path)
    detail = interpreter.get_input_details()[0]

    def invoke(sample):
        interpreter.set_tensor(detail["index"], sample)
        interpreter.invoke()
        values = {}
        for op in model.ops:
            for tensor in op.outputs:
                values[tensor] = interpreter.get_tensor(tensor)
        return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()], values
    return PathRun(name, invoke)


def _open_delegated(name, path, accelerators, dma, progress):
    from ..execution.accelerator_lists import open_claiming_executor
    from ..frontends.tflite.runner import DelegatedModel
    executor = open_claiming_executor(accelerators, name, dma, progress=progress)
    model = DelegatedModel(path, executor, "ref", preserve_all_tensors=True)

    def invoke(sample):
        outputs = model.invoke(sample)
        return outputs, model.layer_outputs()
    run = PathRun(name, invoke, executor=executor, closers=[executor.close])
    run.offloaded = {index: (plan.accelerator, plan) for index, plan in model.plans.items()}
    return run


def _open_tvm(name, path, accelerators, dma, progress):
    from ..execution.accelerator_lists import open_claiming_executor
    from ..frontends.tvm.runner import TvmModel
    executor = open_claiming_executor(accelerators, "model", dma, progress=progress) if name == "tvm" else None
    try:
        model = TvmModel(path, executor, capture=True)
    except BaseException:
        if executor is not None:
            executor.close()
        raise

    def invoke(sample):
        outputs = model.invoke(sample)
        values = dict(model.captured)
        values.update({model.model.ops[i].outputs[0]: v for i, v in model.outputs_by_node.items()
                       if i < len(model.model.ops)})
        return outputs, values
    run = PathRun(name, invoke, executor=executor, closers=[model.close] + ([executor.close] if executor else []))
    if model.info is not None:
        run.offloaded = {entry.origin: (entry.accelerator, entry.plan) for entry in model.info.offloaded
                         if entry.origin is not None}
    return run


def open_path(name, path, accelerators, dma, progress=None):
    """A :class:`PathRun` for ``name``, or one whose ``error`` says why the path cannot run this model."""
    try:
        if name in ("tflite-ref", "tflite-opt"):
            return _open_litert(name, path)
        if name in ACCELERATOR_PATHS:
            return _open_delegated(name, path, accelerators, dma, progress)
        if name in ("tvm", "tvm-cpu"):
            return _open_tvm(name, path, accelerators, dma, progress)
    except AccelkitError as error:
        return PathRun(name, error=str(error))
    raise UnsupportedLayer(f"unknown path {name!r}; known: {', '.join(PATHS)}")


def _same_inputs(model, index, values, first, sample):
    """Do the layer's activation inputs on this path equal the first path's (model inputs count as equal)?"""
    for tensor in model.ops[index].inputs:
        if tensor < 0 or model.tensors[tensor].data is not None or tensor in model.inputs:
            continue
        a, b = values.get(tensor), first.get(tensor)
        if a is None or b is None or a.size != b.size or not np.array_equal(a.reshape(b.shape), b):
            return False
    return True


def _details(op):
    keep = {k: v for k, v in op.options.items() if isinstance(v, (int, float, str, tuple, list))}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in keep.items()}


def _localize(report, runs, model, samples, first_values):
    """For each path's divergent layers: does the difference arise there, or come from earlier layers?"""
    kinds = tflite_kinds()
    tensors = model.tensors
    for run in runs[1:]:
        verdicts = {}
        for index, op_name, tensor in report.layers:
            diff = report.diffs[run.name].get(index)
            if diff is None or not diff.mapped or not diff.diverges:
                continue
            op = model.ops[index]
            sample = diff.first_sample or 0
            reference_values, path_values = first_values[0][sample], first_values[1][run.name][sample]
            inputs = [i for i in op.inputs if i >= 0 and tensors[i].data is None]
            missing = [i for i in inputs if i not in reference_values and i not in model.inputs]
            if missing:
                verdicts[index] = "inputs not captured: cannot localize"
                continue
            ref_in = [reference_values.get(i, samples[sample] if i in model.inputs else None) for i in inputs]
            path_in = [path_values.get(i, samples[sample] if i in model.inputs else None) for i in inputs]
            same_inputs = all(a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b)
                              for a, b in zip(ref_in, path_in))
            if same_inputs or diff.arises:
                verdicts[index] = f"arises here (same inputs, different output on {max(diff.arises, 1)} sample(s))"
                continue
            alone = _rerun_alone(run, index, op, kinds, tensors, reference_values, samples[sample], model)
            if alone is None:
                verdicts[index] = "inputs already differ (propagated at least in part); the path cannot run it alone"
            elif np.array_equal(alone.reshape(reference_values[tensor].shape), reference_values[tensor]):
                verdicts[index] = "propagated (alone on the first path's inputs it is exact)"
            else:
                verdicts[index] = "arises here and is propagated (differs even alone on the first path's inputs)"
        report.localization[run.name] = verdicts


def _rerun_alone(run, index, op, kinds, tensors, reference_values, sample, model):
    """The layer alone on ``run``'s implementation from the first path's inputs, or None when it cannot."""
    kind = kinds.get(op.op)
    if kind is None:
        return None
    positions = kind.tflite_inputs(op)
    inputs = [reference_values.get(op.inputs[p], sample if op.inputs[p] in model.inputs else None)
              for p in positions]
    if any(x is None for x in inputs):
        return None
    if index in run.offloaded and run.executor is not None:
        _, plan = run.offloaded[index]
        out, _ = run.executor.run(plan, *inputs)
        return out
    if run.name == "tflite-ref":
        try:
            return kind.from_tflite(op, tensors).reference(*inputs)
        except UnsupportedLayer:
            return None
    return None


def differential(path, paths, accelerators, dma, samples, labels=None, progress=None):
    """Run ``samples`` on every path and compare every layer with the first path; see the module docstring."""
    from ..frontends.tflite.model import read_model
    model = read_model(path)
    runs = []
    try:
        for name in paths:
            if progress:
                progress(f"opening {name}")
            runs.append(open_path(name, path, accelerators, dma, progress))
        errors = {run.name: run.error for run in runs if run.error}
        live = [run for run in runs if not run.error]
        if not live or live[0].name != paths[0]:
            raise UnsupportedLayer(f"the first path, {paths[0]}, cannot run {path.name}: "
                                   f"{errors.get(paths[0], 'unknown reason')}")
        layers = [(op.index, op.op, op.outputs[0]) for op in model.ops if op.outputs]
        diffs = {run.name: {index: LayerDiff() for index, _, _ in layers} for run in live[1:]}
        outputs = {run.name: [] for run in live}
        kept_first, kept_paths = {}, {run.name: {} for run in live[1:]}
        for s, sample in enumerate(samples):
            values = {}
            for run in live:
                started = time.perf_counter()
                out, values[run.name] = run.invoke(sample)
                run.seconds += time.perf_counter() - started
                outputs[run.name].append(out[0])
            first = values[live[0].name]
            for run in live[1:]:
                for index, _, tensor in layers:
                    diff = diffs[run.name][index]
                    if tensor not in values[run.name] or tensor not in first:
                        diff.mapped = False
                        continue
                    was, differing = diff.first_sample, diff.differing
                    diff.add(values[run.name][tensor], first[tensor], s)
                    if diff.differing > differing and _same_inputs(model, index, values[run.name], first, sample):
                        diff.arises += 1
                    if diff.first_sample is not None and was is None:
                        kept_paths[run.name][s] = values[run.name]
                        kept_first[s] = first
            if progress and (s + 1) % max(1, len(samples) // 10) == 0:
                progress(f"{s + 1} of {len(samples)} samples on {len(live)} paths")
        report = DiffReport(path.name, list(paths), layers, diffs, errors, {run.name: run.seconds for run in live},
                            len(samples), details={op.index: _details(op) for op in model.ops})
        if labels is not None:
            first_labels = np.array([np.argmax(o.reshape(-1)) for o in outputs[live[0].name]])
            for run in live:
                predicted = np.array([np.argmax(o.reshape(-1)) for o in outputs[run.name]])
                report.labels[run.name] = {"accuracy": float(np.mean(predicted == labels[:len(predicted)])),
                                           "changed": int(np.sum(predicted != first_labels))}
        _localize(report, live, model, samples, (kept_first, kept_paths))
        return report
    finally:
        for run in runs:
            run.close()
