"""block_matmul: a llama.cpp-quantized MatMul, packed weight rows of one block format times float activations.

Its reference is ggml's semantics (``driver/ggml``): activations quantized on the
host by a named quantizer to the weight format's partner (Q8_0 or Q8_K), exact
integer block sums, then one fixed-order float combine. No TFLite operator is
this kind: such layers come from GGUF models (``sw/llm``) and random draws.
"""

from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError
from ..ggml import WEIGHT_FORMATS, get_format, random_blocks
from ..ggml.codec import as_blocks, unpack
from ..ggml.dot import ACTIVATION_QUANTIZERS, block_sums, combine, prepare_weights, quantize_activations
from .base import Layer, LayerKind, ShapeOption

__all__ = ["BlockMatMul", "KIND"]


@dataclass(eq=False)
class BlockMatMul(Layer):
    """``y = x @ W.T`` with ``W`` stored as ``weights`` (n rows of packed ``fmt`` blocks, uint8) and the float32
    activations ``x`` (m, k) quantized on the host by ``quantizer`` to the format's activation partner.

    ``reference(x)`` is ggml's semantics: integer block sums, then the fixed-order float combine.
    """

    fmt: str
    weights: np.ndarray
    k: int
    quantizer: str = "ref"
    name: str = "matmul"

    op = "block_matmul"

    def __post_init__(self):
        self.spec = get_format(self.fmt)
        if self.spec.activation is None:
            raise ParameterError(f"{self.spec.name} is an activation format, not a weight format")
        if self.k % self.spec.block:
            raise ParameterError(f"{self.name}: K={self.k} is not a multiple of the {self.spec.name} block "
                                 f"of {self.spec.block}")
        if self.quantizer not in ACTIVATION_QUANTIZERS:
            raise ParameterError(f"quantizer must be one of {', '.join(ACTIVATION_QUANTIZERS)}, not {self.quantizer!r}")
        self.weights = np.ascontiguousarray(self.weights, dtype=np.uint8)
        row_bytes = self.k // self.spec.block * self.spec.block_bytes
        self.weights = self.weights.reshape(-1, row_bytes) if self.weights.size % row_bytes == 0 else self.weights
        if self.weights.ndim != 2 or self.weights.shape[1] != row_bytes:
            raise ParameterError(f"{self.name}: weights of shape {self.weights.shape} are not rows of {row_bytes} "
                                 f"bytes ({self.k // self.spec.block} {self.spec.name} blocks)")
        self._unpacked = self._prepared = None

    @property
    def n(self):
        return self.weights.shape[0]

    @property
    def row_blocks(self):
        return self.k // self.spec.block

    def unpacked(self):
        if self._unpacked is None:
            self._unpacked = unpack(self.spec, as_blocks(self.spec, self.weights))
        return self._unpacked

    def check_input(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.k:
            raise ParameterError(f"{self.name}: activations must be (tokens, {self.k}), not {x.shape}")
        return np.asarray(x, dtype=np.float32)

    def quantize(self, x):
        """(Unpacked activation blocks, their int8 codes (m, k))."""
        x = self.check_input(x)
        a, _ = quantize_activations(x, self.spec.activation, self.quantizer, packed=False)
        return a, a.q.reshape(x.shape[0], self.k).astype(np.int8)

    def sums(self, a):
        """Integer block sums (isum, msum) of quantized activations ``a``, each (n, m, row_blocks) int64."""
        if self._prepared is None:
            self._prepared = prepare_weights(self.spec, self.unpacked(), self.n)
        return block_sums(self.spec, self.unpacked(), a, self.n, a.q.shape[0] // self.row_blocks, self._prepared)

    def finish(self, a, isum, msum):
        """Float32 outputs (m, n) from block sums: the host's fixed-order combine."""
        return combine(self.unpacked(), a, isum, msum, self.n, a.q.shape[0] // self.row_blocks)

    def reference(self, x):
        a, _ = self.quantize(x)
        isum, msum = self.sums(a)
        return self.finish(a, isum, msum)

    def macs(self, input_shape):
        return int(input_shape[0]) * self.n * self.k

    def output_shape_for(self, input_shape):
        return (int(input_shape[0]), self.n)


class BlockMatMulKind(LayerKind):
    name = "block_matmul"
    description = "llama.cpp block-quantized MatMul (Q8_0, Q4_0, Q2_K, Q3_K, ...) with host-quantized activations"
    layer_class = BlockMatMul
    shape_options = (ShapeOption("format", "Q4_0", "weight block format", choices=WEIGHT_FORMATS),
                     ShapeOption("m", 1, "tokens (activation rows)"), ShapeOption("n", 64, "weight rows"),
                     ShapeOption("k", 256, "columns (a multiple of the format's block)"),
                     ShapeOption("quantizer", "ref", "activation quantizer", choices=ACTIVATION_QUANTIZERS))

    def random(self, rng, format="Q4_0", m=1, n=64, k=256, quantizer="ref", **_):
        """Random codes, scales and super-scales in ``format`` (other generators' options are ignored)."""
        spec = get_format(format)
        weights = random_blocks(spec, rng, n * (k // spec.block)).reshape(n, -1) if k % spec.block == 0 else \
            np.zeros((n, 0), np.uint8)
        layer = BlockMatMul(spec.name, weights, k, quantizer=quantizer)
        return layer, ((rng.standard_normal((m, k)) * rng.uniform(0.1, 10)).astype(np.float32),)

    def random_shape(self, rng, limits):
        fmt = str(rng.choice(WEIGHT_FORMATS))
        block = get_format(fmt).block
        blocks = max(1, limits.get("max_k", 512) // block)
        return dict(format=fmt, m=int(rng.integers(1, 5)), n=int(rng.integers(1, limits.get("max_dim", 40) + 1)),
                    k=block * int(rng.integers(1, blocks + 1)), quantizer=str(rng.choice(ACTIVATION_QUANTIZERS)))

    def signature(self, layer, *input_shapes):
        shapes = ";".join("x".join(str(int(d)) for d in shape) for shape in input_shapes)
        return f"{self.name}[{shapes}]{layer.spec.name} n={layer.n} k={layer.k} quantizer={layer.quantizer}"


KIND = BlockMatMulKind()
