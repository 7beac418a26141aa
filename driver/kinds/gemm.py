"""GEMM: a bare int8 matrix product with per-column requantization, the common lowering target.

No TFLite operator is recognised as this kind; it exists so accelerators can be
checked (and `accelkit layer gemm` run) on the product itself, with either
requantization mode.
"""

from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError
from ..layers import QuantizedGemm
from ..quant import ACTIVATIONS, ROUNDINGS, activation_range, effective_scale
from .base import LayerKind, LoweredToGemm, ShapeOption
from .fields import random_quantization

__all__ = ["Gemm", "KIND"]


@dataclass
class Gemm(LoweredToGemm):
    """out[M, N] = requantize(x[M, K] @ b[K, N] + bias[N]) per column; ``bias`` already holds any zero-point term."""

    b: np.ndarray
    bias: np.ndarray
    scale: np.ndarray
    rounding: str = "double"
    output_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127

    op = "gemm"

    def __post_init__(self):
        if self.b.ndim != 2 or self.b.dtype != np.int8:
            raise ParameterError(f"GEMM weights must be int8 [K, N], not {self.b.dtype} {list(self.b.shape)}")
        if self.rounding not in ROUNDINGS:
            raise ParameterError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {self.rounding!r}")

    def gemm_shape(self, input_shape):
        return input_shape[0], self.b.shape[1], self.b.shape[0]

    def gemm_weights(self):
        return self.b

    def output_shape_for(self, input_shape):
        return (input_shape[0], self.b.shape[1])

    def lower(self, x):
        if x.ndim != 2 or x.shape[1] != self.b.shape[0]:
            raise ParameterError(f"GEMM input shape {list(x.shape)} does not chain with weights {list(self.b.shape)}")
        gemm = QuantizedGemm(np.ascontiguousarray(x, dtype=np.int8), self.b, self.bias, self.scale, self.rounding,
                             self.output_zero_point, self.act_min, self.act_max)
        return gemm, (x.shape[0], self.b.shape[1])


    @classmethod
    def of(cls, gemm: QuantizedGemm):
        """The layer and input of an existing QuantizedGemm."""
        return cls(gemm.b, gemm.bias, gemm.scale, gemm.rounding, gemm.output_zero_point, gemm.act_min,
                   gemm.act_max), gemm.a


class GemmKind(LayerKind):
    name = "gemm"
    description = "bare int8 GEMM with per-column requantization (either rounding mode)"
    layer_class = Gemm
    shape_options = (ShapeOption("m", 64, "rows"), ShapeOption("n", 64, "columns"),
                     ShapeOption("k", 64, "reduction depth"),
                     ShapeOption("activation", "NONE", choices=ACTIVATIONS))

    def random(self, rng, m=64, n=64, k=64, activation="NONE", zero_points="random", narrow=False, rounding=None):
        q = random_quantization(rng, n, k, zero_points, narrow)
        b = rng.integers(-127, 128, (k, n), dtype=np.int8)
        bias = q["bias"].astype(np.int64) - q["input_zero_point"] * b.astype(np.int64).sum(axis=0)
        act_min, act_max = activation_range(activation, q["output_scale"], q["output_zero_point"])
        layer = Gemm(b, bias, effective_scale(q["input_scale"], q["filter_scales"], q["output_scale"]),
                     rounding or str(rng.choice(ROUNDINGS)), q["output_zero_point"], act_min, act_max)
        return layer, (rng.integers(-128, 128, (m, k), dtype=np.int8),)

    def random_shape(self, rng, limits):
        max_dim, max_k = limits.get("max_dim", 40), limits.get("max_k", 2048)
        return dict(m=int(rng.integers(1, max_dim + 1)), n=int(rng.integers(1, max_dim + 1)),
                    k=int(rng.integers(1, max_k + 1)))


KIND = GemmKind()
