"""Quantized MatMul semantics: activation quantizers and integer block dot products (the accelerator's golden).

ggml computes ``W @ x`` for a quantized weight row by quantizing ``x`` to the
weight format's activation partner (Q8_0 or Q8_K) and summing, per block,

* ``isum = sum_j scale_j * sum_{i in sub-block j} q_w[i] * q_a[i]`` (exact int32), and
* ``msum = sum_j min_j * sum_{i in j} q_a[i]`` (formats with mins; Q8_K's ``bsums``),

then combining in float: ``sum_b (d_w * d_a) * isum - (dmin_w * d_a) * msum``. The
integer sums are the bit-exact contract with the accelerator; :func:`combine` is
the one float combine used everywhere in accelkit, in a fixed order
(blocks left to right, float32), so every backend gives the same float bits.
"""

import numpy as np

from ...errors import ParameterError
from .codec import Unpacked, encode, unpack
from .formats import BlockFormat, get_format

__all__ = ["ACTIVATION_QUANTIZERS", "quantize_activations", "prepare_weights", "block_sums", "combine", "matmul_reference"]

#: named host quantizers for activations: ggml's reference ``quantize_row_q8_0_ref`` (127/amax via 1/d,
#: halves away from zero) and the x86 AVX2 ``quantize_row_q8_0`` (127/amax directly, halves to even);
#: Q8_K has only the reference quantizer (x86 uses it too).
ACTIVATION_QUANTIZERS = ("ref", "avx2")


def quantize_activations(x, fmt="Q8_0", quantizer="ref", *, packed=True):
    """Rows ``x`` (m, k) as ``fmt`` blocks: returns (Unpacked, packed uint8 blocks (m, k / block * bytes)).

    ``packed=False`` skips the bytes (returns None for them): the Unpacked values are the same either way,
    the codes and the fp16-rounded scales being exactly what the blocks would hold (tested)."""
    spec = get_format(fmt)
    if spec.name not in ("Q8_0", "Q8_K"):
        raise ParameterError(f"activations are quantized to Q8_0 or Q8_K, not {spec.name}")
    if quantizer not in ACTIVATION_QUANTIZERS:
        raise ParameterError(f"activation quantizer must be one of {', '.join(ACTIVATION_QUANTIZERS)}, "
                             f"not {quantizer!r}")
    x = np.asarray(x, dtype=np.float32)
    m, k = x.shape
    if k % spec.block:
        raise ParameterError(f"{spec.name} activations need rows that are a multiple of {spec.block}, not {k}")
    blocks = x.reshape(-1, spec.block)
    n = blocks.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        if spec.name == "Q8_0":
            amax = np.abs(blocks).max(axis=1)
            d = amax / np.float32(127)
            if quantizer == "ref":
                inverse = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
                q = blocks * inverse[:, None]
                q = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))
            else:
                inverse = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
                q = np.rint(blocks * inverse[:, None])
            d = d.astype(np.float16).astype(np.float32)
        else:
            index = np.abs(blocks).argmax(axis=1)
            peak = blocks[np.arange(n), index]
            iscale = np.where(peak != 0, np.float32(-127) / peak, np.float32(0)).astype(np.float32)
            # ggml's nearest_int adds 1.5 * 2^23: halves to even
            q = np.minimum(np.rint(iscale[:, None] * blocks), 127)
            d = np.where(peak != 0, np.float32(1) / iscale, np.float32(0)).astype(np.float32)
    u = Unpacked(q.astype(np.int32), np.ones((n, spec.sub_blocks), np.int32),
                 np.zeros((n, spec.sub_blocks), np.int32), d.astype(np.float32), np.zeros(n, np.float32))
    if not packed:
        return u, None
    blocks = encode(spec, u).reshape(m, -1)
    return unpack(spec, blocks), blocks


def _check_pair(wspec, aspec):
    if wspec.activation != aspec.name:
        raise ParameterError(f"{wspec.name} weights take {wspec.activation} activations, not {aspec.name}")


def prepare_weights(wspec: BlockFormat, w: Unpacked, n_rows):
    """Weights ready for :func:`block_sums`: codes times sub-block scales as floats laid out (rows, blocks,
    block), and the sub-block mins (rows, blocks, sub_blocks) or None. float32 when every partial sum of a
    block's dot product is an integer below 2^24 (then any summation order is exact), float64 otherwise
    (Q4_K, Q6_K). Row-major rows keep the one-token product a single pass over memory."""
    blocks = w.q.shape[0] // n_rows
    lo, hi = wspec.quants.value_range()
    scale_peak = max(abs(v) for v in wspec.scales.value_range()) if wspec.scales else 1
    min_peak = max(abs(v) for v in wspec.mins.value_range()) if wspec.mins else 0
    peak = wspec.block * 128 * max(max(abs(lo), abs(hi)) * scale_peak, min_peak)
    dtype = np.float32 if peak < 1 << 24 else np.float64
    scaled = w.q.reshape(-1, wspec.sub_blocks, wspec.sub_block) * w.scales[:, :, None]
    scaled = scaled.astype(dtype).reshape(n_rows, blocks, wspec.block)
    mins = None
    if wspec.mins is not None:
        mins = w.mins.astype(dtype).reshape(n_rows, blocks, wspec.sub_blocks)
    return scaled, mins


def _per_block(weights, acts):
    """(n, m, blocks) sums over the last axis of weights (n, blocks, e) times activations (m, blocks, e), laid out
    (blocks, m, n) in memory (what :func:`combine` walks)."""
    if acts.shape[0] <= 8:
        # one pass over the weights (numpy's batched matmul walks them block by block, ~10x slower here)
        return np.einsum("nbe,mbe->bmn", weights, acts).transpose(2, 1, 0)
    return np.stack([acts[:, b, :] @ weights[:, b, :].T for b in range(weights.shape[1])]).transpose(2, 1, 0)


def block_sums(wspec: BlockFormat, w: Unpacked, a: Unpacked, n_rows, m_rows, prepared=None):
    """Integer block sums of every (weight row, activation row, block): ``isum``, ``msum`` int64 arrays of shape
    (n_rows, m_rows, blocks per row). ``w`` holds n_rows rows of blocks, ``a`` m_rows rows; ``prepared`` is
    :func:`prepare_weights` of ``w`` (computed here when not given)."""
    scaled, mins = prepared if prepared is not None else prepare_weights(wspec, w, n_rows)
    blocks = scaled.shape[1]
    aq = a.q.reshape(m_rows, blocks, wspec.block).astype(scaled.dtype)
    isum = _per_block(scaled, aq).astype(np.int64)
    if mins is None:
        return isum, np.zeros_like(isum)
    asub = aq.reshape(m_rows, blocks, wspec.sub_blocks, wspec.sub_block).sum(axis=3)
    return isum, _per_block(mins, asub).astype(np.int64)


def combine(w: Unpacked, a: Unpacked, isum, msum, n_rows, m_rows):
    """float32 outputs (m_rows, n_rows) from integer block sums, blocks added left to right in float32."""
    blocks = w.q.shape[0] // n_rows
    # worked on as (blocks, m, n): each block's terms are one contiguous slab to add
    wd = w.d.reshape(n_rows, blocks).T[:, None, :]
    ad = a.d.reshape(m_rows, blocks).T[:, :, None]
    terms = (wd * ad).astype(np.float32) * isum.transpose(2, 1, 0).astype(np.float32)
    if msum.any():
        wm = w.dmin.reshape(n_rows, blocks).T[:, None, :]
        terms = terms - (wm * ad).astype(np.float32) * msum.transpose(2, 1, 0).astype(np.float32)
    # fixed order, blocks left to right in float32: every backend reproduces it
    total = terms[0].copy()
    for b in range(1, blocks):
        total += terms[b]
    return total


def matmul_reference(wspec, weights, x, quantizer="ref"):
    """``x @ W.T`` as ggml computes it: ``weights`` (n, k / block * bytes) packed rows, ``x`` (m, k) float32."""
    wspec = get_format(wspec) if isinstance(wspec, str) else wspec
    weights = np.asarray(weights)
    n = weights.shape[0]
    w = unpack(wspec, weights)
    a, _ = quantize_activations(x, wspec.activation, quantizer)
    _check_pair(wspec, get_format(wspec.activation))
    isum, msum = block_sums(wspec, w, a, n, x.shape[0])
    return combine(w, a, isum, msum, n, x.shape[0])
