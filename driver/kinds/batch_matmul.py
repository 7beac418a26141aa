"""BATCH_MATMUL: TFLite's int8 x int8 product of two activations (attention's Q.K^T and A.V).

LiteRT 2.3's BUILTIN_REF kernel sums ``(lhs + lhs_offset) * (rhs + rhs_offset)``
over the contracted axis in int32 (offsets are the negated zero points, both
operands per-tensor quantized), has no bias and no fused activation, and
requantizes per tensor with the double-rounding fixed-point multiplier of
``s_lhs * s_rhs / s_out`` (pinned on rounding ties in
``tests/driver/kinds/test_batch_matmul.py``). ``adj_x`` / ``adj_y`` transpose
the last two axes of an operand; the leading (batch) axes broadcast as numpy's
do, up to five dimensions in all.

Lowering: one :class:`QuantizedGemm` per output batch element, A = lhs (M x K),
B = rhs (K x N). The terms of the zero points split as

    sum_k (a - za)(b - zb) = a.b - za * colsum(b)[n] + K * za * zb  - zb * rowsum(a)[m]

the first three per output column (a bias), the last per output row
(``QuantizedGemm.row_offset = -zb``), which the gemm core adds in hardware.
"""

from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError, UnsupportedLayer
from ..layers import QuantizedGemm
from ..quant import DOUBLE, effective_scale, quantize_multiplier, requantize
from .base import Layer, LayerKind, ShapeOption
from .fields import int8_activation

__all__ = ["BatchMatMul", "KIND", "MAX_RANK"]

#: TFLite's BATCH_MATMUL takes operands of rank 2..5.
MAX_RANK = 5


@dataclass
class BatchMatMul(Layer):
    """A TFLite int8 BATCH_MATMUL of two per-tensor quantized activations."""

    lhs_scale: float
    lhs_zero_point: int
    rhs_scale: float
    rhs_zero_point: int
    output_scale: float
    output_zero_point: int
    adj_x: bool = False
    adj_y: bool = False

    op = "batch_matmul"
    rounding = DOUBLE
    activation = "NONE"

    def __post_init__(self):
        for name in ("lhs_zero_point", "rhs_zero_point", "output_zero_point"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or not -128 <= value <= 127:
                raise ParameterError(f"BATCH_MATMUL {name.replace('_', ' ')} must be an int8 value, not {value!r}")
            setattr(self, name, int(value))
        for name in ("lhs_scale", "rhs_scale", "output_scale"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value <= 0:
                raise ParameterError(f"BATCH_MATMUL {name.replace('_', ' ')} must be positive and finite, "
                                     f"not {value!r}")
            setattr(self, name, value)
        self.adj_x, self.adj_y = bool(self.adj_x), bool(self.adj_y)

    @property
    def scale(self):
        """The real requantization multiplier, as TFLite computes it (float32 scales, double arithmetic)."""
        return float(effective_scale(self.lhs_scale, [self.rhs_scale], self.output_scale)[0])

    def shapes(self, lhs_shape, rhs_shape):
        """(batch shape, M, N, K) of the product; raises ParameterError when the operands do not fit."""
        lhs_shape, rhs_shape = tuple(lhs_shape), tuple(rhs_shape)
        for name, shape in (("lhs", lhs_shape), ("rhs", rhs_shape)):
            if not 2 <= len(shape) <= MAX_RANK or min(shape) < 1:
                raise ParameterError(f"BATCH_MATMUL {name} shape {list(shape)} must have 2..{MAX_RANK} "
                                     "non-empty dimensions")
        m, k = lhs_shape[-2:][::-1] if self.adj_x else lhs_shape[-2:]
        k_rhs, n = rhs_shape[-2:][::-1] if self.adj_y else rhs_shape[-2:]
        if k != k_rhs:
            raise ParameterError(f"BATCH_MATMUL operands do not chain: lhs {list(lhs_shape)} (adj_x={self.adj_x}) "
                                 f"contracts {k}, rhs {list(rhs_shape)} (adj_y={self.adj_y}) contracts {k_rhs}")
        try:
            batch = np.broadcast_shapes(lhs_shape[:-2], rhs_shape[:-2])
        except ValueError:
            raise ParameterError(f"BATCH_MATMUL batch dimensions {list(lhs_shape[:-2])} and "
                                 f"{list(rhs_shape[:-2])} do not broadcast") from None
        return tuple(batch), m, n, k

    def output_shape(self, lhs_shape, rhs_shape):
        batch, m, n, _ = self.shapes(lhs_shape, rhs_shape)
        return (*batch, m, n)

    def output_shape_for(self, lhs_shape, rhs_shape):
        return self.output_shape(lhs_shape, rhs_shape)

    def macs(self, lhs_shape, rhs_shape):
        batch, m, n, k = self.shapes(lhs_shape, rhs_shape)
        return int(np.prod(batch, dtype=np.int64)) * m * n * k

    def operands(self, lhs, rhs):
        """int8 [B, M, K] and [B, K, N] (batch broadcast and flattened, adj applied) and the output shape."""
        lhs, rhs = np.asarray(lhs), np.asarray(rhs)
        if lhs.dtype != np.int8 or rhs.dtype != np.int8:
            raise ParameterError(f"BATCH_MATMUL operands must be int8, not {lhs.dtype} and {rhs.dtype}")
        batch, m, n, k = self.shapes(lhs.shape, rhs.shape)
        a = np.swapaxes(lhs, -1, -2) if self.adj_x else lhs
        b = np.swapaxes(rhs, -1, -2) if self.adj_y else rhs
        a = np.broadcast_to(a, (*batch, m, k)).reshape(-1, m, k)
        b = np.broadcast_to(b, (*batch, k, n)).reshape(-1, k, n)
        return a, b, (*batch, m, n)

    def reference(self, lhs, rhs):
        """TFLite-exact int8 output (LiteRT 2.3 BUILTIN_REF's BATCH_MATMUL)."""
        a, b, shape = self.operands(lhs, rhs)
        # exact in float64: |(a - za)(b - zb)| <= 2^16, sums far below 2^53
        acc = np.matmul(a.astype(np.float64) - self.lhs_zero_point, b.astype(np.float64) - self.rhs_zero_point)
        multiplier, shift = quantize_multiplier(self.scale)
        out = requantize(acc.astype(np.int64), 0, self.output_zero_point, -128, 127, rounding=DOUBLE,
                         multiplier=multiplier, shift=shift, scale=self.scale)
        return out.reshape(shape)

    def gemm(self, a, b):
        """The :class:`QuantizedGemm` of one batch element (``a`` [M, K], ``b`` [K, N], int8)."""
        k = a.shape[1]
        za, zb = self.lhs_zero_point, self.rhs_zero_point
        bias = k * za * zb - za * b.astype(np.int64).sum(axis=0)
        return QuantizedGemm(np.ascontiguousarray(a), np.ascontiguousarray(b), bias, self.scale, DOUBLE,
                             self.output_zero_point, -128, 127, row_offset=-zb)

    def lower(self, lhs, rhs):
        """One :class:`QuantizedGemm` per batch element, and the output shape."""
        a, b, shape = self.operands(lhs, rhs)
        return [self.gemm(a[i], b[i]) for i in range(a.shape[0])], shape


class BatchMatMulKind(LayerKind):
    name = "batch_matmul"
    description = "BATCH_MATMUL: int8 x int8 product of two activations (attention), broadcasting batch axes"
    layer_class = BatchMatMul
    tflite_ops = ("BATCH_MATMUL",)
    shape_options = (
        ShapeOption("batch", 2, "batch elements (e.g. attention heads)"), ShapeOption("m", 16),
        ShapeOption("n", 16), ShapeOption("k", 16),
        ShapeOption("adj_x", 0, "1: lhs is stored transposed", minimum=0, choices=(0, 1)),
        ShapeOption("adj_y", 0, "1: rhs is stored transposed", minimum=0, choices=(0, 1)),
    )

    def tflite_inputs(self, op):
        return (0, 1)

    def from_tflite(self, op, tensors):
        lhs, rhs, out = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
        for tensor, role in ((lhs, "lhs"), (rhs, "rhs"), (out, "output")):
            int8_activation(tensor, role)
        for tensor, role in ((lhs, "lhs"), (rhs, "rhs")):
            if tensor.data is not None:
                raise UnsupportedLayer(f"the {role} is a constant tensor (this kind multiplies two activations)")
        layer = BatchMatMul(lhs_scale=float(lhs.scales[0]), lhs_zero_point=int(lhs.zero_points[0]),
                            rhs_scale=float(rhs.scales[0]), rhs_zero_point=int(rhs.zero_points[0]),
                            output_scale=float(out.scales[0]), output_zero_point=int(out.zero_points[0]),
                            adj_x=bool(op.options.get("adj_x", False)), adj_y=bool(op.options.get("adj_y", False)))
        try:
            layer.shapes(lhs.shape, rhs.shape)
        except ParameterError as error:
            raise UnsupportedLayer(str(error)) from None
        return layer

    def random(self, rng, batch=2, m=16, n=16, k=16, adj_x=0, adj_y=0, lhs_batch=None, rhs_batch=None,
               zero_points="random", narrow=False):
        """A seeded random layer and its two int8 operands: ``(layer, (lhs, rhs))``.

        ``lhs_batch`` / ``rhs_batch`` give each operand its own batch shape (to
        broadcast); by default both are ``(batch,)``. ``zero_points="large"``
        puts every zero point at -128 or 127; ``narrow`` forces saturation.
        """
        lhs_batch = (batch,) if lhs_batch is None else tuple(lhs_batch)
        rhs_batch = (batch,) if rhs_batch is None else tuple(rhs_batch)
        lhs_scale, rhs_scale = float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.01, 0.1))
        # |acc| ~ 128 * 128 * sqrt(k) / 3; aim the output at roughly +-64 steps
        output_scale = float(lhs_scale * rhs_scale * 128 * 128 * np.sqrt(k) / 3 / 64)
        if narrow:
            output_scale /= rng.uniform(8.0, 40.0)
        if zero_points == "large":
            zl, zr, zo = (int(rng.choice([-128, 127])) for _ in range(3))
        else:
            zl, zr, zo = int(rng.integers(-128, 128)), int(rng.integers(-128, 128)), int(rng.integers(-20, 21))
        layer = BatchMatMul(lhs_scale=lhs_scale, lhs_zero_point=zl, rhs_scale=rhs_scale, rhs_zero_point=zr,
                            output_scale=output_scale, output_zero_point=zo,
                            adj_x=bool(adj_x), adj_y=bool(adj_y))
        lhs_shape = (*lhs_batch, *((k, m) if adj_x else (m, k)))
        rhs_shape = (*rhs_batch, *((n, k) if adj_y else (k, n)))
        lhs = rng.integers(-128, 128, size=lhs_shape, dtype=np.int64).astype(np.int8)
        rhs = rng.integers(-128, 128, size=rhs_shape, dtype=np.int64).astype(np.int8)
        return layer, (lhs, rhs)

    def random_shape(self, rng, limits):
        return dict(batch=int(rng.integers(1, 4)), m=int(rng.integers(1, 20)), n=int(rng.integers(1, 20)),
                    k=int(rng.integers(1, min(64, limits.get("max_k", 64)) + 1)), adj_x=int(rng.integers(0, 2)),
                    adj_y=int(rng.integers(0, 2)))


KIND = BatchMatMulKind()
