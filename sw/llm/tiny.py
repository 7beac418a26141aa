"""Write a tiny random llama GGUF (run once; the result is committed as ``models/tiny_llama.gguf``).

    python -m accelkit.sw.llm.tiny [OUT.gguf]

Widths are multiples of 256 so every block format applies; the MatMul weights
mix Q8_0, Q4_0, Q2_K and Q3_K (the formats the BFP accelerator takes) and one
Q6_K (which runs on the host), so one model exercises format switching. The
vocabulary is SentencePiece-style (byte fallback) or, with ``tokenizer="gpt2"``,
a small byte-level BPE. Weights are seeded random numbers: outputs mean nothing,
but every path of the forward pass runs.
"""

import sys
from pathlib import Path

import gguf
import numpy as np

from ...driver.ggml import get_format, pack

__all__ = ["TINY_TYPES", "write_tiny_llama", "TINY_PATH"]

TINY_PATH = Path(__file__).parent / "models" / "tiny_llama.gguf"

#: MatMul weight formats per layer (the token embedding, tied to the output, is Q8_0)
TINY_TYPES = (
    {"attn_q": "Q4_0", "attn_k": "Q8_0", "attn_v": "Q4_0", "attn_output": "Q3_K",
     "ffn_gate": "Q2_K", "ffn_up": "Q4_0", "ffn_down": "Q3_K"},
    {"attn_q": "Q2_K", "attn_k": "Q3_K", "attn_v": "Q8_0", "attn_output": "Q4_0",
     "ffn_gate": "Q3_K", "ffn_up": "Q2_K", "ffn_down": "Q6_K"},
)

_WORDS = ("the of and to in is was that for it with as on be at by this had not are but from or have an they "
          "which one you were all her she there would their we him been has when who will more no if out so "
          "said what up its about into than them can only other new some could time these two may then do "
          "first any my now such like our over man me even most made after also did many before must through "
          "accelerator block float integer stream weight token model llama").split()


def _spm_vocab():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    pieces = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(".,!?'")
    for word in _WORDS:
        text = "\u2581" + word
        for end in range(2, len(text) + 1):       # every prefix, so each word is reachable by merges
            if text[:end] not in pieces:
                pieces.append(text[:end])
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    # longer pieces merge later in SentencePiece's order: score by length, ties by position
    scores = [0.0] * 259 + [float(-len(p)) - i * 1e-4 for i, p in enumerate(pieces)]
    return tokens, types, scores


def _gpt2_vocab():
    # GPT-2's printable mapping of the 256 bytes
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    tokens = ["<|endoftext|>"] + [mapping[b] for b in range(256)]
    merges = []
    for word in _WORDS[:60]:
        text = "\u0120" + word
        current = text[0]
        for ch in text[1:]:
            merged = current + ch
            if merged not in tokens:
                merges.append(f"{current} {ch}")
                tokens.append(merged)
            current = merged
    types = [gguf.TokenType.CONTROL] + [gguf.TokenType.NORMAL] * (len(tokens) - 1)
    return tokens, types, merges


def write_tiny_llama(path, *, seed=0, tokenizer="llama", dim=256, ffn_dim=512, n_layers=2, n_heads=4,
                     n_kv_heads=2, types=TINY_TYPES, float_weights=False):
    """Write the tiny model to ``path``; ``float_weights`` stores every matrix as F32 instead."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    head_dim = dim // n_heads
    if tokenizer == "llama":
        tokens, token_types, scores = _spm_vocab()
        writer.add_tokenizer_model("llama")
        writer.add_token_scores(scores)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_unk_token_id(0)
        writer.add_add_bos_token(True)
    else:
        tokens, token_types, merges = _gpt2_vocab()
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("smollm")
        writer.add_token_merges(merges)
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(0)
        writer.add_add_bos_token(False)
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    vocab = len(tokens)
    writer.add_block_count(n_layers)
    writer.add_context_length(256)
    writer.add_embedding_length(dim)
    writer.add_feed_forward_length(ffn_dim)
    writer.add_head_count(n_heads)
    writer.add_head_count_kv(n_kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)

    def matrix(name, rows, cols, fmt):
        values = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
        if float_weights or fmt == "F32":
            writer.add_tensor(name, values)
        else:
            spec = get_format(fmt)
            writer.add_tensor(name, pack(spec, values), raw_dtype=gguf.GGMLQuantizationType(spec.ggml_type))

    def norm(name, size):
        writer.add_tensor(name, (1 + 0.1 * rng.standard_normal(size)).astype(np.float32))

    matrix("token_embd.weight", vocab, dim, "Q8_0")
    shapes = {"attn_q": (dim, dim), "attn_k": (n_kv_heads * head_dim, dim), "attn_v": (n_kv_heads * head_dim, dim),
              "attn_output": (dim, dim), "ffn_gate": (ffn_dim, dim), "ffn_up": (ffn_dim, dim),
              "ffn_down": (dim, ffn_dim)}
    for layer in range(n_layers):
        norm(f"blk.{layer}.attn_norm.weight", dim)
        for kind, (rows, cols) in shapes.items():
            matrix(f"blk.{layer}.{kind}.weight", rows, cols, types[layer % len(types)][kind])
        norm(f"blk.{layer}.ffn_norm.weight", dim)
    norm("output_norm.weight", dim)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else TINY_PATH
    out.parent.mkdir(parents=True, exist_ok=True)
    print(write_tiny_llama(out), out.stat().st_size, "bytes")
