"""Several accelerators in one run (``--accel mm2im,gemm``): each layer goes to the first that claims it."""

import time

from ...accelerators.base import get_accelerator
from ...errors import ParameterError, UnsupportedLayer
from .executors import open_executor

__all__ = ["resolve_accelerators", "ClaimingAccelerator", "ClaimingExecutor", "open_claiming_executor"]


def resolve_accelerators(names, params):
    """Accelerators for a comma-separated ``--accel`` list.

    A plain ``--params`` name (``rows=4``) applies to every listed accelerator that
    declares it, ``NAME.param=value`` to that accelerator only; a name no listed
    accelerator declares is an error.
    """
    listed = [name.strip() for name in str(names).split(",") if name.strip()]
    if not listed:
        raise ParameterError("--accel names no accelerator")
    if len(set(listed)) != len(listed):
        raise ParameterError(f"--accel lists an accelerator twice: {names}")
    if len(listed) == 1:
        return [get_accelerator(listed[0], params)]
    from ...accelerators.base import registry
    available = registry()
    per = {name: {} for name in listed}
    for key, value in params.items():
        target, dot, param = key.partition(".")
        if dot:
            if target not in per:
                raise ParameterError(f"parameter {key} names {target!r}, which is not in --accel {names}")
            per[target][param] = value
            continue
        takers = [name for name in listed if not isinstance(available.get(name), (str, type(None)))
                  and any(p.name == key for p in available[name].space.params)]
        if not takers:
            raise ParameterError(f"no accelerator in --accel {names} has a parameter {key!r}")
        for name in takers:
            per[name][key] = value
    return [get_accelerator(name, per[name]) for name in listed]


class ClaimingAccelerator:
    """Stands for a list of accelerators where front ends expect one: the first to accept a layer claims it."""

    def __init__(self, members):
        self.members = list(members)
        self.name = ",".join(a.name for a in self.members)
        self.params = {a.name: dict(a.params) for a in self.members}
        self.offload_ops = tuple(dict.fromkeys(op for a in self.members for op in a.offload_ops))
        self._claims = {}

    def __repr__(self):
        return " + ".join(repr(a) for a in self.members)

    @property
    def pes(self):
        return max(a.pes for a in self.members)

    def check_layer(self, layer, input_shape):
        reasons = []
        for index, accelerator in enumerate(self.members):
            try:
                accelerator.check_layer(layer, input_shape)
            except UnsupportedLayer as error:
                reasons.append(f"{accelerator.name}: {error}")
                continue
            self._claims[id(layer)] = index
            return
        raise UnsupportedLayer("; ".join(reasons))

    def claim(self, layer):
        """Index of the member that claimed ``layer`` (checked with :meth:`check_layer` first)."""
        if id(layer) not in self._claims:
            raise UnsupportedLayer(f"no accelerator of {self.name} has claimed this {layer.op} layer")
        return self._claims[id(layer)]

    def assign(self, layer, name):
        """Record that member ``name`` runs ``layer`` (a front end that decided it by other means, e.g. TVM)."""
        index = next((i for i, a in enumerate(self.members) if a.name == name), None)
        if index is None:
            raise UnsupportedLayer(f"{name} is not one of {self.name}")
        self._claims[id(layer)] = index

    def claimed_by(self, layer):
        return self.members[self.claim(layer)].name


class ClaimingExecutor:
    """One executor per accelerator; each layer runs on its claimer's."""

    def __init__(self, executors):
        self.executors = list(executors)
        self.accelerator = ClaimingAccelerator(e.accelerator for e in self.executors)
        self.dma = self.executors[0].dma
        self.backend = self.executors[0].backend
        self.device = None

    @property
    def run_seconds(self):
        return sum(e.run_seconds for e in self.executors)

    def run_layer(self, layer, x, cycle_budget=None):
        return self.executors[self.accelerator.claim(layer)].run_layer(layer, x, cycle_budget)

    def close(self):
        for executor in self.executors:
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
