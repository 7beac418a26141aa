"""What every accelerator plug-in provides, and the registry that finds them.

An accelerator is a subclass of :class:`Accelerator` registered under the
``accelkit.accelerators`` entry-point group. It declares a typed
:class:`ParamSpace`, builds its gateware (a core inside the shared shell),
and supplies a golden model, a closed-form cost model and a layer driver that
speaks only to :class:`~accelkit.driver.device.Device`.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from ..driver.quant import ACTIVATIONS
from ..errors import ParameterError, UnsupportedLayer
from ..hw.shell import AcceleratorShell

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

    def check(self, value):
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
    """``"rows=8,cols=8"`` to ``{"rows": 8, "cols": 8}``."""
    result = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"parameter {item!r} is not of the form name=value")
        try:
            result[name.strip()] = int(value, 0)
        except ValueError:
            raise ParameterError(f"parameter {name.strip()} must be an integer, not {value.strip()!r}") from None
    return result


class Accelerator(ABC):
    """Base class of accelerator plug-ins; one instance is one configured design.

    Subclasses set ``name``, ``description``, ``space`` and implement
    :meth:`core` (gateware), :meth:`golden`, :meth:`estimate_cycles` and
    :meth:`run_gemm` (the layer driver).
    """

    name = "abstract"
    description = ""
    space = ParamSpace(())
    #: the gateware core class (its register declaration is the driver's register map)
    core_class = None

    def __init__(self, **params):
        self.params = self.space.resolve(params)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.params.items())})"

    # gateware
    @abstractmethod
    def core(self):
        """A fresh gateware core (a :class:`~accelkit.hw.shell.CoreBase`)."""

    def shell(self) -> AcceleratorShell:
        """A fresh shell around a fresh core (Amaranth components are single-use)."""
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

    # models and driver, per layer op
    #: layer kinds (``driver.layers`` ops) this design runs; framework front ends offload only these
    offload_ops = ("conv2d", "fc")

    @abstractmethod
    def check_shape(self, m, n, k) -> None:
        """Raise :class:`UnsupportedLayer` with the reason when this design cannot run an (M, N, K) GEMM."""

    def check(self, gemm) -> None:
        """Raise :class:`UnsupportedLayer` when this design cannot run ``gemm``."""
        self.check_shape(*gemm.shape)

    def check_layer(self, layer, input_shape) -> None:
        """The per-layer check function front ends call before offloading a layer.

        ``layer`` is a ``driver.layers`` Conv2D / FullyConnected (its weights and
        quantization already validated as int8 by the front end).
        """
        if layer.op not in self.offload_ops:
            raise UnsupportedLayer(f"{self.name} does not run {layer.op} layers")
        if getattr(layer, "activation", "NONE") not in ACTIVATIONS:
            raise UnsupportedLayer(f"fused activation {layer.activation} is not supported")
        self.check_shape(*layer.gemm_shape(input_shape))

    @abstractmethod
    def golden(self, gemm):
        """The int8 result this design must produce for ``gemm`` (numpy, no simulation)."""

    @abstractmethod
    def estimate_cycles(self, gemm_shape, dma) -> int:
        """Closed-form cycles for a (M, N, K) GEMM at the given DMA timing."""

    @abstractmethod
    def estimate_stats(self, gemm_shape, dma, op="gemm", shape=None):
        """LayerStats of an (M, N, K) GEMM from the cost model, without simulating (the `model` backend)."""

    def estimate(self, gemm, dma, op="gemm", shape=None):
        """LayerStats of running ``gemm``, from the cost model (the `model` backend).

        The default needs only the shape; designs whose schedule depends on the
        data (e.g. where each channel may go) look at the operands.
        """
        return self.estimate_stats(gemm.shape, dma, op, shape)

    @abstractmethod
    def run_gemm(self, device, gemm, cycle_budget=None, op="gemm", shape=None):
        """Run ``gemm`` on ``device``; return (int8 output, LayerStats)."""

    def run_layer(self, device, layer, x, cycle_budget=None):
        """Run a CONV_2D / FULLY_CONNECTED layer (see ``driver.layers``) on ``device``: (output, LayerStats)."""
        gemm, shape = layer.lower(x)
        described = {"input": list(x.shape), "output": list(shape), "m": gemm.shape[0], "n": gemm.shape[1],
                     "k": gemm.shape[2]}
        out, stats = self.run_gemm(device, gemm, cycle_budget, op=layer.op, shape=described)
        return out.reshape(shape), stats

    def supports(self, layer):
        """(True, "") or (False, reason)."""
        try:
            self.check(layer)
        except UnsupportedLayer as error:
            return False, str(error)
        return True, ""


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
    return cls(**(params or {}))
