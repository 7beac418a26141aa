"""The model's own tokenizer, built from the GGUF vocabulary with the `tokenizers` library.

Two kinds of llama GGUF vocabulary:

* ``gpt2``: byte-level BPE with merges (SmolLM2). The pre-tokenizer follows
  ``tokenizer.ggml.pre`` (``smollm`` and its kin split digits one by one before the
  GPT-2 regex, as llama.cpp does).
* ``llama``: SentencePiece-style, scores instead of merges. llama.cpp merges the
  highest-scoring adjacent pair first; a BPE whose merges are ranked by the score
  of the merged token follows the same rule, with unknown bytes falling back to
  ``<0xNN>`` tokens.
"""

from tokenizers import Tokenizer, AddedToken, decoders, models, normalizers, pre_tokenizers

from ...errors import ModelError

__all__ = ["build_tokenizer", "LlamaTokenizer"]

CONTROL = 3
# llama.cpp's pre-tokenizer types that split every digit before the GPT-2 regex
_DIGIT_SPLITTERS = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"}


class LlamaTokenizer:
    """Text to token ids and back; ``bos``/``eos`` ids and whether a BOS is prepended."""

    def __init__(self, *, tokenizer, bos, eos, add_bos, kind):
        self.tokenizer, self.bos, self.eos, self.add_bos, self.kind = tokenizer, bos, eos, add_bos, kind

    def encode(self, text) -> list:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ([self.bos] if self.add_bos and self.bos is not None else []) + ids

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def _spm_merges(tokens, scores, normal):
    ranked = []
    index = {t: i for i, t in enumerate(tokens) if normal[i]}
    for token, i in index.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in index and right in index:
                ranked.append((-scores[i], i, left, right))
    ranked.sort()
    return [(left, right) for _, _, left, right in ranked]


def build_tokenizer(metadata, path="model") -> LlamaTokenizer:
    """A :class:`LlamaTokenizer` from a GGUF's ``tokenizer.ggml.*`` metadata."""
    kind = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if not tokens:
        raise ModelError(f"{path}: the GGUF carries no vocabulary (tokenizer.ggml.tokens)")
    types = metadata.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    vocab = {token: i for i, token in enumerate(tokens)}
    bos = metadata.get("tokenizer.ggml.bos_token_id")
    eos = metadata.get("tokenizer.ggml.eos_token_id")
    if kind == "gpt2":
        merges = [tuple(m.split(" ", 1)) for m in metadata.get("tokenizer.ggml.merges", [])]
        tokenizer = Tokenizer(models.BPE(vocab, merges))
        regex = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        if metadata.get("tokenizer.ggml.pre") in _DIGIT_SPLITTERS:
            tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), regex])
        else:
            tokenizer.pre_tokenizer = regex
        tokenizer.decoder = decoders.ByteLevel()
        add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", False))
    elif kind == "llama":
        scores = metadata.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
        normal = [t == 1 for t in types]
        unk = metadata.get("tokenizer.ggml.unknown_token_id", 0)
        tokenizer = Tokenizer(models.BPE(vocab, _spm_merges(tokens, scores, normal), unk_token=tokens[unk],
                                         byte_fallback=True, fuse_unk=True))
        steps = [normalizers.Replace(" ", "\u2581")]
        if metadata.get("tokenizer.ggml.add_space_prefix", True):
            steps.insert(0, normalizers.Prepend("\u2581"))
        tokenizer.normalizer = normalizers.Sequence(steps)
        strip = [decoders.Strip(" ", 1, 0)] if metadata.get("tokenizer.ggml.add_space_prefix", True) else []
        tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                               decoders.Fuse(), *strip])
        add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", True))
    else:
        raise ModelError(f"{path}: tokenizer model {kind!r} is not supported; accepted: 'gpt2' (BPE), "
                         f"'llama' (SentencePiece)")
    control = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == CONTROL]
    if control:
        tokenizer.add_special_tokens(control)
    return LlamaTokenizer(tokenizer=tokenizer, bos=bos, eos=eos, add_bos=add_bos, kind=kind)
