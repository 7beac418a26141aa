"""What every accelerator plug-in provides, and the registry that finds them.

An accelerator is a subclass of :class:`Accelerator` registered under the
``accelkit.accelerators`` entry-point group. It declares a typed
:class:`ParamSpace`, builds its gateware (a core inside the shared shell),
and supplies a golden model, a closed-form cost model and a layer driver that
speaks only to :class:`~accelkit.driver.device.Device`, all organised around a
:class:`~accelkit.driver.plan.Plan` per layer (see :class:`Accelerator`).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import numpy as np

from ..driver.kinds import digest, get_kind
from ..driver.plan import Plan
from ..driver.quant import ACTIVATIONS
from ..errors import ParameterError, UnsupportedLayer

__all__ = ["Param", "ParamSpace", "Accelerator", "registry", "get_accelerator", "parse_params"]


@dataclass(frozen=True)
class Param:
    """One integer parameter: inclusive range, optional power-of-two or multiple-of constraint."""

    name: str
    default: int
    minimum: int
    maximum: int
    doc: str = ""
    power_of_two: bool = False
    multiple_of: int = 1
    #: names of the values minimum, minimum + 1, ... (a choice parameter): each is accepted for its value
    names: tuple = ()

    def check(self, value):
        if isinstance(value, str) and self.names:
            if value not in self.names:
                raise ParameterError(f"{self.name} must be one of {', '.join(self.names)} (or "
                                     f"{self.minimum}..{self.maximum}), not {value!r}")
            return self.minimum + self.names.index(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{self.name} must be an integer, not {value!r}")
        if not self.minimum <= value <= self.maximum:
            raise ParameterError(f"{self.name} must be in {self.minimum}..{self.maximum}, not {value}")
        if self.power_of_two and value & (value - 1):
            raise ParameterError(f"{self.name} must be a power of two, not {value}")
        if value % self.multiple_of:
            raise ParameterError(f"{self.name} must be a multiple of {self.multiple_of}, not {value}")
        return value

    def values(self):
        """Every legal value (for design-space search)."""
        if self.power_of_two:
            v = 1
            while v <= self.maximum:
                if v >= self.minimum:
                    yield v
                v *= 2
        else:
            start = -(-self.minimum // self.multiple_of) * self.multiple_of
            yield from range(start, self.maximum + 1, self.multiple_of)

    def describe(self):
        if self.names:
            named = ", ".join(f"{self.minimum + i} {name}" for i, name in enumerate(self.names))
            return f"{named}, default {self.default} {self.names[self.default - self.minimum]}"
        rule = "power of two, " if self.power_of_two else (
            f"multiple of {self.multiple_of}, " if self.multiple_of > 1 else "")
        return f"{rule}{self.minimum}..{self.maximum}, default {self.default}"


@dataclass(frozen=True)
class ParamSpace:
    """A declared, typed parameter space with cross-parameter constraints.

    ``constraints`` are (predicate over the params dict, message) pairs.
    """

    params: tuple
    constraints: tuple = field(default_factory=tuple)

    def resolve(self, values=None) -> dict:
        """Defaults overlaid with ``values``, every value and constraint checked."""
        values = dict(values or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")
        resolved = {name: p.check(values.get(name, p.default)) for name, p in known.items()}
        for predicate, message in self.constraints:
            if not predicate(resolved):
                raise ParameterError(message.format(**resolved))
        return resolved


def parse_params(text: str | None) -> dict:
    """``"rows=8,cols=8"`` to ``{"rows": 8, "cols": 8}``; a value that is a name stays a string (``rn=art``), for a
    choice parameter to take (others refuse it)."""
    result = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"parameter {item!r} is not of the form name=value")
        name = name.strip()
        if not name:
            raise ParameterError(f"parameter {item!r} has no name (expected name=value)")
        try:
            number = int(value, 0)
        except ValueError:
            if not value.strip().isidentifier():
                raise ParameterError(f"parameter {name} must be an integer, not {value.strip()!r}") from None
            number = value.strip()      # a choice's name (``rn=art``): the parameter's check takes or refuses it
        if name in result:
            raise ParameterError(f"parameter {name} is given twice ({name}={result[name]} and {name}={number}); "
                                 "give each parameter once")
        result[name] = number
    return result


class Accelerator(ABC):
    """Base class of accelerator plug-ins; one instance is one configured design.

    The contract, around a :class:`~accelkit.driver.plan.Plan`:

    * ``kinds``: the layer kinds (``driver/kinds``) this design runs;
    * :meth:`plan` (``layer, *input_shapes``): a Plan, or :class:`UnsupportedLayer` with the reason;
      subclasses implement :meth:`make_plan`, and plans are cached by layer signature;
    * :meth:`run` (``plan, device, *inputs``): the output and the LayerStats read from the device;
    * :meth:`golden` (``plan, *inputs``): the output the design must produce (numpy, no simulation);
    * :meth:`estimate` (``plan, dma``): LayerStats from the closed-form cost model, equal to the RTL's
      cycle counter;
    * :meth:`model_params`: parameters a model file asks of the design (a hook, e.g. a quantizer's side file);
    * :meth:`random_layer`: random layers from this design's own domain, for conformance sweeps.

    Subclasses also set ``name``, ``description``, ``space`` and build their gateware in :meth:`core`.
    """

    name = "abstract"
    description = ""
    space = ParamSpace(())
    #: the gateware core class (its register declaration is the driver's register map)
    core_class = None
    #: layer kinds (``driver/kinds`` names) this design runs; front ends offload only these
    kinds = ()
    #: True when a plan depends on the weights' values, not only on shapes (then they join the signature)
    plan_depends_on_weights = False
    #: plans kept per instance (by signature)
    plan_cache_size = 4096
    #: a small design of this accelerator, quick to build: what conformance checks and examples use
    small_params = {}
    #: faults this design can be given on purpose (name -> what goes wrong), for mutation testing;
    #: never part of ``space``, so no search or command line picks one
    faults_available = {}
    faults = frozenset()
    #: the faults among ``faults_available`` that change the gateware (they join the build's content hash)
    gateware_faults = frozenset()
    #: files outside hw/ and accelerators/ the gateware is generated from (they join the build's content hash)
    design_sources = ()

    def __init__(self, **params):
        self.params = self.space.resolve(params)
        self._plans = {}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.params.items())})"

    # gateware
    @abstractmethod
    def core(self):
        """A fresh gateware core (a :class:`~accelkit.hw.shell.CoreBase`)."""

    def shell(self):
        """A fresh :class:`~accelkit.hw.shell.AcceleratorShell` around a fresh core (Amaranth components are
        single-use); imported here so that planning and driving need no Amaranth."""
        from ..hw.shell import AcceleratorShell
        return AcceleratorShell(self.core())

    @property
    def top_name(self):
        return f"accelkit_{self.name}"

    @property
    @abstractmethod
    def pes(self) -> int:
        """Processing elements (the denominator of utilization)."""

    def register_map(self):
        return self.core_class.register_map()

    def with_faults(self, *names):
        """A copy of this design with the named faults injected (see ``faults_available``)."""
        unknown = sorted(set(names) - set(self.faults_available))
        if unknown:
            raise ParameterError(f"{self.name} has no fault {', '.join(unknown)}; it has "
                                 f"{', '.join(self.faults_available) or 'none'}")
        faulty = type(self)(**self.params)
        faulty.faults = frozenset(names)
        return faulty

    # the plan contract
    def signature(self, layer, *input_shapes) -> str:
        """What this design's plan for ``layer`` depends on (the plan cache key)."""
        signature = get_kind(layer.op).signature(layer, *input_shapes)
        if self.plan_depends_on_weights:
            signature += "#" + digest(*(v for v in vars(layer).values() if isinstance(v, np.ndarray)))
        return signature

    def plan(self, layer, *input_shapes) -> Plan:
        """How this design runs ``layer`` on inputs of these shapes; :class:`UnsupportedLayer` when it cannot."""
        if layer.op not in self.kinds:
            raise UnsupportedLayer(f"{self.name} does not run {layer.op} layers "
                                   f"(it runs {', '.join(self.kinds) or 'none'})")
        if getattr(layer, "activation", "NONE") not in ACTIVATIONS:
            raise UnsupportedLayer(f"fused activation {layer.activation} is not supported")
        input_shapes = tuple(tuple(int(d) for d in shape) for shape in input_shapes)
        signature = self.signature(layer, *input_shapes)
        cached = self._plans.get(signature)
        if cached is not None:
            return cached.for_layer(layer)
        plan = self.make_plan(layer, *input_shapes)
        if len(self._plans) >= self.plan_cache_size:
            self._plans.pop(next(iter(self._plans)))
        self._plans[signature] = plan
        return plan

    def new_plan(self, layer, input_shapes, schedule, *, macs=None, output_shape=None) -> Plan:
        """A Plan of this design for ``layer`` (a helper for :meth:`make_plan`)."""
        return Plan(kind=layer.op, accelerator=self.name, signature=self.signature(layer, *input_shapes),
                    input_shapes=tuple(input_shapes),
                    output_shape=tuple(output_shape or layer.output_shape_for(*input_shapes)),
                    macs=int(layer.macs(*input_shapes) if macs is None else macs), schedule=schedule, layer=layer)

    @abstractmethod
    def make_plan(self, layer, *input_shapes) -> Plan:
        """Decide how to run ``layer`` (kind already checked); raise :class:`UnsupportedLayer` with the reason."""

    @abstractmethod
    def run(self, plan, device, *inputs, cycle_budget=None):
        """Run ``plan`` on ``device`` for these inputs; return (output, LayerStats)."""

    def golden(self, plan, *inputs):
        """The output this design must produce (TFLite-exact unless the design says otherwise)."""
        return plan.layer.reference(*inputs)

    @abstractmethod
    def estimate(self, plan, dma):
        """LayerStats of running ``plan`` from the closed-form cost model (the `model` backend)."""

    def supports(self, layer, *input_shapes):
        """(True, "") or (False, reason)."""
        try:
            self.plan(layer, *input_shapes)
        except UnsupportedLayer as error:
            return False, str(error)
        return True, ""

    # hooks
    @classmethod
    def model_params(cls, model_path, params=None) -> tuple:
        """(parameters, note): what a model file asks of this design, e.g. from a quantizer's side file.

        ``params`` are the ones the user gave. The run command applies the answer for every
        parameter the user did not set; ``note`` says where it came from. The default asks nothing.
        """
        return {}, ""

    def random_layer(self, kind, rng, **shape):
        """(layer, inputs) of ``kind`` drawn from this design's own domain (the kind's generator by default)."""
        return get_kind(kind).random(rng, **shape)


def registry() -> dict:
    """Registered accelerators by name, from the ``accelkit.accelerators`` entry points.

    A plug-in that fails to import is reported as unavailable (the value is
    the error message) instead of breaking the others.
    """
    found = {}
    for entry in entry_points(group="accelkit.accelerators"):
        try:
            found[entry.name] = entry.load()
        except Exception as error:   # a broken plug-in must not take the CLI down
            found[entry.name] = f"unavailable: {type(error).__name__}: {error}"
    return found


def get_accelerator(name: str, params: dict | None = None) -> Accelerator:
    available = registry()
    cls = available.get(name)
    if cls is None:
        raise ParameterError(f"no accelerator named {name!r}; registered: {', '.join(sorted(available)) or 'none'}")
    if isinstance(cls, str):
        raise ParameterError(f"accelerator {name!r} is {cls}")
    own = {}
    for key, value in (params or {}).items():
        target, dot, param = key.partition(".")
        if dot and target != name:
            raise ParameterError(f"parameter {key} names accelerator {target!r}, but the accelerator is {name!r}")
        plain = param if dot else key
        if plain in own:
            raise ParameterError(f"parameter {plain} of {name} is given twice (as {plain} and {name}.{plain})")
        own[plain] = value
    return cls(**own)
