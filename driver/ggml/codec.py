"""Generic unpack, dequantize, encode and pack of any :class:`~.formats.BlockFormat`.

Everything here is driven by the spec; nothing names a format. Rows are numpy
arrays whose last axis holds whole blocks (``uint8``, ``block_bytes`` per block)
or elements (``block`` per block).
"""

from dataclasses import dataclass

import numpy as np
import gguf

from ...errors import ParameterError
from .formats import BlockFormat, Codes

__all__ = ["Unpacked", "as_blocks", "unpack", "dequantize", "encode", "pack", "random_blocks"]


@dataclass
class Unpacked:
    """The integer content of ``n`` blocks: ``q`` (n, block) values, ``scales``/``mins`` (n, sub_blocks)
    (ones/zeros when the format has none), ``d``/``dmin`` (n,) float32."""

    q: np.ndarray
    scales: np.ndarray
    mins: np.ndarray
    d: np.ndarray
    dmin: np.ndarray


def as_blocks(spec: BlockFormat, data) -> np.ndarray:
    """``data`` (bytes or uint8 array, any shape whose size is whole blocks) as (n, block_bytes) uint8."""
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) \
        else np.ascontiguousarray(data).view(np.uint8)
    if raw.size % spec.block_bytes:
        raise ParameterError(f"{raw.size} bytes are not whole {spec.name} blocks of {spec.block_bytes} bytes")
    return raw.reshape(-1, spec.block_bytes)


def _field(spec, blocks, name):
    start, size = spec.offsets[name]
    return blocks[:, start:start + size]


def _codes(spec, blocks, codes: Codes):
    # assembled in the narrowest unsigned type that holds a code (bytes for every ggml format): a model's
    # weights are unpacked once per load, and int32 temporaries made that most of a first forward pass
    wide = np.uint8 if codes.bits <= 8 else np.uint32
    out = np.zeros((blocks.shape[0], codes.count), dtype=wide)
    for p in codes.pieces:
        run = _field(spec, blocks, p.field)[:, p.byte:p.byte + p.count].astype(wide, copy=False)
        out[:, p.first:p.first + p.count] |= ((run >> wide(p.shift)) & wide((1 << p.width) - 1)) << wide(p.to_bit)
    if codes.signed:
        return out.astype(np.int32) - ((out >= 1 << (codes.bits - 1)).astype(np.int32) << codes.bits)
    return out.astype(np.int32) - codes.offset


def _put_codes(spec, blocks, codes: Codes, values):
    values = np.asarray(values, dtype=np.int64)
    lo, hi = codes.value_range()
    if values.size and (values.min() < lo or values.max() > hi):
        raise ParameterError(f"{spec.name} codes must lie in {lo}..{hi}, not {values.min()}..{values.max()}")
    raw = (values & ((1 << codes.bits) - 1)) if codes.signed else values + codes.offset
    for p in codes.pieces:
        start, _ = spec.offsets[p.field]
        part = (raw[:, p.first:p.first + p.count] >> p.to_bit) & ((1 << p.width) - 1)
        view = blocks[:, start + p.byte:start + p.byte + p.count]
        view |= (part << p.shift).astype(np.uint8)


def _float(spec, blocks, name):
    dtype = np.dtype(spec.d_dtype)
    return np.ascontiguousarray(_field(spec, blocks, name)).view(dtype)[:, 0].astype(np.float32)


def unpack(spec: BlockFormat, data) -> Unpacked:
    """The codes, sub-block scales and mins and the float super-scales of every block of ``data``."""
    blocks = as_blocks(spec, data)
    n = blocks.shape[0]
    q = _codes(spec, blocks, spec.quants)
    scales = _codes(spec, blocks, spec.scales) if spec.scales else np.ones((n, spec.sub_blocks), np.int32)
    mins = _codes(spec, blocks, spec.mins) if spec.mins else np.zeros((n, spec.sub_blocks), np.int32)
    d = _float(spec, blocks, "d")
    dmin = _float(spec, blocks, spec.dmin) if spec.dmin else np.zeros(n, np.float32)
    return Unpacked(q, scales, mins, d, dmin)


def dequantize(spec: BlockFormat, data, shape=None) -> np.ndarray:
    """float32 elements of ``data``, computed as ggml's ``dequantize_row_*`` does (bit for bit)."""
    u = unpack(spec, data)
    n, subs = u.q.shape[0], spec.sub_blocks
    q = u.q.reshape(n, subs, spec.sub_block).astype(np.float32)
    if spec.scales is None:
        values = u.d[:, None, None] * q
    else:
        values = (u.d[:, None] * u.scales.astype(np.float32))[:, :, None] * q
    if spec.mins is not None:
        values = values - (u.dmin[:, None] * u.mins.astype(np.float32))[:, :, None]
    values = values.reshape(n * spec.block)
    return values.reshape(shape) if shape is not None else values


def encode(spec: BlockFormat, u: Unpacked) -> np.ndarray:
    """Blocks (n, block_bytes) holding ``u`` exactly (the inverse of :func:`unpack`); codes out of range raise."""
    n = u.q.shape[0]
    blocks = np.zeros((n, spec.block_bytes), dtype=np.uint8)
    _put_codes(spec, blocks, spec.quants, u.q)
    if spec.scales:
        _put_codes(spec, blocks, spec.scales, u.scales)
    if spec.mins:
        _put_codes(spec, blocks, spec.mins, u.mins)
    dtype = np.dtype(spec.d_dtype)
    _field(spec, blocks, "d")[:] = np.asarray(u.d, dtype=dtype).reshape(n, 1).view(np.uint8)
    if spec.dmin:
        _field(spec, blocks, spec.dmin)[:] = np.asarray(u.dmin, dtype=dtype).reshape(n, 1).view(np.uint8)
    if spec.sums:
        sums = u.q.reshape(n, spec.sub_blocks, spec.sub_block).sum(axis=2).astype(spec.sums_dtype)
        _field(spec, blocks, spec.sums)[:] = sums.view(np.uint8)
    return blocks


def _round(x):
    """Half away from zero, as C's roundf."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _scale_codes(codes: Codes, scale_per_sub, positive):
    """Super-scale and integer codes for per-sub-block float scales (``positive``: codes >= 0)."""
    lo, hi = codes.value_range()
    top = hi if positive else max(hi, -lo)
    peak = np.abs(scale_per_sub).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(peak > 0, peak / top, 0).astype(np.float32)
        d = d.astype(np.float16).astype(np.float32)
        c = np.where(d[:, None] > 0, _round(scale_per_sub / d[:, None]), 0)
    return d, np.clip(c, max(lo, 0) if positive else lo, hi).astype(np.int32)


def _generic_quantize(spec: BlockFormat, x):
    """Blocks for float ``x`` (n, block) with the spec's code ranges: per sub-block absmax (or min/max when the
    format has mins) scales, quantized to the sub-block scale codes, then codes against the rounded scales.

    Valid blocks of any format, though not ggml's own bytes for K-quants (ggml searches scales iteratively).
    """
    n = x.shape[0]
    subs = x.reshape(n, spec.sub_blocks, spec.sub_block).astype(np.float64)
    lo, hi = spec.quants.value_range()
    if spec.mins is not None:
        low = np.minimum(subs.min(axis=2), 0)
        scale = (subs.max(axis=2) - low) / (hi - lo)
        d, sc = _scale_codes(spec.scales, scale, positive=True)
        dmin, mc = _scale_codes(spec.mins, -low, positive=True)
        step = d[:, None] * sc
        offset = (dmin[:, None] * mc)[:, :, None]
    else:
        # signed max over the negative end of the range, as ggml's Q4_0/Q3_K do, so the extreme value is exact
        index = np.abs(subs).argmax(axis=2)
        peak = np.take_along_axis(subs, index[:, :, None], axis=2)[:, :, 0]
        scale = peak / lo if lo < 0 else peak / hi
        if spec.scales is None:
            d = scale[:, 0].astype(np.float16).astype(np.float32) if spec.d_dtype == "float16" \
                else scale[:, 0].astype(np.float32)
            sc = np.ones((n, 1), np.int32)
        else:
            d, sc = _scale_codes(spec.scales, scale, positive=False)
        step = d[:, None] * sc
        offset = np.zeros_like(subs)
        dmin, mc = np.zeros(n, np.float32), np.zeros((n, spec.sub_blocks), np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step[:, :, None] != 0, _round((subs + offset) / step[:, :, None]), 0)
    q = np.clip(q, lo, hi).astype(np.int32).reshape(n, spec.block)
    return encode(spec, Unpacked(q, sc, mc, d, dmin))


def pack(spec: BlockFormat, values) -> np.ndarray:
    """Quantize float ``values`` (last axis a multiple of ``block``) to packed blocks, shape (..., bytes).

    Uses gguf-py's quantizer where it has one for the format (byte-identical to ggml's reference quantizer:
    Q8_0, Q4_0); the spec-driven generic quantizer otherwise.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.shape[-1] % spec.block:
        raise ParameterError(f"{spec.name} rows must be a multiple of {spec.block} elements, "
                             f"not {values.shape[-1]}")
    out_shape = values.shape[:-1] + (values.shape[-1] // spec.block * spec.block_bytes,)
    qtype = gguf.GGMLQuantizationType(spec.ggml_type)
    try:
        return gguf.quants.quantize(values, qtype).reshape(out_shape)
    except (NotImplementedError, gguf.quants.QuantError):
        pass
    return _generic_quantize(spec, values.reshape(-1, spec.block)).reshape(out_shape)


def random_blocks(spec: BlockFormat, rng, n) -> np.ndarray:
    """``n`` blocks with uniformly random codes, scales and mins and random finite super-scales."""
    def draw(codes, count):
        lo, hi = codes.value_range()
        return rng.integers(lo, hi + 1, size=(n, count)).astype(np.int32)

    q = draw(spec.quants, spec.block)
    scales = draw(spec.scales, spec.sub_blocks) if spec.scales else np.ones((n, spec.sub_blocks), np.int32)
    mins = draw(spec.mins, spec.sub_blocks) if spec.mins else np.zeros((n, spec.sub_blocks), np.int32)
    d = (rng.standard_normal(n) * 0.01).astype(np.float32)
    dmin = (rng.standard_normal(n) * 0.01).astype(np.float32) if spec.dmin else np.zeros(n, np.float32)
    if spec.d_dtype == "float16":
        d, dmin = (v.astype(np.float16).astype(np.float32) for v in (d, dmin))
    return encode(spec, Unpacked(q, scales, mins, d, dmin))
