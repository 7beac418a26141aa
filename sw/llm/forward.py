"""A llama forward pass in numpy over a GGUF, with every MatMul sent through a hook.

RMSNorm, rotary embeddings (llama.cpp's "normal" rope: adjacent pairs), grouped-
query attention with a KV cache, SwiGLU, tied or separate output. The MatMul hook
``matmul(weight, x) -> y`` receives a :class:`~.gguf_model.Weight` and float32
activations ``x`` (tokens, columns) and returns float32 (tokens, rows); the prompt
is processed as one batch, so each weight is used by one MatMul per forward call.
:class:`HostMatMul` computes quantized MatMuls as ggml does (activations quantized
to the weight format's partner, integer block sums, the fixed float combine); an
accelerator executor is another hook with the same signature.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ...driver.kinds.block_matmul import BlockMatMul
from ...errors import ParameterError
from .gguf_model import LlamaModel

__all__ = ["HostMatMul", "Llama", "Sampler"]


class HostMatMul:
    """MatMuls on the host: ggml's integer block dot products for described formats, float otherwise.

    ``quantizer`` names the activation quantizer (``ref`` or ``avx2``).
    """

    def __init__(self, *, quantizer="ref"):
        self.quantizer = quantizer
        self._layers = {}

    def __call__(self, weight, x):
        if weight.spec is None:
            return x @ weight.dense().T
        if weight.name not in self._layers:
            self._layers[weight.name] = BlockMatMul(weight.spec.name, weight.data, weight.shape[1],
                                                    quantizer=self.quantizer, name=weight.name)
        return self._layers[weight.name].reference(x)


def rms_norm(x, weight, eps):
    """``x / sqrt(mean(x^2) + eps) * weight`` along the last axis (ggml: squares summed in double, float32 scale)."""
    mean = (x.astype(np.float64) ** 2).mean(axis=-1, keepdims=True)
    return (x * (np.float32(1) / np.sqrt(np.float32(mean + eps)))).astype(np.float32) * weight


def rope(x, positions, base, dims):
    """Rotate adjacent pairs (x[2i], x[2i+1]) of the first ``dims`` of each head by pos * base^(-2i/dims)."""
    half = dims // 2
    theta = positions[:, None].astype(np.float64) * base ** (-np.arange(half, dtype=np.float64) * 2 / dims)
    cos, sin = np.cos(theta).astype(np.float32)[:, None, :], np.sin(theta).astype(np.float32)[:, None, :]
    out = x.copy()
    even, odd = x[..., 0:dims:2], x[..., 1:dims:2]
    out[..., 0:dims:2] = even * cos - odd * sin
    out[..., 1:dims:2] = even * sin + odd * cos
    return out


@dataclass
class Sampler:
    """Greedy when ``temperature`` is 0; otherwise softmax sampling with optional top-k / top-p, seeded."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ParameterError(f"temperature must be a finite number >= 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ParameterError(f"top_p must be in (0, 1], not {self.top_p}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ParameterError(f"top_k must be an integer >= 0 (0: no limit), not {self.top_k}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError(f"seed must be an integer >= 0, not {self.seed}")
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, logits):
        if self.temperature == 0:
            return int(np.argmax(logits))
        # shifted before the division, so a tiny temperature gives -inf (weight 0), never inf - inf
        z = logits.astype(np.float64)
        z = (z - z.max()) / self.temperature
        order = np.argsort(-z)
        if self.top_k:
            order = order[:self.top_k]
        p = np.exp(z[order] - z[order[0]])
        p /= p.sum()
        if self.top_p < 1:
            keep = np.searchsorted(np.cumsum(p), self.top_p) + 1
            order, p = order[:keep], p[:keep] / p[:keep].sum()
        return int(self.rng.choice(order, p=p))


class Llama:
    """A llama model ready to run: ``forward(tokens)`` extends the KV cache and returns logits.

    ``matmul``: the MatMul hook (default :class:`HostMatMul`); ``max_context`` bounds the KV cache.
    """

    def __init__(self, model: LlamaModel, *, matmul=None, max_context=512):
        self.model, self.config = model, model.config
        self.matmul = matmul or HostMatMul()
        c = self.config
        self.max_context = min(max_context, c.context)
        shape = (c.n_layers, self.max_context, c.n_kv_heads, c.head_dim)
        self.keys, self.values = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.position = 0
        self._norms = {name: w.dense() for name, w in model.weights.items() if name.endswith("norm.weight")}

    def reset(self):
        self.position = 0

    def _mm(self, name, x):
        return self.matmul(self.model.weights[name], x)

    def _attention(self, layer, h, positions):
        c, count = self.config, h.shape[0]
        q = self._mm(f"blk.{layer}.attn_q.weight", h).reshape(count, c.n_heads, c.head_dim)
        k = self._mm(f"blk.{layer}.attn_k.weight", h).reshape(count, c.n_kv_heads, c.head_dim)
        v = self._mm(f"blk.{layer}.attn_v.weight", h).reshape(count, c.n_kv_heads, c.head_dim)
        q, k = rope(q, positions, c.rope_base, c.rope_dims), rope(k, positions, c.rope_base, c.rope_dims)
        start, end = positions[0], positions[-1] + 1
        self.keys[layer, start:end], self.values[layer, start:end] = k, v
        keys, values = self.keys[layer, :end], self.values[layer, :end]
        group = c.n_heads // c.n_kv_heads
        keys, values = np.repeat(keys, group, axis=1), np.repeat(values, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, keys) * np.float32(1 / np.sqrt(c.head_dim))
        future = np.arange(end)[None, :] > positions[:, None]
        scores = np.where(future[None], -np.inf, scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attended = np.einsum("hqk,khd->qhd", scores.astype(np.float32), values).reshape(count, -1)
        return self._mm(f"blk.{layer}.attn_output.weight", attended)

    def forward(self, tokens, *, all_logits=False):
        """Run ``tokens`` (ids) at the next positions; logits (tokens or 1, vocab) float32."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        c = self.config
        if tokens.size == 0:
            raise ParameterError("forward needs at least one token")
        if self.position + tokens.size > self.max_context:
            raise ParameterError(f"{self.position + tokens.size} tokens exceed the context of {self.max_context}")
        if tokens.min() < 0 or tokens.max() >= c.vocab:
            raise ParameterError(f"token ids must be in 0..{c.vocab - 1}, not {tokens.min()}..{tokens.max()}")
        positions = np.arange(self.position, self.position + tokens.size)
        x = self.model.weights["token_embd.weight"].rows(tokens)
        for layer in range(c.n_layers):
            h = rms_norm(x, self._norms[f"blk.{layer}.attn_norm.weight"], c.rms_eps)
            x = x + self._attention(layer, h, positions)
            h = rms_norm(x, self._norms[f"blk.{layer}.ffn_norm.weight"], c.rms_eps)
            gate = self._mm(f"blk.{layer}.ffn_gate.weight", h)
            up = self._mm(f"blk.{layer}.ffn_up.weight", h)
            x = x + self._mm(f"blk.{layer}.ffn_down.weight", (gate / (1 + np.exp(-gate))) * up)
        self.position += tokens.size
        if not all_logits:
            x = x[-1:]
        x = rms_norm(x, self._norms["output_norm.weight"], c.rms_eps)
        return self.matmul(self.model.output, x)

    def generate(self, prompt, max_tokens, *, sampler=None, stop=None, on_prompt_done=None):
        """Yield up to ``max_tokens`` new token ids after ``prompt`` (ids, processed as one batch).

        Stops early at ``stop`` (an id, e.g. EOS). ``on_prompt_done()`` is called after the prompt batch.
        """
        sampler = sampler or Sampler()
        logits = self.forward(prompt)
        if on_prompt_done:
            on_prompt_done()
        for count in range(1, max_tokens + 1):
            token = sampler(logits[-1])
            yield token
            if (stop is not None and token == stop) or count == max_tokens or self.position >= self.max_context:
                return
            logits = self.forward([token])
