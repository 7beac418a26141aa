"""Several accelerators in one run (``--accel mm2im,gemm``): each layer goes to the first that can plan it."""

import time

from ...accelerators.base import registry
from ...errors import ParameterError, UnsupportedLayer
from .executors import open_executor

__all__ = ["resolve_accelerators", "ClaimingAccelerator", "ClaimingExecutor", "open_claiming_executor"]


def resolve_accelerators(names, params, model_path=None, progress=None):
    """Accelerators for a comma-separated ``--accel`` list.

    A plain ``--params`` name (``rows=4``) applies to every listed accelerator that
    declares it, ``NAME.param=value`` to that accelerator only; a name no listed
    accelerator declares is an error. With ``model_path``, each accelerator's
    ``model_params`` hook adds what the model asks of it (for every parameter the
    user did not set), and ``progress`` says so.
    """
    listed = [name.strip() for name in str(names).split(",") if name.strip()]
    if not listed:
        raise ParameterError("--accel names no accelerator")
    if len(set(listed)) != len(listed):
        raise ParameterError(f"--accel lists an accelerator twice: {names}")
    available = registry()
    classes = {}
    for name in listed:
        cls = available.get(name)
        if cls is None:
            raise ParameterError(f"no accelerator named {name!r}; registered: {', '.join(sorted(available)) or 'none'}")
        if isinstance(cls, str):
            raise ParameterError(f"accelerator {name!r} is {cls}")
        classes[name] = cls
    per = {name: {} for name in listed}
    for key, value in params.items():
        target, dot, param = key.partition(".")
        if dot:
            if target not in per:
                raise ParameterError(f"parameter {key} names {target!r}, which is not in --accel {names}")
            per[target][param] = value
            continue
        if len(listed) == 1:        # the accelerator's own space says what is unknown
            per[listed[0]][key] = value
            continue
        takers = [name for name in listed if any(p.name == key for p in classes[name].space.params)]
        if not takers:
            raise ParameterError(f"no accelerator in --accel {names} has a parameter {key!r}")
        for name in takers:
            per[name][key] = value
    if model_path is not None:
        for name in listed:
            asked, note = classes[name].model_params(model_path, per[name])
            added = {k: v for k, v in asked.items() if k not in per[name]}
            if added and progress is not None:
                progress(f"{note}: {name} with {', '.join(f'{k}={v}' for k, v in added.items())}")
            per[name].update(added)
    return [classes[name](**per[name]) for name in listed]


class ClaimingAccelerator:
    """Stands for a list of accelerators where front ends expect one: the first whose plan succeeds takes a layer."""

    def __init__(self, members):
        self.members = list(members)
        self.name = ",".join(a.name for a in self.members)
        self.params = {a.name: dict(a.params) for a in self.members}
        self.kinds = tuple(dict.fromkeys(kind for a in self.members for kind in a.kinds))

    def __repr__(self):
        return " + ".join(repr(a) for a in self.members)

    @property
    def pes(self):
        return max(a.pes for a in self.members)

    def member(self, name):
        found = next((a for a in self.members if a.name == name), None)
        if found is None:
            raise UnsupportedLayer(f"{name} is not one of {self.name}")
        return found

    def plan(self, layer, *input_shapes):
        """The first member's plan that succeeds (its ``accelerator`` names the member), or every reason."""
        reasons = []
        for accelerator in self.members:
            try:
                return accelerator.plan(layer, *input_shapes)
            except UnsupportedLayer as error:
                reasons.append(f"{accelerator.name}: {error}")
        raise UnsupportedLayer("; ".join(reasons))


class ClaimingExecutor:
    """One executor per accelerator; each plan runs on the executor of the accelerator that made it."""

    def __init__(self, executors):
        self.executors = {e.accelerator.name: e for e in executors}
        self.accelerator = ClaimingAccelerator(e.accelerator for e in executors)
        first = next(iter(self.executors.values()))
        self.dma, self.backend, self.device = first.dma, first.backend, None

    @property
    def run_seconds(self):
        return sum(e.run_seconds for e in self.executors.values())

    def plan(self, layer, *input_shapes):
        return self.accelerator.plan(layer, *input_shapes)

    def run(self, plan, *inputs, cycle_budget=None):
        return self.executors[plan.accelerator].run(plan, *inputs, cycle_budget=cycle_budget)

    def run_layer(self, layer, *inputs, cycle_budget=None):
        return self.run(self.plan(layer, *(x.shape for x in inputs)), *inputs, cycle_budget=cycle_budget)

    def close(self):
        for executor in self.executors.values():
            executor.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_claiming_executor(accelerators, backend="verilator", dma=None, trace=None, progress=None):
    """A plain executor for one accelerator, a :class:`ClaimingExecutor` for several."""
    if len(accelerators) == 1:
        return open_executor(accelerators[0], backend, dma, trace, progress)
    opened = []
    try:
        for accelerator in accelerators:
            started = time.perf_counter()
            opened.append(open_executor(accelerator, backend, dma, trace, progress))
            if progress is not None and backend != "model":
                progress(f"{accelerator.name}: {backend} ready in {time.perf_counter() - started:.1f} s")
    except BaseException:
        for executor in opened:
            executor.close()
        raise
    return ClaimingExecutor(opened)
