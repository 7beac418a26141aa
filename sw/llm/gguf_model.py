"""A llama-architecture GGUF file as plain data: hyperparameters, weights (packed as stored) and vocabulary.

Reading is gguf-py's ``GGUFReader`` (memory-mapped); this module checks what a
llama forward pass needs and turns every problem into a :class:`ModelError`
naming the file, what was found and what is accepted.

Speed: gguf-py parses every metadata value through slices of a ``np.memmap``,
and a memmap slice costs far more than a plain array's (its ``__array_finalize__``
and ``__getitem__`` run in Python). A GGUF vocabulary is ~100,000 strings
(SmolLM2's tokens and merges), so the stock reader took 4.3 s of CPU (17 s wall
under load) on SmolLM2; :class:`_PlainReader` reads the same mapping through a
plain ndarray view (still memory-mapped, nothing is copied) and takes 1.1 s.
A loaded model is also kept per (path, size, mtime) for the process, so a
benchmark that generates several times with one file reads it once.
"""

import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

from ...driver.ggml import format_of_type
from ...errors import ModelError

__all__ = ["Weight", "LlamaConfig", "LlamaModel", "load_llama", "MATMUL_KINDS"]

#: the per-layer MatMul weights of a llama block, and the output projection
MATMUL_KINDS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "output")


@dataclass
class Weight:
    """One tensor: ``shape`` is (rows, columns) as numpy sees it (ggml's ne reversed); ``data`` the stored
    array (uint8 rows of packed blocks for quantized types). ``spec`` is the block format when accelkit
    describes the type (the accelerator can take it), else None."""

    name: str
    ggml_type: gguf.GGMLQuantizationType
    shape: tuple
    data: np.ndarray
    spec: object = None
    _dense: np.ndarray = field(default=None, repr=False)

    @property
    def type_name(self):
        return self.ggml_type.name

    @property
    def kind(self):
        """``attn_q`` ... ``output`` (the MatMul kind; a tied token embedding is used as the output), or the
        name's last part."""
        if self.name in ("output.weight", "token_embd.weight"):
            return "output"
        parts = self.name.split(".")
        return parts[-2] if len(parts) >= 2 else parts[0]

    @property
    def nbytes(self):
        return int(self.data.nbytes)

    def dense(self) -> np.ndarray:
        """float32 values (dequantized once and kept)."""
        if self._dense is None:
            if self.ggml_type == gguf.GGMLQuantizationType.F32:
                values = np.asarray(self.data, dtype=np.float32)
            else:
                values = gguf.quants.dequantize(np.asarray(self.data), self.ggml_type)
            self._dense = np.ascontiguousarray(values.reshape(self.shape), dtype=np.float32)
        return self._dense

    def rows(self, index) -> np.ndarray:
        """float32 rows ``index`` (embedding lookup) without dequantizing the whole matrix."""
        raw = np.asarray(self.data)[index]
        if self.ggml_type == gguf.GGMLQuantizationType.F32:
            return np.asarray(raw, dtype=np.float32)
        return gguf.quants.dequantize(raw, self.ggml_type).reshape(len(index), self.shape[1]).astype(np.float32)


@dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters of a llama model."""

    n_layers: int
    dim: int
    ffn_dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    context: int
    rms_eps: float
    rope_base: float
    rope_dims: int


@dataclass
class LlamaModel:
    """Weights by name, the config and the vocabulary metadata of a llama GGUF."""

    path: Path
    config: LlamaConfig
    weights: dict
    metadata: dict

    def weight(self, name):
        return self.weights[name]

    @property
    def output(self) -> Weight:
        """The output projection (the token embedding when tied)."""
        return self.weights.get("output.weight") or self.weights["token_embd.weight"]

    @property
    def tied(self):
        return "output.weight" not in self.weights

    def matmul_weights(self):
        """Every MatMul weight in execution order (per layer, then the output)."""
        order = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
        names = [f"blk.{i}.{kind}.weight" for i in range(self.config.n_layers) for kind in order]
        return [self.weights[n] for n in names] + [self.output]


class _PlainReader(gguf.GGUFReader):
    """``GGUFReader`` whose field and tensor reads slice a plain ndarray view of the file's mapping.

    Overrides gguf-py's internal ``_get`` (pinned gguf==0.19.0; tests/sw/llm compare every field and tensor
    with the stock reader's, so a gguf release that changes ``_get`` fails there). A byte-swapped file goes
    through the stock path.
    """

    def __init__(self, path):
        self._plain = np.memmap(path, mode="r").view(np.ndarray)
        super().__init__(path)

    def _get(self, offset, dtype, count=1, override_order=None):
        order = self.byte_order if override_order is None else override_order
        if order not in ("I", "<") or sys.byteorder != "little":
            return super()._get(offset, dtype, count, override_order)
        dtype = np.dtype(dtype)
        count = int(count)
        return self._plain[offset:offset + dtype.itemsize * count].view(dtype)[:count]


def _field(reader, key, default=None, *, path):
    found = reader.fields.get(key)
    if found is None:
        if default is None:
            raise ModelError(f"{path}: the GGUF has no {key!r}, which a llama model needs")
        return default
    return found.contents()


def load_llama(path) -> LlamaModel:
    """Read a llama-architecture GGUF; raises :class:`ModelError` for anything else or a damaged file.

    The model is shared for the process while the file keeps its size and modification time (weights are
    read-only views of the file's mapping).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    stat = path.stat()
    return _load_llama(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_llama(path, size, mtime_ns):
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelError(f"{path}: not a GGUF file (it starts with {magic!r}, a GGUF starts with b'GGUF')")
    try:
        reader = _PlainReader(path)
    except (ValueError, IndexError, KeyError, OSError) as error:
        raise ModelError(f"{path}: cannot read the GGUF ({type(error).__name__}: {error}); "
                         f"the file is truncated or damaged") from None
    arch = _field(reader, "general.architecture", "", path=path)
    if arch != "llama":
        raise ModelError(f"{path}: architecture {arch or '(none)'!r} is not supported; accelkit llm runs "
                         f"llama-architecture models")
    weights = {}
    for tensor in reader.tensors:
        end = tensor.data_offset + tensor.n_bytes
        if end > size:
            raise ModelError(f"{path}: tensor {tensor.name} ends at byte {end} but the file has {size} bytes; "
                             f"the file is truncated")
        shape = tuple(int(v) for v in reversed(tensor.shape.tolist()))
        if len(shape) == 1:
            shape = (shape[0],)
        weights[tensor.name] = Weight(tensor.name, gguf.GGMLQuantizationType(tensor.tensor_type), shape,
                                      tensor.data, format_of_type(tensor.tensor_type))

    def get(key, default=None):
        return _field(reader, f"llama.{key}", default, path=path)

    n_heads = int(get("attention.head_count"))
    dim = int(get("embedding_length"))
    head_dim = dim // n_heads
    if "token_embd.weight" not in weights:
        raise ModelError(f"{path}: no token_embd.weight tensor")
    vocab = weights["token_embd.weight"].shape[0]
    config = LlamaConfig(
        n_layers=int(get("block_count")), dim=dim, ffn_dim=int(get("feed_forward_length")), n_heads=n_heads,
        n_kv_heads=int(get("attention.head_count_kv", n_heads)), head_dim=head_dim, vocab=vocab,
        context=int(get("context_length", 2048)), rms_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_base=float(get("rope.freq_base", 10000.0)), rope_dims=int(get("rope.dimension_count", head_dim)))
    kinds = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")
    missing = [f"blk.{i}.{k}.weight" for i in range(config.n_layers) for k in kinds
               if f"blk.{i}.{k}.weight" not in weights]
    if "output_norm.weight" not in weights:
        missing.append("output_norm.weight")
    if missing:
        raise ModelError(f"{path}: missing llama tensors: {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}")
    metadata = {key: f.contents() for key, f in reader.fields.items()
                if key.startswith("tokenizer.") and key != "tokenizer.chat_template"}
    return LlamaModel(path, config, weights, metadata)
