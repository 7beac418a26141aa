"""Layer kinds: one module per kind of layer (semantics, TFLite recognition, TVM pattern, random instances).

See :mod:`.base` for what a kind declares; ``kinds()`` lists the registered ones.
"""

from .base import Layer, LayerKind, ShapeOption, digest, get_kind, kind_of, kinds, tflite_kinds

__all__ = ["Layer", "LayerKind", "ShapeOption", "digest", "get_kind", "kind_of", "kinds", "tflite_kinds"]
