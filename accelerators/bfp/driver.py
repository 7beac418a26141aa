"""Host side of the BFP core: plans (jobs over token chunks), stream packing, running, estimating."""

import numpy as np

from ...driver.layers import LayerStats
from ...errors import UnsupportedLayer
from . import cost
from .gateware import HW_FORMATS, RESULT_BYTES, word_beats

__all__ = ["make_schedule", "pack_job", "run", "estimate", "golden_sums"]


def make_schedule(params, name, layer, input_shape):
    """The schedule of ``layer`` (a :class:`~accelkit.driver.kinds.block_matmul.BlockMatMul`) on ``input_shape``
    = (m, k): jobs over token chunks whose activations fit the activation memory."""
    spec = layer.spec
    if spec.name not in HW_FORMATS:
        raise UnsupportedLayer(f"{name} takes {', '.join(HW_FORMATS)} weights, not {spec.name}")
    m, k = input_shape
    if k != layer.k:
        raise UnsupportedLayer(f"activations have {k} columns, the weights {layer.k}")
    lanes = params["lanes"]
    row_words = k // lanes
    if row_words > params["act_depth"]:
        raise UnsupportedLayer(f"one token of K={k} needs {row_words} activation words, more than "
                               f"act_depth={params['act_depth']}")
    if row_words >= 1 << 16 or layer.row_blocks >= 1 << 16:
        raise UnsupportedLayer(f"K={k} is too deep for the 16-bit row registers")
    per_job = min(params["act_depth"] // row_words, (1 << 16) - 1)
    jobs = [[m0, min(per_job, m - m0)] for m0 in range(0, m, per_job)]
    blocks = layer.n * layer.row_blocks
    return {"format": spec.name, "format_code": HW_FORMATS.index(spec.name), "quantizer": layer.quantizer,
            "activation": spec.activation, "row_blocks": layer.row_blocks, "row_words": row_words,
            "blocks": blocks, "block_bytes": spec.block_bytes, "weight_bytes": blocks * spec.block_bytes,
            "jobs": jobs}


def _stream_bytes(nbytes, beat):
    return -(-nbytes // beat) * beat


class _StreamBuffer:
    """One grow-only byte buffer that every job's input stream is packed into.

    A job streams its whole weight matrix (up to 28 MB for SmolLM2's output): a fresh array per job made the
    kernel map and zero that many new pages per MatMul (7% of a generated token's CPU time on the RTL).
    The stream is used only until the job has run, so one buffer serves every job in turn.
    """

    def __init__(self):
        self._buffer = np.zeros(0, dtype=np.uint8)

    def take(self, nbytes):
        if self._buffer.size < nbytes:
            self._buffer = np.zeros(nbytes, dtype=np.uint8)
        return self._buffer[:nbytes]


_scratch = _StreamBuffer()


def pack_job(plan, codes, m0, count, beat):
    """Input stream of one job: activation words of tokens [m0, m0 + count), then the packed weight blocks.

    The array is valid until the next call (it is packed into a shared buffer): send it before packing another.
    """
    weights = plan.layer.weights.reshape(-1)
    act = np.ascontiguousarray(codes[m0:m0 + count]).view(np.uint8).reshape(-1)
    stream = _scratch.take(act.size + _stream_bytes(weights.size, beat))
    stream[:act.size] = act
    stream[act.size:act.size + weights.size] = weights
    stream[act.size + weights.size:] = 0
    return stream


def job_registers(plan, count):
    s = plan.schedule
    return dict(FORMAT=s["format_code"], TOKENS=count, ROW_BLOCKS=s["row_blocks"], ROW_WORDS=s["row_words"],
                ACT_WORDS=count * s["row_words"], BLOCKS=s["blocks"], RESULTS=s["blocks"] * count)


def output_bytes(plan, count, data_width):
    return plan.schedule["blocks"] * count * word_beats(RESULT_BYTES, data_width) * (data_width // 8)


def job_cycles(params, plan, count, dma):
    spec = plan.layer.spec
    return cost.job_cycles(params["lanes"], params["data_width"], spec.block, spec.block_bytes, count,
                           plan.schedule["blocks"], count * plan.schedule["row_words"], dma.bytes_per_cycle,
                           dma.latency)


def golden_sums(plan, a):
    """The integer block sums the core must return for quantized activations ``a``: (isum, msum) (n, m, blocks)."""
    return plan.layer.sums(a)


def _stats(params, plan, cycles, bytes_in, bytes_out, busy, extra, counters=None):
    s = plan.schedule
    return LayerStats(op="block_matmul", shape={"m": plan.input_shape[0], "n": plan.output_shape[1],
                                                "k": plan.input_shape[1], "format": s["format"]},
                      macs=plan.macs, cycles=cycles, pes=params["lanes"], bytes_in=bytes_in, bytes_out=bytes_out,
                      jobs=len(s["jobs"]), busy_cycles=busy,
                      in_stall_cycles=counters.in_stall_cycles if counters else 0,
                      out_stall_cycles=counters.out_stall_cycles if counters else 0,
                      array_macs=counters.macs if counters else busy, extra=extra)


def estimate(params, plan, dma):
    """LayerStats from the cost model alone (the `model` backend)."""
    beat = params["data_width"] // 8
    s = plan.schedule
    steps = plan.layer.spec.block // params["lanes"]
    cycles = sum(job_cycles(params, plan, count, dma) for _, count in s["jobs"])
    bytes_in = sum(count * s["row_words"] * params["lanes"] + _stream_bytes(s["weight_bytes"], beat)
                   for _, count in s["jobs"])
    bytes_out = sum(output_bytes(plan, count, params["data_width"]) for _, count in s["jobs"])
    busy = sum(s["blocks"] * count * steps for _, count in s["jobs"])
    stats = _stats(params, plan, cycles, bytes_in, bytes_out, busy,
                   {"estimated": True, "weight_bytes": s["weight_bytes"] * len(s["jobs"])})
    stats.array_macs = busy * params["lanes"]
    return stats


def run(params, plan, device, x, cycle_budget=None):
    """Run ``plan`` on ``device`` for float activations ``x``: (float32 (m, n), LayerStats, (isum, msum))."""
    layer, s = plan.layer, plan.schedule
    a, codes = layer.quantize(x)
    n, m, blocks = layer.n, x.shape[0], layer.row_blocks
    beat = params["data_width"] // 8
    out_beats = word_beats(RESULT_BYTES, params["data_width"])
    isum = np.zeros((n, m, blocks), np.int64)
    msum = np.zeros((n, m, blocks), np.int64)
    total, bytes_in, bytes_out = None, 0, 0
    for m0, count in s["jobs"]:
        stream = pack_job(plan, codes, m0, count, beat)
        nbytes = output_bytes(plan, count, params["data_width"])
        device.configure(**job_registers(plan, count))
        device.dma_send(stream)
        received = device.dma_receive(nbytes)
        budget = cycle_budget or 2 * job_cycles(params, plan, count, device.dma) + 1000
        counters = device.run(budget)
        words = received.reshape(n * blocks, count, out_beats * beat)[:, :, :RESULT_BYTES].copy().view(np.int32)
        words = words.reshape(n, blocks, count, 2)
        isum[:, m0:m0 + count] = words[..., 0].transpose(0, 2, 1)
        msum[:, m0:m0 + count] = words[..., 1].transpose(0, 2, 1)
        total = counters if total is None else total + counters
        bytes_in += stream.size
        bytes_out += nbytes
    out = layer.finish(a, isum, msum)
    stats = _stats(params, plan, total.cycles, bytes_in, bytes_out, total.busy_cycles,
                   {"weight_bytes": s["weight_bytes"] * len(s["jobs"])}, total)
    return out, stats, (isum, msum)
