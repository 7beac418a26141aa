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
A long job repeats with a period of a few blocks once its pipeline is full: the
walk skips whole periods when the state repeats (exact, see :class:`_JobTimeline`),
so the output layer of a 49152-word vocabulary costs milliseconds. :func:`job_cycles`
is cached by its arguments, which are all a job's shape.
"""

from functools import lru_cache
from math import gcd

from ...driver.device import beats_done

from .gateware import FIFO_DEPTH, PIPELINE, RESULT_BYTES, word_beats

__all__ = ["job_cycles", "stream_bound"]


def _lcm(a, b):
    return a * b // gcd(a, b)


@lru_cache(maxsize=4096)
def job_cycles(lanes, data_width, block, block_bytes, tokens, blocks, act_words, bytes_per_cycle, latency):
    """Cycles of one job of ``blocks`` weight blocks times ``tokens`` activation rows."""
    return _JobTimeline(lanes, data_width, block, block_bytes, tokens, act_words, bytes_per_cycle,
                        latency).cycles(blocks)


class _JobTimeline:
    """The cycle rules of the module docstring, block by block.

    Long jobs (a vocabulary-sized output layer has ~900,000 blocks) repeat: once the
    state seen at a period boundary, relative to its time, equals the state at an
    earlier boundary, every later period takes the same cycles, so whole periods
    are skipped by shifting the state (``periodic=False`` walks every block, for tests).
    """

    def __init__(self, lanes, data_width, block, block_bytes, tokens, act_words, bytes_per_cycle, latency):
        self.beat, self.bpc, self.latency = data_width // 8, bytes_per_cycle, latency
        self.block_bytes, self.tokens = block_bytes, tokens
        self.steps = block // lanes
        self.out_beats = word_beats(RESULT_BYTES, data_width)
        self.act_beats = act_words * (lanes // self.beat)
        # blocks per period: the stream's byte and output-beat phases against the DMA rate repeat
        pace = _lcm(self.beat, self.bpc)
        period = pace // gcd(block_bytes, pace)
        out_bytes = tokens * self.out_beats * self.beat
        self.period = _lcm(period, self.bpc // gcd(out_bytes, self.bpc))
        # with the DMA at least a beat per cycle, an arrival (or output slot) that is not ahead of the
        # core now never binds later: such ones enter the state clamped (see _signature)
        self.clamp = self.beat <= self.bpc

    def _arrive(self, g):
        return self.latency + g * self.beat // self.bpc

    def cycles(self, blocks, periodic=True):
        beat, bpc, B, M, S = self.beat, self.bpc, self.block_bytes, self.tokens, self.steps
        self.previous = beats_done(0, self.act_beats, 0, beat, bpc, self.latency)   # the last activation beat
        self.moved, self.last_step, self.loads = {}, {}, {}   # T_k; last issue cycle and output load per result
        self.n_loads, self.beat_out = 0, -1
        self.next_beat = 0
        seen = {}
        k = 0
        self.skipped = 0          # blocks skipped, not walked
        while k < blocks:
            if periodic and k % self.period == 0 and k >= 1 and k * M > FIFO_DEPTH:
                key = self._signature(k)
                if key in seen:
                    k0, base0 = seen[key]
                    jumps = (blocks - k) // (k - k0)
                    if jumps:
                        self.skipped += (k - k0) * jumps
                        k = self._shift(k, (k - k0) * jumps, (self.previous - base0) * jumps)
                        seen.clear()
                        continue
                seen[key] = (k, self.previous)
            self._block(k)
            k += 1
        self._drain_through(blocks * M - 1)
        return self.beat_out + 1

    def _block(self, k):
        beat, B, M = self.beat, self.block_bytes, self.tokens
        complete_beat = -(-(k + 1) * B // beat) - 1
        while self.next_beat <= complete_beat:
            need = self.next_beat * beat // B
            accept = max(self._arrive(self.act_beats + self.next_beat), self.previous + 1)
            if need:
                accept = max(accept, self.moved[need - 1])
            self.previous = accept
            self.next_beat += 1
        t = self.previous + 1
        if k:
            t = max(t, self.last_step[k * M - 1])
        self.moved[k] = t
        for m in range(M):
            r = k * M + m
            first = t + 1 if m == 0 else self.last_step[r - 1] + 1
            if r >= FIFO_DEPTH:
                self._drain_through(r - FIFO_DEPTH)
                first = max(first, self.loads[r - FIFO_DEPTH] + 1)
            self.last_step[r] = first + self.steps - 1
        # forget what no later block reads
        for old in (k - 64,):
            self.moved.pop(old, None)
        for old in range(max(0, (k - 64) * M), (k - 63) * M):
            self.last_step.pop(old, None)
            self.loads.pop(old, None)

    def _drain_through(self, r):
        beat, bpc = self.beat, self.bpc
        while self.n_loads <= r:
            q = self.n_loads
            load = self.last_step[q] + PIPELINE + 1
            if q:
                load = max(load, self.beat_out)
            self.loads[q] = load
            out_index = q * self.out_beats
            for i in range(self.out_beats):
                self.beat_out = max((out_index + i) * beat // bpc, self.beat_out + 1, load + 1 if i == 0 else 0)
            self.n_loads += 1

    def _windows(self, k):
        """Indices of the history later blocks read: moved blocks, issued results, loaded results."""
        M = self.tokens
        moved = range(max(0, self.next_beat * self.beat // self.block_bytes - 1), k)
        issued = range(min(self.n_loads, k * M - 1), k * M)
        loaded = range(k * M - FIFO_DEPTH, self.n_loads)
        return moved, issued, loaded

    def _signature(self, k):
        base, M = self.previous, self.tokens
        moved, issued, loaded = self._windows(k)
        arrival = self._arrive(self.act_beats + self.next_beat) - base - 1
        slot = self.n_loads * self.out_beats * self.beat // self.bpc - self.beat_out - 1
        if self.clamp:
            arrival, slot = max(arrival, 0), max(slot, 0)
        return (self.next_beat - k * self.block_bytes // self.beat, self.n_loads - k * M, self.beat_out - base,
                arrival, slot,
                tuple(self.moved[j] - base for j in moved), tuple(self.last_step[r] - base for r in issued),
                tuple(self.loads[q] - base for q in loaded))

    def _shift(self, k, blocks, cycles):
        """The state ``blocks`` blocks (whole periods) and ``cycles`` cycles later; returns the new block index."""
        M = self.tokens
        moved, issued, loaded = self._windows(k)
        self.moved = {j + blocks: self.moved[j] + cycles for j in moved}
        self.last_step = {r + blocks * M: self.last_step[r] + cycles for r in issued}
        self.loads = {q + blocks * M: self.loads[q] + cycles for q in loaded}
        self.previous += cycles
        self.beat_out += cycles
        self.next_beat += blocks * self.block_bytes // self.beat
        self.n_loads += blocks * M
        return k + blocks


def stream_bound(weight_bytes, bytes_per_cycle):
    """The weight-streaming bound: cycles to move ``weight_bytes`` at the DMA rate."""
    return -(-weight_bytes // bytes_per_cycle)
