"""One design point of a search, evaluated on a model: cycles from the cost model, resources, energy, fit.

:class:`Workload` reads a model's layers once; :class:`Evaluator` answers for a
parameter dict with cycles (the accelerator's closed-form ``estimate``, the
`model` backend's figure, summed over the layers), resources (the calibrated
analytic model, ``resources.py``), energy (``sw/hardware/power.py``) and
whether the design fits the board and reaches a required clock (the Fmax model in
``resources.py``, from placed-and-routed points). A point over the board's
budget, under the required clock or unable to run some layers is still costed (over
the layers it runs): its ``violations`` (how far over each limit, relative, > 0; the
share of layers it cannot run) let a constrained sampler learn from it. Per-layer figures are remembered by
(parameters, layer signature), so a search that comes back to a point, or a
model that repeats a layer shape, pays once.

Per-layer choices: an accelerator whose planner searches a choice per layer
(flexarray's mapping compiler; it says so with ``plan_choice`` and keeps the
choice in ``plan.schedule["mapping"]``) has the choice of each layer returned in
``PointResult.mappings`` ({layer signature: choice}, keyed by the accelerator's
``choice_signature``: what the choice depends on), so the search can store it.
A choice given to :meth:`Evaluator.evaluate` for a signature (tuning reuse) is
planned directly, without the accelerator's per-layer search; ``searched`` and
``reused`` count the two.
"""

from dataclasses import dataclass, field

from ...accelerators.base import get_accelerator
from ...driver.device import DmaTiming
from ...errors import ParameterError, UnsupportedLayer
from ..hardware.power import design_energy
from .boards import Board
from .resources import fmax_model, resource_model

__all__ = ["Workload", "Evaluator", "PointResult", "load_workload"]


@dataclass(frozen=True)
class Workload:
    """The accelerable layers of a model: (index, layer, input shapes) for each recognised operator."""

    name: str
    layers: tuple

    def __len__(self):
        return len(self.layers)


def load_workload(model) -> Workload:
    """The layers of a .tflite file or bundled model name that some layer kind recognises."""
    from ..frontends.tflite.frontend import activation_inputs, to_layer
    from ..frontends.tflite.model import read_model
    from ..zoo import resolve_model
    path = resolve_model(model)
    tflite = read_model(path)
    layers = []
    for op in tflite.ops:
        try:
            layer = to_layer(op, tflite.tensors)
        except UnsupportedLayer:
            continue
        layers.append((op.index, layer, tuple(tuple(tflite.tensors[i].shape) for i in activation_inputs(op))))
    return Workload(name=path.stem, layers=tuple(layers))


@dataclass
class PointResult:
    """What one design point costs: cycles, resources, energy, and why it is infeasible (None if it is not)."""

    params: dict
    cycles: int = 0
    busy_cycles: int = 0
    bytes_moved: int = 0
    layers_run: int = 0
    resources: dict = field(default_factory=dict)
    energy_uj: float = 0.0
    latency_ms: float = 0.0
    infeasible: str | None = None
    #: constraint name -> relative violation (> 0: over the limit); empty when no limit applies
    violations: dict = field(default_factory=dict)
    #: estimated Fmax in MHz (None when no clock is required)
    fmax_mhz: float | None = None
    #: per-layer choices of the accelerator's planner (flexarray: mappings), {layer signature: choice}
    mappings: dict = field(default_factory=dict)

    def objective(self, name):
        """The value of objective ``name`` (latency in ms, lut/ff/dsp/bram36 counts, energy in uJ)."""
        if name == "latency":
            return self.latency_ms
        if name == "energy":
            return self.energy_uj
        return self.resources[name]

    def as_dict(self):
        return {"params": self.params, "cycles": self.cycles, "busy_cycles": self.busy_cycles,
                "bytes_moved": self.bytes_moved, "layers_run": self.layers_run, "resources": self.resources,
                "energy_uj": self.energy_uj, "latency_ms": self.latency_ms, "infeasible": self.infeasible,
                "violations": self.violations, "fmax_mhz": self.fmax_mhz, "mappings": self.mappings}


def _choice_signature(accelerator, layer, shapes):
    """The key of a layer's per-layer choice: the accelerator's ``choice_signature`` if it has one (what the
    choice depends on), else its plan signature."""
    sign = getattr(accelerator, "choice_signature", None) or accelerator.signature
    try:
        return sign(layer, *shapes)
    except UnsupportedLayer:
        return accelerator.signature(layer, *shapes)


class Evaluator:
    """Evaluates design points of accelerator ``accel`` on ``workload`` for ``board``.

    ``required`` is the set of layer indices every design must run (by default,
    those the accelerator's default design runs): a point that cannot run one
    is infeasible, since its latency would hide CPU time the cost model cannot
    give. ``clock_mhz`` converts cycles to time. ``min_clock_mhz``: a design whose estimated
    Fmax (``resources.fmax_model``) is below it is infeasible. ``cost_infeasible``: cost points
    over a limit too (what a constrained search needs); False skips their cost model.
    """

    def __init__(self, *, accel, workload, board: Board, clock_mhz=None, dma=None, required=None,
                 min_clock_mhz=None, cost_infeasible=True):
        if not isinstance(board, Board):
            raise ParameterError(f"board must be a Board, not {board!r}")
        self.accel, self.workload, self.board = accel, workload, board
        self.clock_mhz = float(clock_mhz or board.clock_mhz)
        if self.clock_mhz <= 0:
            raise ParameterError(f"clock must be positive, not {self.clock_mhz} MHz")
        self.dma = dma or DmaTiming()
        self.resources = resource_model(accel)
        self.min_clock_mhz = None if min_clock_mhz is None else float(min_clock_mhz)
        if self.min_clock_mhz is not None and self.min_clock_mhz <= 0:
            raise ParameterError(f"required clock must be positive, not {self.min_clock_mhz} MHz")
        self.fmax = None if self.min_clock_mhz is None else fmax_model(accel)
        self.cost_infeasible = bool(cost_infeasible)
        self._layers, self._signatures, self._choice_signatures = {}, {}, {}
        #: per-layer searches the planner ran, and stored choices used instead of one
        self.searched = self.reused = 0
        # looked up once: the registry reads entry-point metadata from disk on every call
        self._class = type(get_accelerator(accel, {}))
        if required is None:
            default = get_accelerator(accel, {})
            required = {index for index, layer, shapes in workload.layers if default.supports(layer, *shapes)[0]}
        self.required = frozenset(required)
        if not self.required:
            raise ParameterError(f"{accel} runs no layer of {workload.name} at its default parameters: "
                                 "nothing to explore")

    def _layer(self, accelerator, key, index, layer, shapes, known):
        # a layer's signature depends on the layer and the design's class, never on its parameters
        signature = self._signatures.get(index)
        if signature is None:
            signature = self._signatures[index] = accelerator.signature(layer, *shapes)
        chooses = hasattr(accelerator, "plan_choice")
        if chooses:
            # per-layer choices are stored under what they depend on (``choice_signature``), which layers of
            # other models share; the figures stay cached under the full signature
            choice_signature = self._choice_signatures.get(index)
            if choice_signature is None:
                choice_signature = self._choice_signatures[index] = _choice_signature(accelerator, layer, shapes)
        entry = self._layers.get((key, signature))
        if entry is None:
            try:
                plan = None
                if chooses and choice_signature in known:
                    try:
                        plan = accelerator.plan_choice(layer, shapes, known[choice_signature])
                        self.reused += 1
                    except (UnsupportedLayer, ParameterError):
                        plan = None     # a stored choice this design or compiler no longer takes: search
                if plan is None:
                    plan = accelerator.plan(layer, *shapes)
                    self.searched += chooses
                stats = accelerator.estimate(plan, self.dma)
                choice = plan.schedule.get("mapping") if chooses else None
                entry = (stats.cycles, stats.busy_cycles, stats.bytes_in + stats.bytes_out, None, choice)
            except UnsupportedLayer as error:
                entry = (0, 0, 0, str(error), None)
            self._layers[(key, signature)] = entry
        return (choice_signature if chooses else signature), entry

    def evaluate(self, params, known=None) -> PointResult:
        """The :class:`PointResult` of a parameter dict (invalid parameters: infeasible, with the reason).

        ``known``: {layer signature: choice} stored for these parameters (tuning reuse); those layers are
        planned with the stored choice instead of the accelerator's per-layer search.
        """
        known = known or {}
        try:
            accelerator = self._class(**params)
        except ParameterError as error:
            return PointResult(params=dict(params), infeasible=f"invalid parameters: {error}")
        resolved = dict(accelerator.params)
        result = PointResult(params=resolved)
        # resources first: a point over the board's budget needs no cost model
        result.resources = self.resources.estimate(resolved)
        budget = self.board.budget()
        result.violations = {name: result.resources[name] / limit - 1.0 for name, limit in budget.items()}
        over = [f"{name.upper()} {result.resources[name]:g} > {limit:g}"
                for name, limit in budget.items() if result.resources[name] > limit]
        reasons = [f"over the {self.board.name}'s budget: {', '.join(over)}"] if over else []
        if self.fmax is not None:
            result.fmax_mhz, source = self.fmax.estimate(resolved)
            result.violations["clock"] = 1.0 - result.fmax_mhz / self.min_clock_mhz
            if result.fmax_mhz < self.min_clock_mhz:
                reasons.append(f"under the required clock: Fmax {result.fmax_mhz:.1f} MHz ({source}) < "
                               f"{self.min_clock_mhz:g} MHz")
        if reasons:
            result.infeasible = "; ".join(reasons)
            if not self.cost_infeasible:
                return result
        key = tuple(sorted(resolved.items()))
        unrunnable = []
        for index, layer, shapes in self.workload.layers:
            if index not in self.required:
                continue
            signature, (cycles, busy, moved, unsupported, choice) = self._layer(accelerator, key, index, layer,
                                                                                shapes, known)
            if choice is not None:
                result.mappings[signature] = choice
            if unsupported is not None:
                unrunnable.append(f"cannot run layer {index} ({layer.op}): {unsupported}")
                if not self.cost_infeasible:
                    break
                continue
            result.cycles += cycles
            result.busy_cycles += busy
            result.bytes_moved += moved
            result.layers_run += 1
        if unrunnable:
            # the share of the required layers it cannot run is the violation; its latency (of the layers it
            # runs) is then a lower bound, which a constrained sampler ranks below every feasible point
            more = f" (and {len(unrunnable) - 1} more layers)" if len(unrunnable) > 1 else ""
            result.infeasible = unrunnable[0] + more + (f"; {result.infeasible}" if result.infeasible else "")
            result.violations["layers"] = len(unrunnable) / len(self.required)
            if not self.cost_infeasible:
                return result
        result.latency_ms = result.cycles / (self.clock_mhz * 1e3)
        energy = design_energy(result.resources, cycles=result.cycles, busy_cycles=result.busy_cycles,
                               bytes_moved=result.bytes_moved, clock_mhz=self.clock_mhz,
                               static_watts=self.board.static_watts)
        result.energy_uj = energy.total_uj
        return result
