"""Block format specs against gguf-py's dequantizers (bit for bit) and ggml's quantizers."""

import ctypes
from pathlib import Path

import gguf
import numpy as np
import pytest

from accelkit.driver.ggml import (FORMATS, WEIGHT_FORMATS, get_format, random_blocks, dequantize, unpack, encode,
                                  pack, quantize_activations, block_sums, combine, matmul_reference)
from accelkit.errors import ParameterError

GGUF_DEQUANTIZES = [name for name in WEIGHT_FORMATS]


@pytest.mark.parametrize("name", GGUF_DEQUANTIZES)
def test_unpack_equals_gguf_dequantize_bit_for_bit(name):
    spec = get_format(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    blocks = random_blocks(spec, rng, 300)
    ours = dequantize(spec, blocks)
    theirs = gguf.quants.dequantize(blocks.reshape(-1), gguf.GGMLQuantizationType[name]).reshape(-1)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("name", list(FORMATS))
def test_encode_is_the_inverse_of_unpack(name):
    spec = get_format(name)
    blocks = random_blocks(spec, np.random.default_rng(1), 50)
    np.testing.assert_array_equal(encode(spec, unpack(spec, blocks)), blocks)


@pytest.mark.parametrize("name,bound", [("Q8_0", 0.01), ("Q4_0", 0.12), ("Q2_K", 0.4), ("Q3_K", 0.2),
                                        ("Q4_K", 0.1), ("Q6_K", 0.03)])
def test_pack_round_trips_through_gguf(name, bound):
    spec = get_format(name)
    x = np.random.default_rng(2).standard_normal((6, 512)).astype(np.float32)
    packed = pack(spec, x)
    assert packed.shape == (6, 512 // spec.block * spec.block_bytes)
    back = gguf.quants.dequantize(packed.reshape(-1), gguf.GGMLQuantizationType[name]).reshape(x.shape)
    assert np.linalg.norm(back - x) / np.linalg.norm(x) < bound


def test_pack_q8_0_and_q4_0_are_ggml_reference_bytes():
    x = np.random.default_rng(3).standard_normal((4, 256)).astype(np.float32)
    for name in ("Q8_0", "Q4_0"):
        expected = gguf.quants.quantize(x, gguf.GGMLQuantizationType[name])
        np.testing.assert_array_equal(pack(get_format(name), x), expected)


def test_q8_0_reference_quantizer_matches_ggml_reference_bytes():
    x = np.random.default_rng(4).standard_normal((5, 128)).astype(np.float32) * 3
    _, packed = quantize_activations(x, "Q8_0", "ref")
    np.testing.assert_array_equal(packed, gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0))


def test_avx2_quantizer_rounds_halves_to_even():
    # 127 / amax with amax = 127 gives an exact 1.0: 2.5 -> 2 (even) where the reference gives 3
    x = np.zeros((1, 32), np.float32)
    x[0, 0], x[0, 1] = 127, 2.5
    ref, _ = quantize_activations(x, "Q8_0", "ref")
    avx2, _ = quantize_activations(x, "Q8_0", "avx2")
    assert ref.q[0, 1] == 3 and avx2.q[0, 1] == 2


def test_q8_k_quantizer_and_bsums():
    x = np.random.default_rng(5).standard_normal((2, 512)).astype(np.float32)
    u, packed = quantize_activations(x, "Q8_K")
    spec = get_format("Q8_K")
    assert packed.shape == (2, 2 * spec.block_bytes)
    bsums = packed.reshape(-1, spec.block_bytes)[:, 260:].copy().view(np.int16)
    np.testing.assert_array_equal(bsums, u.q.reshape(-1, 16, 16).sum(axis=2))
    # the largest magnitude maps to -127 exactly (ggml's iscale = -127 / max)
    assert (np.abs(u.q).max(axis=1) == 127).all()
    np.testing.assert_allclose(u.d[:, None] * u.q, x.reshape(-1, 256), atol=np.abs(x).max() / 127)


@pytest.mark.parametrize("fmt, quantizer", [("Q8_0", "ref"), ("Q8_0", "avx2"), ("Q8_K", "ref")])
def test_unpacked_activations_without_the_bytes_equal_the_decoded_bytes(fmt, quantizer):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 512)).astype(np.float32) * rng.uniform(0.01, 100, (3, 1)).astype(np.float32)
    x[1, :256] = 0                     # all-zero blocks: scale 0
    x[2, 7] = -np.abs(x[2]).max() * 2  # a negative peak
    decoded, _ = quantize_activations(x, fmt, quantizer)
    direct, none = quantize_activations(x, fmt, quantizer, packed=False)
    assert none is None
    for field in ("q", "scales", "mins", "d", "dmin"):
        np.testing.assert_array_equal(getattr(direct, field), getattr(decoded, field), err_msg=field)


@pytest.mark.parametrize("name", WEIGHT_FORMATS)
def test_integer_block_sums_equal_the_dequantized_dot_with_unit_scales(name):
    """With d = dmin = 1 on both sides, isum - msum is the exact dot of the dequantized operands."""
    spec = get_format(name)
    aspec = get_format(spec.activation)
    rng = np.random.default_rng(6)
    n, m, blocks = 3, 2, 2
    w = unpack(spec, random_blocks(spec, rng, n * blocks))
    w.d[:], w.dmin[:] = 1, 1
    a = unpack(aspec, random_blocks(aspec, rng, m * blocks))
    a.d[:] = 1
    wf = dequantize(spec, encode(spec, w)).reshape(n, -1).astype(np.float64)
    af = dequantize(aspec, encode(aspec, a)).reshape(m, -1).astype(np.float64)
    isum, msum = block_sums(spec, w, a, n, m)
    np.testing.assert_array_equal((isum - msum).sum(axis=2).T, (af @ wf.T).astype(np.int64))
    out = combine(w, a, isum, msum, n, m)
    np.testing.assert_allclose(out, af @ wf.T, rtol=1e-6)


@pytest.mark.parametrize("name", WEIGHT_FORMATS)
def test_matmul_reference_is_close_to_the_float_matmul(name):
    spec = get_format(name)
    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 512)).astype(np.float32)
    x = rng.standard_normal((3, 512)).astype(np.float32)
    packed = pack(spec, w)
    exact = x @ dequantize(spec, packed, (8, 512)).T
    got = matmul_reference(spec, packed, x)
    assert np.abs(got - exact).max() < 0.05 * np.abs(exact).max()


def test_bad_input_is_a_clear_error():
    with pytest.raises(ParameterError, match="no block format named 'Q9_9'"):
        get_format("Q9_9")
    with pytest.raises(ParameterError, match="not whole Q4_0 blocks of 18 bytes"):
        unpack(get_format("Q4_0"), np.zeros(20, np.uint8))
    with pytest.raises(ParameterError, match="multiple of 256 elements, not 576"):
        pack(get_format("Q2_K"), np.zeros((1, 576), np.float32))
    with pytest.raises(ParameterError, match="Q4_0 weights take Q8_0 activations, not Q8_K"):
        from accelkit.driver.ggml.dot import _check_pair
        _check_pair(get_format("Q4_0"), get_format("Q8_K"))


def _ggml_library():
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (optional oracle: ggml's own quantizer) "
                                                        "is not installed; it builds from source in ~7 minutes")
    for candidate in sorted(Path(llama_cpp.__file__).parent.rglob("libggml-base.so*")):
        return ctypes.CDLL(str(candidate))
    pytest.skip("llama-cpp-python has no libggml-base shared library to call ggml_quantize_chunk in")


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0", "Q2_K", "Q3_K", "Q4_K", "Q6_K"])
def test_ggml_quantizer_bytes_unpack_like_gguf(name):
    """Blocks made by ggml's own quantizer read back bit for bit (optional oracle)."""
    lib = _ggml_library()
    spec = get_format(name)
    x = np.random.default_rng(8).standard_normal((4, 512)).astype(np.float32)
    out = np.zeros((4, 512 // spec.block * spec.block_bytes), np.uint8)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    written = lib.ggml_quantize_chunk(spec.ggml_type, x.ctypes.data, out.ctypes.data, 0, 4, 512, None)
    assert written == out.size
    np.testing.assert_array_equal(encode(spec, unpack(spec, out)).reshape(out.shape), out)
    theirs = gguf.quants.dequantize(out.reshape(-1), gguf.GGMLQuantizationType[name]).reshape(-1)
    np.testing.assert_array_equal(dequantize(spec, out), theirs)
