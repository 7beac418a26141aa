"""The quantized MatMul as a layer: packed weight rows of one block format times float activations."""

from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError
from .codec import as_blocks, unpack
from .dot import ACTIVATION_QUANTIZERS, block_sums, combine, prepare_weights, quantize_activations
from .formats import get_format

__all__ = ["BlockMatMul"]


@dataclass(eq=False)
class BlockMatMul:
    """``y = x @ W.T`` with ``W`` stored as ``weights`` (n rows of packed ``fmt`` blocks, uint8) and the float32
    activations ``x`` (m, k) quantized on the host by ``quantizer`` to the format's activation partner.

    ``reference(x)`` is ggml's semantics: integer block sums, then the fixed-order float combine.
    """

    fmt: str
    weights: np.ndarray
    k: int
    quantizer: str = "ref"
    name: str = "matmul"
    kind = "block_matmul"

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
        a, _ = quantize_activations(x, self.spec.activation, self.quantizer)
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

    def signature(self, m):
        return f"block_matmul:{self.spec.name}:n{self.n}:k{self.k}:m{m}:{self.quantizer}"
