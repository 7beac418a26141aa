"""Host side of the vector-MAC: job planning, stream packing, the cost model, and running on a device.

Everything here speaks to :class:`accelkit.driver.device.Device` only (registers by
name, the two DMA channels, run with a cycle budget), so the same code drives
Verilator, Amaranth's simulator, cocotb or a board.
"""

import numpy as np

from accelkit.driver.device import beats_done
from accelkit.driver.layers import LayerStats
from accelkit.driver.quant import requantize
from accelkit.hw.shell import word_beats

from .gateware import PIPELINE_LATENCY

__all__ = ["plan_jobs", "job_cycles", "pack_job", "run_gemm", "estimate_gemm"]

#: The M register is 16 bits wide.
MAX_ROWS = (1 << 16) - 1
#: Bound on one job's input stream, so a large layer is sent in pieces rather than one huge buffer.
MAX_JOB_BYTES = 1 << 22


def _words(k, lanes):
    return -(-k // lanes)


def _word_bytes(params):
    return word_beats(params["lanes"], params["data_width"]) * params["data_width"] // 8


def plan_jobs(params, m, n, k):
    """Split the M rows into jobs: [(first row, rows), ...], each within the register and stream bounds."""
    per_row = (1 + n) * _words(k, params["lanes"]) * _word_bytes(params)
    rows = max(1, min(MAX_ROWS, MAX_JOB_BYTES // per_row))
    return [(row0, min(rows, m - row0)) for row0 in range(0, m, rows)]


def input_bytes(params, rows, n, k):
    return rows * (1 + n) * _words(k, params["lanes"]) * _word_bytes(params)


def output_bytes(params, rows, n):
    return rows * n * params["data_width"] // 8


def job_cycles(params, rows, n, k, dma):
    """The shell's CYCLES for one job, in closed form.

    The core takes an input beat in every cycle one is available (its pipeline never
    stalls, and results leave no faster than input beats arrive), so the job ends
    ``PIPELINE_LATENCY`` cycles after the last input beat is taken, plus the cycle
    the shell counts ``done`` in.
    """
    beat_bytes = params["data_width"] // 8
    beats = input_bytes(params, rows, n, k) // beat_bytes
    last_taken = beats_done(0, beats, 0, beat_bytes, dma.bytes_per_cycle, dma.latency)
    return last_taken + PIPELINE_LATENCY + 1


def pack_job(params, a, b):
    """The input stream of one job (see the gateware's protocol) for rows ``a`` [rows, K] and ``b`` [K, N], uint8."""
    lanes = params["lanes"]
    rows, k = a.shape
    n = b.shape[1]
    words = _words(k, lanes)
    stream = np.zeros((rows, 1 + n, words, _word_bytes(params)), dtype=np.uint8)
    padded_a = np.zeros((rows, words * lanes), dtype=np.int8)
    padded_a[:, :k] = a
    padded_b = np.zeros((n, words * lanes), dtype=np.int8)
    padded_b[:, :k] = b.T
    stream[:, 0, :, :lanes] = padded_a.reshape(rows, words, lanes).view(np.uint8)
    stream[:, 1:, :, :lanes] = padded_b.reshape(n, words, lanes).view(np.uint8)
    return stream.reshape(-1)


def unpack_job(raw, params, rows, n):
    """The int32 dot products [rows, N] from one job's output stream."""
    beat_bytes = params["data_width"] // 8
    return raw.reshape(rows * n, beat_bytes)[:, :4].copy().view(np.int32).reshape(rows, n)


def requantize_gemm(acc, gemm):
    """int32 dot products to the int8 outputs, on the host, exactly as the layer's TFLite kernel."""
    return requantize(acc, gemm.bias, gemm.output_zero_point, gemm.act_min, gemm.act_max, rounding=gemm.rounding,
                      multiplier=gemm.multiplier, shift=gemm.shift, scale=gemm.scale)


def _stats(params, m, n, k, jobs, cycles, op, shape, **counters):
    words = _words(k, params["lanes"])
    busy = counters.pop("busy_cycles", m * n * words)
    return LayerStats(op=op, shape=shape, macs=m * n * k, cycles=cycles, pes=params["lanes"],
                      bytes_in=sum(input_bytes(params, rows, n, k) for _, rows in jobs),
                      bytes_out=sum(output_bytes(params, rows, n) for _, rows in jobs), jobs=len(jobs),
                      busy_cycles=busy, array_macs=counters.pop("array_macs", busy * params["lanes"]), **counters)


def estimate_gemm(params, shape, jobs, dma, op, described):
    """LayerStats of an (M, N, K) product run as ``jobs``, from the cost model alone."""
    m, n, k = shape
    cycles = sum(job_cycles(params, rows, n, k, dma) for _, rows in jobs)
    return _stats(params, m, n, k, jobs, cycles, op, described, extra={"estimated": True})


def run_gemm(params, device, gemm, jobs, cycle_budget=None, op="gemm", described=None):
    """Run ``gemm`` (a :class:`~accelkit.driver.layers.QuantizedGemm`) job by job; return (int8 [M, N], LayerStats)."""
    m, n, k = gemm.shape
    acc = np.zeros((m, n), dtype=np.int32)
    total = None
    for row0, rows in jobs:
        stream = pack_job(params, gemm.a[row0:row0 + rows], gemm.b)
        device.configure(K=k, N=n, M=rows)
        device.dma_send(stream)
        received = device.dma_receive(output_bytes(params, rows, n))
        budget = cycle_budget or 2 * job_cycles(params, rows, n, k, device.dma) + 1000
        counters = device.run(budget)
        acc[row0:row0 + rows] = unpack_job(received, params, rows, n)
        total = counters if total is None else total + counters
    stats = _stats(params, m, n, k, jobs, total.cycles, op, described or {"m": m, "n": n, "k": k},
                   busy_cycles=total.busy_cycles, in_stall_cycles=total.in_stall_cycles,
                   out_stall_cycles=total.out_stall_cycles, array_macs=total.macs)
    return requantize_gemm(acc, gemm), stats
