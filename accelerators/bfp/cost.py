"""Cycle model of the BFP core: exact against the RTL's cycle counter, one step per block and per result.

Times are cycle indices after the start write (the DMA timing contract in
``driver/device.py``); a job takes (last output beat + 1) cycles.

* activation beats are accepted as they arrive (one per cycle);
* weight beat ``i`` (byte offset ``i * beat`` of the weight section) is accepted
  once it has arrived, after the previous beat, and once the assembler has room:
  ``floor(i * beat / B)`` blocks must have moved to the compute registers by then
  (a block moves in the cycle its last step issues, so a beat may enter then);
* block ``k`` is complete the cycle after its last byte's beat is accepted and
  moves at ``T_k = max(complete, last step of block k - 1)``;
* result ``r = k * M + m`` (block ``k``, token ``m``) takes ``S = block / lanes``
  consecutive steps, starting after the previous result's last step (or ``T_k``)
  and once result ``r - FIFO_DEPTH`` has left the FIFO (room in the FIFO);
* its sums reach the FIFO ``PIPELINE`` cycles after its last step; the output
  register takes it the next cycle or when the previous result's last beat
  leaves; beats leave one per cycle, paced by the stream-to-memory channel.

The loop is over blocks and results (milliseconds for a layer of a small model);
:func:`job_cycles` is cached by its arguments, which are all a job's shape.
"""

from functools import lru_cache

from ...driver.device import beats_done

from .gateware import FIFO_DEPTH, PIPELINE, RESULT_BYTES, word_beats

__all__ = ["job_cycles", "stream_bound"]


@lru_cache(maxsize=4096)
def job_cycles(lanes, data_width, block, block_bytes, tokens, blocks, act_words, bytes_per_cycle, latency):
    """Cycles of one job of ``blocks`` weight blocks times ``tokens`` activation rows."""
    beat = data_width // 8
    bpc = bytes_per_cycle
    steps = block // lanes
    out_beats = word_beats(RESULT_BYTES, data_width)
    act_beats = act_words * (lanes // beat)

    def arrive(g):
        return latency + g * beat // bpc

    previous = beats_done(0, act_beats, 0, beat, bpc, latency)      # the last activation beat

    moved = []              # T_k
    last_step = []          # last issue cycle of each result
    loads = []              # cycle the output register takes each result
    beat_out = -1           # cycle the latest output beat left
    out_index = 0           # output beats sent so far

    def drain_through(r):
        nonlocal beat_out, out_index
        while len(loads) <= r:
            q = len(loads)
            load = last_step[q] + PIPELINE + 1
            if q:
                load = max(load, beat_out)
            loads.append(load)
            for i in range(out_beats):
                beat_out = max(out_index * beat // bpc, beat_out + 1, load + 1 if i == 0 else 0)
                out_index += 1

    next_beat = 0
    for k in range(blocks):
        complete_beat = -(-(k + 1) * block_bytes // beat) - 1
        while next_beat <= complete_beat:
            need = next_beat * beat // block_bytes
            accept = max(arrive(act_beats + next_beat), previous + 1)
            if need:
                accept = max(accept, moved[need - 1])
            previous = accept
            next_beat += 1
        t = previous + 1
        if k:
            t = max(t, last_step[k * tokens - 1])
        moved.append(t)
        for m in range(tokens):
            r = k * tokens + m
            first = t + 1 if m == 0 else last_step[r - 1] + 1
            if r >= FIFO_DEPTH:
                drain_through(r - FIFO_DEPTH)
                first = max(first, loads[r - FIFO_DEPTH] + 1)
            last_step.append(first + steps - 1)
    drain_through(blocks * tokens - 1)
    return beat_out + 1


def stream_bound(weight_bytes, bytes_per_cycle):
    """The weight-streaming bound: cycles to move ``weight_bytes`` at the DMA rate."""
    return -(-weight_bytes // bytes_per_cycle)
