"""The numpy llama forward pass on the tiny committed model (and tiny variants written to tmp_path)."""

import gguf
import numpy as np
import pytest

from accelkit.errors import ModelError, ParameterError
from accelkit.sw.llm.forward import HostMatMul, Llama, Sampler
from accelkit.sw.llm.gguf_model import load_llama
from accelkit.sw.llm.tiny import TINY_PATH, write_tiny_llama
from accelkit.sw.llm.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tiny():
    return load_llama(TINY_PATH)


def test_committed_tiny_model_is_what_the_script_writes(tmp_path):
    written = write_tiny_llama(tmp_path / "t.gguf")
    assert written.read_bytes() == TINY_PATH.read_bytes()
    assert TINY_PATH.stat().st_size < 2 * 1024 * 1024


def test_fast_reader_reads_what_gguf_py_reads(tmp_path):
    """The plain-view reader (gguf_model._PlainReader) against gguf-py's own, field by field and tensor by
    tensor, on a GPT-2 BPE vocabulary (string arrays with merges) and the committed model."""
    from accelkit.sw.llm.gguf_model import _PlainReader
    for path in (TINY_PATH, write_tiny_llama(tmp_path / "bpe.gguf", tokenizer="gpt2", n_layers=1)):
        stock, fast = gguf.GGUFReader(path), _PlainReader(path)
        assert list(stock.fields) == list(fast.fields)
        for key, field in stock.fields.items():
            assert fast.fields[key].types == field.types, key
            assert fast.fields[key].contents() == field.contents(), key
        assert [t.name for t in fast.tensors] == [t.name for t in stock.tensors]
        for ours, theirs in zip(fast.tensors, stock.tensors):
            assert (ours.tensor_type, ours.data_offset, ours.n_bytes) == \
                (theirs.tensor_type, theirs.data_offset, theirs.n_bytes)
            assert ours.data.dtype == theirs.data.dtype and np.array_equal(ours.data, theirs.data)


def test_a_changed_file_is_read_again(tmp_path):
    path = write_tiny_llama(tmp_path / "m.gguf", n_layers=1)
    first = load_llama(path)
    assert load_llama(path) is first
    write_tiny_llama(path, n_layers=2)
    assert load_llama(path).config.n_layers == 2


def test_tiny_model_mixes_formats(tiny):
    types = {w.type_name for w in tiny.matmul_weights()}
    assert {"Q8_0", "Q4_0", "Q2_K", "Q3_K", "Q6_K"} <= types
    assert tiny.tied and tiny.config.n_kv_heads < tiny.config.n_heads


def test_sentencepiece_tokenizer_round_trips(tiny):
    tok = build_tokenizer(tiny.metadata)
    text = "the model and the token stream, 42!"
    ids = tok.encode(text)
    assert ids[0] == tok.bos
    assert tok.decode(ids) == text
    names = [tiny.metadata["tokenizer.ggml.tokens"][i] for i in ids]
    assert "\u2581model" in names and "<0x34>" in names      # whole-word merges and byte fallback


def test_gpt2_bpe_tokenizer_round_trips(tmp_path):
    model = load_llama(write_tiny_llama(tmp_path / "bpe.gguf", tokenizer="gpt2", n_layers=1))
    tok = build_tokenizer(model.metadata)
    text = "so the model said 2024: ünïcode"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    tokens = model.metadata["tokenizer.ggml.tokens"]
    assert "\u0120said" in [tokens[i] for i in ids]
    assert sum(tokens[i] in "0124" for i in ids) == 4           # digits split one by one (smollm pre-tokenizer)


def _reference_forward(model, tokens):
    """An independent float forward: per-head loops, rope by complex rotation, dense weights."""
    c = model.config
    dense = lambda name: model.weights[name].dense()
    x = dense("token_embd.weight")[tokens].astype(np.float64)

    def norm(v, w):
        return v / np.sqrt((v ** 2).mean(-1, keepdims=True) + c.rms_eps) * w

    def rotate(v, pos):
        pairs = v[..., 0::2] + 1j * v[..., 1::2]
        freq = c.rope_base ** (-np.arange(c.head_dim // 2) * 2 / c.head_dim)
        pairs = pairs * np.exp(1j * pos * freq)
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = pairs.real, pairs.imag
        return out

    n = len(tokens)
    for layer in range(c.n_layers):
        h = norm(x, dense(f"blk.{layer}.attn_norm.weight"))
        q = (h @ dense(f"blk.{layer}.attn_q.weight").T).reshape(n, c.n_heads, c.head_dim)
        k = (h @ dense(f"blk.{layer}.attn_k.weight").T).reshape(n, c.n_kv_heads, c.head_dim)
        v = (h @ dense(f"blk.{layer}.attn_v.weight").T).reshape(n, c.n_kv_heads, c.head_dim)
        out = np.zeros((n, c.n_heads, c.head_dim))
        for head in range(c.n_heads):
            kv = head * c.n_kv_heads // c.n_heads
            for i in range(n):
                qi = rotate(q[i, head], i)
                s = np.array([qi @ rotate(k[j, kv], j) for j in range(i + 1)]) / np.sqrt(c.head_dim)
                p = np.exp(s - s.max())
                out[i, head] = (p / p.sum()) @ v[:i + 1, kv]
        x = x + out.reshape(n, -1) @ dense(f"blk.{layer}.attn_output.weight").T
        h = norm(x, dense(f"blk.{layer}.ffn_norm.weight"))
        g, u = h @ dense(f"blk.{layer}.ffn_gate.weight").T, h @ dense(f"blk.{layer}.ffn_up.weight").T
        x = x + (g / (1 + np.exp(-g)) * u) @ dense(f"blk.{layer}.ffn_down.weight").T
    return norm(x, dense("output_norm.weight")) @ model.output.dense().T


def test_float_model_matches_an_independent_reference(tmp_path):
    model = load_llama(write_tiny_llama(tmp_path / "f32.gguf", float_weights=True))
    tokens = [1, 300, 301, 7, 400, 5]
    got = Llama(model).forward(tokens, all_logits=True)
    expected = _reference_forward(model, tokens)
    assert np.abs(got - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())


def test_quantized_forward_is_close_to_the_dequantized_float_forward(tiny):
    tokens = [1, 300, 301, 7, 400, 5]
    got = Llama(tiny).forward(tokens, all_logits=True)
    expected = _reference_forward(tiny, tokens)
    # activations quantized to 8 bits: a few percent of the logit range
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.8


def test_batched_prompt_equals_token_by_token(tiny):
    tokens = [1, 293, 514, 298, 44]
    llama = Llama(tiny)
    batched = llama.forward(tokens, all_logits=True)
    llama.reset()
    single = np.concatenate([llama.forward([t]) for t in tokens])
    np.testing.assert_array_equal(batched, single)


def test_prompt_is_one_matmul_per_weight(tiny):
    calls = []

    def hook(weight, x, host=HostMatMul()):
        calls.append((weight.name, x.shape[0]))
        return host(weight, x)

    llama = Llama(tiny, matmul=hook)
    out = list(llama.generate([1, 293, 514, 298], 3))
    per_forward = 7 * tiny.config.n_layers + 1
    assert len(out) == 3 and len(calls) == 3 * per_forward
    assert all(m == 4 for _, m in calls[:per_forward - 1]) and calls[per_forward - 1] == ("token_embd.weight", 1)
    assert all(m == 1 for _, m in calls[per_forward:])


def test_generation_greedy_and_sampled_are_reproducible(tiny):
    prompt = build_tokenizer(tiny.metadata).encode("the model")
    greedy = [list(Llama(tiny).generate(prompt, 5)) for _ in range(2)]
    assert greedy[0] == greedy[1]
    sampled = [list(Llama(tiny).generate(prompt, 5, sampler=Sampler(temperature=1.0, top_k=40, seed=3)))
               for _ in range(2)]
    assert sampled[0] == sampled[1]
    stop = greedy[0][1]
    assert list(Llama(tiny).generate(prompt, 5, stop=stop))[-1] == stop
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="temperature must be a finite number >= 0"):
            Sampler(temperature=bad)
    with pytest.raises(ParameterError, match="top_k must be an integer >= 0"):
        Sampler(temperature=1.0, top_k=-3)
    # a temperature so small that logits / temperature overflow is still the argmax, not NaN probabilities
    logits = np.array([0.5, 2.0, -1.0, 1.9])
    assert Sampler(temperature=1e-300, seed=1)(logits) == 1


def test_bad_models_are_clear_errors(tmp_path, tiny):
    text = tmp_path / "x.gguf"
    text.write_bytes(b"hello world")
    with pytest.raises(ModelError, match="not a GGUF file"):
        load_llama(text)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(TINY_PATH.read_bytes()[:300_000])
    with pytest.raises(ModelError, match="truncated"):
        load_llama(truncated)
    other = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(str(other), "gpt2")
    writer.add_tensor("x", np.zeros(4, np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    with pytest.raises(ModelError, match="architecture 'gpt2' is not supported"):
        load_llama(other)
    with pytest.raises(ModelError, match="no such model file"):
        load_llama(tmp_path / "missing.gguf")
    with pytest.raises(ParameterError, match="token ids must be in 0..518"):
        Llama(tiny).forward([5000])
