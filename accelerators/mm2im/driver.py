"""Host-side driver of the MM2IM core: job planning (bands, channel tiles, input crop), packing, running."""

from dataclasses import dataclass

import numpy as np

from ...driver.layers import LayerStats
from ...errors import UnsupportedLayer
from .gateware import PARAM_WORDS, MAX_KERNEL, MAX_STRIDE, word_beats

__all__ = ["Job", "plan_layer", "pack_job", "run_layer", "estimate_layer", "check_layer"]


@dataclass(frozen=True)
class Job:
    """One job: output rows [oy0, oy0 + out_h) of batch item ``batch``, output channels [c0, c0 + cols)."""

    batch: int
    oy0: int
    out_h: int
    c0: int
    iy0: int          # first streamed input row
    in_rows: int
    ix0: int          # first streamed input column
    in_w: int
    base_y: int
    base_x: int
    steps_per_row: tuple   # cycles the walker spends on each streamed row


def _contributing(size, kernel, stride, pad, lo, hi):
    """Input indices [first, last) whose taps reach output range [lo, hi) (possibly empty)."""
    first = max(0, -((-(lo + pad - kernel + 1)) // stride))
    last = min(size, (hi - 1 + pad) // stride + 1)
    return first, max(first, last)


def _taps(base, kernel, size):
    return max(0, min(kernel, size - base) - max(0, -base))


def geometry(layer, input_shape, params):
    """(cin chunks, band rows, column crop (ix0, in_w, base_x), valid column steps) of a layer on this design."""
    n, h, w, cin = input_shape
    _, oh, ow, cout = layer.output_shape
    (kh, kw), (sh, sw), (pt, pl) = layer.kernel, layer.stride, layer.pads
    chunks = -(-cin // params["rows"])
    ix0, ix1 = _contributing(w, kw, sw, pl, 0, ow)
    base_x = ix0 * sw - pl
    column_steps = sum(_taps(base_x + i * sw, kw, ow) for i in range(ix1 - ix0))
    band = max(1, min(oh, params["acc_depth"] // ow))
    return chunks, band, (ix0, ix1 - ix0, base_x), column_steps


def check_layer(layer, input_shape, params):
    """Raise :class:`UnsupportedLayer` when this design cannot run ``layer`` on ``input_shape``."""
    if layer.op != "tconv":
        raise UnsupportedLayer(f"mm2im runs TRANSPOSE_CONV layers only, not {layer.op}")
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    if max(kh, kw) > MAX_KERNEL:
        raise UnsupportedLayer(f"kernel {kh}x{kw} exceeds {MAX_KERNEL}x{MAX_KERNEL}")
    if max(sh, sw) > MAX_STRIDE:
        raise UnsupportedLayer(f"stride {sh}x{sw} exceeds {MAX_STRIDE}")
    chunks, _, (_, in_w, _), _ = geometry(layer, input_shape, params)
    if kh * kw * chunks > params["w_depth"]:
        raise UnsupportedLayer(f"{kh}x{kw} taps x {chunks} channel chunks = {kh * kw * chunks} weight words "
                               f"exceed w_depth={params['w_depth']}")
    if in_w * chunks > params["in_depth"]:
        raise UnsupportedLayer(f"an input row of {in_w} pixels x {chunks} chunks exceeds in_depth={params['in_depth']}")
    if layer.output_shape[2] > params["acc_depth"]:
        raise UnsupportedLayer(f"an output row of {layer.output_shape[2]} pixels exceeds acc_depth={params['acc_depth']}")


def plan_layer(layer, input_shape, params):
    """The jobs of a layer, in execution order."""
    n, h, w, cin = input_shape
    _, oh, ow, cout = layer.output_shape
    (kh, kw), (sh, sw), (pt, pl) = layer.kernel, layer.stride, layer.pads
    chunks, band, (ix0, in_w, base_x), column_steps = geometry(layer, input_shape, params)
    jobs = []
    for b in range(n):
        for oy0 in range(0, oh, band):
            out_h = min(band, oh - oy0)
            iy0, iy1 = _contributing(h, kh, sh, pt, oy0, oy0 + out_h) if in_w else (0, 0)
            base_y = iy0 * sh - pt - oy0
            steps = tuple(_taps(base_y + i * sh, kh, out_h) * column_steps * chunks for i in range(iy1 - iy0))
            for c0 in range(0, cout, params["cols"]):
                jobs.append(Job(b, oy0, out_h, c0, iy0, iy1 - iy0, ix0, max(in_w, 1), base_y, base_x, steps))
    return jobs


def _words(values_uint8, word_bytes):
    padded = np.zeros(values_uint8.shape[:-1] + (word_bytes,), dtype=np.uint8)
    padded[..., :values_uint8.shape[-1]] = values_uint8
    return padded


def requant_words(layer):
    """Per-output-channel (bias, multiplier, shifts) words: shifts = left | right << 8."""
    bias, _, multiplier, shift, act_min, act_max = layer.requant()
    shifts = np.maximum(shift, 0) | (np.maximum(-shift, 0) << 8)
    return (bias, multiplier, shifts), act_min, act_max


def pack_job(layer, x, job, params, words):
    """The input stream of one job, as uint8."""
    rows, cols, width = params["rows"], params["cols"], params["data_width"]
    beat = width // 8
    cout, kh, kw, cin = layer.filters.shape
    chunks = -(-cin // rows)
    taken = min(cols, cout - job.c0)

    def per_channel(values):
        padded = np.zeros(cols, dtype=np.uint32)
        padded[:taken] = np.asarray(values[job.c0:job.c0 + taken], dtype=np.int64) & 0xFFFF_FFFF
        return _words(padded.view(np.uint8)[None], word_beats(4 * cols, width) * beat)

    params_block = np.concatenate([per_channel(v) for v in words], axis=0)
    # weights: [tap, chunk, r, c] = filters[c0 + c, ky, kx, chunk * rows + r]
    w = np.zeros((kh * kw, chunks * rows, cols), dtype=np.int8)
    w[:, :cin, :taken] = layer.filters[job.c0:job.c0 + taken].reshape(taken, kh * kw, cin).transpose(1, 2, 0)
    w_block = _words(w.reshape(kh * kw * chunks, rows * cols).view(np.uint8), word_beats(rows * cols, width) * beat)
    parts = [params_block.reshape(-1), w_block.reshape(-1)]
    if job.in_rows:
        a = np.zeros((job.in_rows, job.in_w, chunks * rows), dtype=np.int8)
        a[..., :cin] = x[job.batch, job.iy0:job.iy0 + job.in_rows, job.ix0:job.ix0 + job.in_w]
        parts.append(_words(a.reshape(-1, rows).view(np.uint8), word_beats(rows, width) * beat).reshape(-1))
    return np.concatenate(parts)


def job_registers(layer, job, params, act_min, act_max):
    cin = layer.filters.shape[3]
    chunks = -(-cin // params["rows"])
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    ow = layer.output_shape[2]
    return dict(IN_W=job.in_w, IN_ROWS=job.in_rows, CIN_CHUNKS=chunks, KH=kh, KW=kw, STRIDE_H=sh, STRIDE_W=sw,
                BASE_Y=job.base_y, BASE_X=job.base_x, OUT_H=job.out_h, OUT_W=ow, OUT_PIXELS=job.out_h * ow,
                W_WORDS=kh * kw * chunks, ROW_WORDS=job.in_w * chunks, INPUT_OFFSET=-int(layer.input_zero_point),
                OUTPUT_ZERO_POINT=int(layer.output_zero_point), ACT_MIN=act_min, ACT_MAX=act_max,
                W_KX_INIT=-job.base_x * chunks, W_KX_STEP=sw * chunks, W_KY_INIT=-job.base_y * kw * chunks,
                W_KY_STEP=sh * kw * chunks, W_KY_ROW=kw * chunks, ACC_Y_INIT=job.base_y * ow, ACC_Y_STEP=sh * ow)


def output_bytes(job, ow, params):
    return job.out_h * ow * word_beats(params["cols"], params["data_width"]) * (params["data_width"] // 8)


def input_bytes(layer, job, params):
    rows, cols, width = params["rows"], params["cols"], params["data_width"]
    cout, kh, kw, cin = layer.filters.shape
    chunks = -(-cin // rows)
    beats = (PARAM_WORDS * word_beats(4 * cols, width) + kh * kw * chunks * word_beats(rows * cols, width)
             + job.in_rows * job.in_w * chunks * word_beats(rows, width))
    return beats * (width // 8)


def _described(layer, input_shape):
    return {"input": list(input_shape), "output": list(layer.output_shape), "kernel": list(layer.kernel),
            "stride": list(layer.stride), "padding": layer.padding}


def _extra(layer, input_shape):
    effective = layer.effective_macs(input_shape)
    m, n, k = layer.gemm_shape(input_shape)
    return {"zero_insertion_macs": m * n * k, "ineffectual_macs_avoided": m * n * k - effective,
            "scatter_macs": int(np.prod(input_shape)) * layer.filters.shape[0] * layer.kernel[0] * layer.kernel[1]}


def estimate_layer(accelerator, layer, input_shape, jobs, dma):
    """LayerStats of running ``jobs`` (:func:`plan_layer`) from the cost model alone (the `model` backend)."""
    p = accelerator.params
    ow = layer.output_shape[2]
    busy = sum(sum(job.steps_per_row) for job in jobs)
    return LayerStats(op=layer.op, shape=_described(layer, input_shape), macs=layer.effective_macs(input_shape),
                      cycles=sum(accelerator.job_cycles(layer, job, dma) for job in jobs), pes=accelerator.pes,
                      bytes_in=sum(input_bytes(layer, job, p) for job in jobs),
                      bytes_out=sum(output_bytes(job, ow, p) for job in jobs), jobs=len(jobs), busy_cycles=busy,
                      array_macs=busy * accelerator.pes, extra={"estimated": True, **_extra(layer, input_shape)})


def run_layer(accelerator, device, layer, x, jobs, cycle_budget=None):
    """Run a TRANSPOSE_CONV layer's ``jobs`` (:func:`plan_layer`) on ``device``; return (int8 NHWC output, LayerStats)."""
    p = accelerator.params
    _, oh, ow, cout = layer.output_shape
    cols = p["cols"]
    words, act_min, act_max = requant_words(layer)
    out = np.zeros(layer.output_shape, dtype=np.int8)
    total = None
    bytes_in = bytes_out = 0
    n_o = word_beats(cols, p["data_width"]) * (p["data_width"] // 8)
    for job in jobs:
        stream = pack_job(layer, x, job, p, words)
        nbytes = output_bytes(job, ow, p)
        device.configure(**job_registers(layer, job, p, act_min, act_max),
                         IN_BEATS=input_bytes(layer, job, p) // (p["data_width"] // 8))
        device.dma_send(stream)
        received = device.dma_receive(nbytes)
        budget = cycle_budget or 4 * accelerator.job_cycles(layer, job, device.dma) + 1000
        counters = device.run(budget)
        taken = min(cols, cout - job.c0)
        pixels = received.reshape(job.out_h, ow, n_o)[..., :taken].view(np.int8)
        out[job.batch, job.oy0:job.oy0 + job.out_h, :, job.c0:job.c0 + taken] = pixels
        total = counters if total is None else total + counters
        bytes_in += stream.size
        bytes_out += nbytes
    stats = LayerStats(op=layer.op, shape=_described(layer, x.shape), macs=layer.effective_macs(x.shape),
                       cycles=total.cycles, pes=accelerator.pes, bytes_in=bytes_in, bytes_out=bytes_out,
                       jobs=len(jobs), busy_cycles=total.busy_cycles, in_stall_cycles=total.in_stall_cycles,
                       out_stall_cycles=total.out_stall_cycles, array_macs=total.macs,
                       extra=_extra(layer, x.shape))
    return out, stats
