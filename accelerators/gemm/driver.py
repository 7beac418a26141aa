"""Host-side driver of the GEMM core: tiling, packing, and programming through the device interface."""

import numpy as np

from ...driver.layers import LayerStats
from ...driver.quant import DOUBLE, float_scale_fields
from .cost import cycle_bound, gemm_cycles, plan_jobs
from ...hw.constants import word_beats
from .layout import PARAM_WORDS, WeightLayout

__all__ = ["pack_tiles", "pack_job", "unpack_job", "run_gemm", "estimate_gemm"]


def pack_tiles(gemm, layout: WeightLayout):
    """Per column tile, its four parameter words then its B words, as uint8 [n_tiles, bytes].

    This part of the input stream is the same in every job of a GEMM (jobs split
    M only), so it is encoded once per GEMM.
    """
    cols, data_width = layout.cols, layout.data_width
    _, n, k = gemm.shape
    n_tiles = -(-n // cols)
    p_bytes = word_beats(4 * cols, data_width) * (data_width // 8)
    b = np.zeros((k, n_tiles * cols), dtype=np.int8)
    b[:, :n] = gemm.b
    b_words = layout.encode(b.reshape(k, n_tiles, cols).transpose(1, 0, 2))
    tiles = np.zeros((n_tiles, PARAM_WORDS * p_bytes + b_words.shape[1]), dtype=np.uint8)
    params = tiles[:, :PARAM_WORDS * p_bytes].reshape(n_tiles, PARAM_WORDS, p_bytes)
    padded = np.zeros((PARAM_WORDS, n_tiles * cols), dtype=np.uint32)
    for kind, values in enumerate(requant_words(gemm)):
        padded[kind, :n] = np.asarray(values, dtype=np.int64) & 0xFFFF_FFFF
    params[:, :, :4 * cols] = padded.reshape(PARAM_WORDS, n_tiles, cols).transpose(1, 0, 2).view(np.uint8)
    tiles[:, PARAM_WORDS * p_bytes:] = b_words
    return tiles


def pack_job(gemm, row0, m_tiles, rows, layout: WeightLayout, tiles=None):
    """The input stream of one job (see the gateware's job protocol), as uint8.

    ``tiles`` is :func:`pack_tiles` of the GEMM (computed here when not given).
    Filled in place in one buffer whose A padding stays zero.
    """
    data_width = layout.data_width
    k = gemm.shape[2]
    tiles = pack_tiles(gemm, layout) if tiles is None else tiles
    a_bytes = word_beats(rows, data_width) * (data_width // 8)
    a_end = m_tiles * k * a_bytes
    stream = np.empty(a_end + tiles.size, dtype=np.uint8)
    stream[a_end:] = tiles.reshape(-1)

    # A: the word of (row tile t, step kk) holds column kk of the tile's rows.
    a_words = stream[:a_end].reshape(m_tiles, k, a_bytes)
    a_words[...] = 0
    block = gemm.a[row0:row0 + m_tiles * rows]
    a = np.zeros((m_tiles * rows, k), dtype=np.int8)
    a[:block.shape[0]] = block
    a_words[:, :, :rows] = a.reshape(m_tiles, rows, k).transpose(0, 2, 1).view(np.uint8)
    return stream


def requant_words(gemm):
    """Per-column (bias, multiplier low, multiplier high, shifts) words for the core's requantizer."""
    if gemm.rounding == DOUBLE:
        shifts = np.maximum(gemm.shift, 0) | (np.maximum(-gemm.shift, 0) << 8)
        return gemm.bias, gemm.multiplier, np.zeros_like(gemm.multiplier), shifts
    mantissa, exponent = float_scale_fields(gemm.scale)
    return gemm.bias, mantissa & 0xFFFF_FFFF, mantissa >> 32, exponent


def unpack_job(raw, gemm, row0, m_tiles, rows, cols, data_width, out):
    """Scatter one job's output stream into ``out`` [M, N]."""
    m, n, _ = gemm.shape
    n_tiles = -(-n // cols)
    words = raw.reshape(n_tiles, m_tiles, rows, -1)[..., :cols].view(np.int8)
    block = words.transpose(1, 2, 0, 3).reshape(m_tiles * rows, n_tiles * cols)
    take = min(m_tiles * rows, m - row0)
    out[row0:row0 + take] = block[:take, :n]


def output_bytes(m_tiles, n_tiles, rows, cols, data_width):
    return n_tiles * m_tiles * rows * word_beats(cols, data_width) * (data_width // 8)


def input_bytes(m_tiles, n_tiles, k, rows, layout: WeightLayout):
    """Size of one job's input stream (what pack_job produces), without packing anything."""
    cols, data_width = layout.cols, layout.data_width
    beat = data_width // 8
    a_block = m_tiles * k * word_beats(rows, data_width)
    per_tile = PARAM_WORDS * word_beats(4 * cols, data_width) + layout.b_beats(k)
    return (a_block + n_tiles * per_tile) * beat


def weight_bytes(n_tiles, k, layout: WeightLayout, jobs=1):
    """Bytes of weights (B words, with their padding) the jobs of one GEMM stream in."""
    return jobs * n_tiles * layout.b_beats(k) * layout.data_width // 8


def estimate_gemm(accelerator, shape, dma, op="gemm", described=None, jobs=None):
    """LayerStats of an (M, N, K) GEMM from the cost model alone (the `model` backend)."""
    p = accelerator.params
    rows, cols, width = p["rows"], p["cols"], p["data_width"]
    layout = WeightLayout.from_params(p)
    m, n, k = shape
    n_tiles = -(-n // cols)
    jobs = jobs or plan_jobs(m, k, rows, p["a_depth"])
    busy = sum(mt * n_tiles * k for _, mt in jobs)
    return LayerStats(op=op, shape=described or {"m": m, "n": n, "k": k}, macs=m * n * k,
                      cycles=gemm_cycles(p, shape, dma), pes=rows * cols,
                      bytes_in=sum(input_bytes(mt, n_tiles, k, rows, layout) for _, mt in jobs),
                      bytes_out=sum(output_bytes(mt, n_tiles, rows, cols, width) for _, mt in jobs),
                      jobs=len(jobs), busy_cycles=busy, array_macs=busy * rows * cols,
                      extra={"estimated": True, "weight_bytes": weight_bytes(n_tiles, k, layout, len(jobs))})


def run_gemm(accelerator, device, gemm, cycle_budget=None, op="gemm", shape=None, jobs=None):
    """Run ``gemm`` job by job (``jobs`` as :func:`~.cost.plan_jobs` splits it) on ``device``.

    Returns (int8 [M, N], LayerStats).
    """
    p = accelerator.params
    rows, cols, width = p["rows"], p["cols"], p["data_width"]
    layout = WeightLayout.from_params(p)
    m, n, k = gemm.shape
    n_tiles = -(-n // cols)
    out = np.zeros((m, n), dtype=np.int8)
    total = None
    bytes_in = bytes_out = 0
    jobs = jobs or plan_jobs(m, k, rows, p["a_depth"])
    tiles = pack_tiles(gemm, layout)
    for row0, m_tiles in jobs:
        stream = pack_job(gemm, row0, m_tiles, rows, layout, tiles)
        nbytes = output_bytes(m_tiles, n_tiles, rows, cols, width)
        device.configure(K=k, M_TILES=m_tiles, N_TILES=n_tiles, OUTPUT_ZERO_POINT=gemm.output_zero_point,
                         ACT_MIN=gemm.act_min, ACT_MAX=gemm.act_max, REQUANT_MODE=int(gemm.rounding != DOUBLE),
                         ROW_OFFSET=gemm.row_offset,
                         IN_BEATS=input_bytes(m_tiles, n_tiles, k, rows, layout) // (width // 8))
        device.dma_send(stream)
        received = device.dma_receive(nbytes)
        budget = cycle_budget or 4 * cycle_bound(p, m_tiles, n_tiles, k, device.dma) + 1000
        counters = device.run(budget)
        unpack_job(received, gemm, row0, m_tiles, rows, cols, width, out)
        total = counters if total is None else total + counters
        bytes_in += stream.size
        bytes_out += nbytes
    stats = LayerStats(op=op, shape=shape or {"m": m, "n": n, "k": k}, macs=gemm.macs, cycles=total.cycles,
                       pes=rows * cols, bytes_in=bytes_in, bytes_out=bytes_out, jobs=len(jobs),
                       busy_cycles=total.busy_cycles, in_stall_cycles=total.in_stall_cycles,
                       out_stall_cycles=total.out_stall_cycles, array_macs=total.macs,
                       extra={"weight_bytes": weight_bytes(n_tiles, k, layout, len(jobs))})
    return out, stats
