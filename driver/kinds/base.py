"""What a layer kind declares, and the registry that finds the kinds.

A *kind* is one sort of layer (conv2d, fc, tconv, ...). Its module in this
package holds the layer dataclass with its TFLite-exact ``reference``, how a
TFLite operator becomes such a layer, the compute part of the TVM Relax chain
the importer writes for it, and a generator of random instances. Front ends,
conformance checks and ``accelkit layer`` ask the registry; accelerators name
the kinds they run (``Accelerator.kinds``). Adding a kind is adding a module
here (or registering one under the ``accelkit.kinds`` entry-point group) and
teaching the accelerators that run it.

Nothing here imports TFLite or TVM: the TFLite reader's operator and tensor
objects are read by attribute (``sw/frontends/tflite/model.py`` makes them), and
Relax patterns are built from the constructors the TVM front end passes in.
"""

import hashlib
import importlib
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points

import numpy as np

from ...errors import ParameterError

__all__ = ["Layer", "LoweredToGemm", "LayerKind", "ShapeOption", "kinds", "get_kind", "kind_of", "tflite_kinds", "digest"]


class Layer:
    """Mixin of every layer dataclass: ``op`` is the kind's name (a class attribute)."""

    op = "abstract"

    @property
    def kind(self):
        return self.op

    def macs(self, *input_shapes) -> int:
        """Multiply-accumulates the layer performs on inputs of these shapes (what utilization counts)."""
        raise NotImplementedError

    def output_shape_for(self, *input_shapes) -> tuple:
        raise NotImplementedError

    def reference(self, *inputs):
        """The TFLite-exact output (LiteRT 2.3 BUILTIN_REF) for these inputs."""
        raise NotImplementedError


class LoweredToGemm(Layer):
    """Mixin of layers that lower to one QuantizedGemm (``lower(x)``, ``gemm_shape``): MACs and reference from it."""

    def macs(self, input_shape):
        m, n, k = self.gemm_shape(input_shape)
        return m * n * k

    def reference(self, x):
        gemm, shape = self.lower(x)
        return gemm.reference().reshape(shape)


@dataclass(frozen=True)
class ShapeOption:
    """One shape argument of ``accelkit layer KIND`` (``--name``), an integer unless ``choices`` is given."""

    name: str
    default: object
    help: str = ""
    minimum: int = 1
    choices: tuple = ()


class LayerKind:
    """Base of the per-kind declarations; one instance per kind module, named ``KIND``."""

    name = "abstract"
    description = ""
    layer_class = None
    #: TFLite builtin operators this kind recognises
    tflite_ops = ()
    #: arguments of ``accelkit layer NAME`` (passed to :meth:`random` by name)
    shape_options = ()

    # -- TFLite
    def tflite_inputs(self, op) -> tuple:
        """Positions in ``op.inputs`` of the activation inputs the layer runs on."""
        return (0,)

    def from_tflite(self, op, tensors):
        """The layer for a TFLite operator, or :class:`UnsupportedLayer` saying why not."""
        raise NotImplementedError(f"{self.name} has no TFLite operator")

    # -- TVM Relax (TVM 0.27's importer writes int8 layers as dequantize -> compute -> quantize)
    def relax_compute(self, p):
        """The compute part of the importer's chain, from the pattern constructors in ``p``; None: no pattern.

        ``p`` has ``is_op``, ``is_const``, ``wildcard``, ``dequantize(data, scale, zp)`` and ``parts`` (a dict
        already holding ``x``, ``x_dq`` and constant patterns ``w``, ``w_scale``, ``w_zp``); the method adds
        what it names to ``parts`` and returns the compute pattern.
        """
        return None

    def from_relax(self, matched, fields):
        """The layer for a matched chain (``fields`` reads its constants; see ``sw/frontends/tvm``)."""
        raise NotImplementedError(f"{self.name} has no Relax pattern")

    # -- random instances (conformance sweeps, ``accelkit layer``)
    def random(self, rng, **shape):
        """(layer, inputs tuple): a seeded random layer of this kind with TFLite-style quantization."""
        raise NotImplementedError

    def random_shape(self, rng, limits):
        """A random ``shape`` dict for :meth:`random`, within ``limits`` (``max_dim``, ``max_k``)."""
        raise NotImplementedError

    # -- plans are cached by this
    def signature(self, layer, *input_shapes) -> str:
        """What a plan for ``layer`` depends on besides the weights: kind, shapes and options."""
        fields = {}
        for name, value in vars(layer).items():
            if isinstance(value, np.ndarray):
                fields[name] = list(value.shape)
            elif isinstance(value, (int, float, str, tuple, bool)) or value is None:
                fields[name] = value
        shapes = ";".join("x".join(str(int(d)) for d in shape) for shape in input_shapes)
        return f"{self.name}[{shapes}]{sorted(fields.items())}"

    def __repr__(self):
        return f"<layer kind {self.name}>"


def digest(*arrays) -> str:
    """A short content hash of numpy arrays (what a weight-dependent plan adds to its signature)."""
    h = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        h.update(str((array.dtype, array.shape)).encode())
        h.update(array.tobytes())
    return h.hexdigest()[:16]


_REGISTRY = None


def _load():
    found = {}
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if module.name.startswith("_") or module.name in ("base", "fields"):
            continue
        kind = getattr(importlib.import_module(f"{package}.{module.name}"), "KIND", None)
        if isinstance(kind, LayerKind):
            found[kind.name] = kind
    for entry in entry_points(group="accelkit.kinds"):
        try:
            kind = entry.load()
        except Exception:       # a broken plug-in kind must not take the others down
            continue
        kind = kind() if isinstance(kind, type) else kind
        if isinstance(kind, LayerKind) and kind.name not in found:
            found[kind.name] = kind
    return found


def kinds() -> dict:
    """Every registered layer kind by name."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _load()
    return dict(_REGISTRY)


def get_kind(name: str) -> LayerKind:
    registered = kinds()
    if name not in registered:
        raise ParameterError(f"no layer kind named {name!r}; registered: {', '.join(sorted(registered))}")
    return registered[name]


def kind_of(layer) -> LayerKind:
    return get_kind(layer.op)


def tflite_kinds() -> dict:
    """TFLite builtin operator name -> the kind that recognises it."""
    return {op: kind for kind in kinds().values() for op in kind.tflite_ops}
