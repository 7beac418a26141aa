"""Closed-form cycle model of the GEMM core.

The model follows the core's three engines tile by tile, with formulas for each
run of stream beats, so it costs O(tiles) arithmetic per job whatever K is:

* loader: takes the A block, then per column tile four parameter words and K
  B words (packed several to a beat when narrow, see ``pe.WeightLayout``); one idle cycle (WAIT_HALF) between tiles, and it waits for the B
  buffer half to be released by the readout of the tile two back;
* feeder: one step per cycle; the last step of a row tile waits until the
  previous row tile has been read out of the PEs' result registers;
* readout: loads the first row into the output register
  ``settle_delay(cols) + readout_delay(rows)`` cycles after the last step
  (operands need rows + cols cycles to cross the array and the PEs' registered
  product and sum, and row 0 the requantizer's fixed latency to reach the row buffer) and each further row as the previous row's last beat leaves; beats go
  out one per cycle from the cycle after the first load, limited by the
  stream-to-memory channel. Loading the tile's last row frees the PEs' result
  registers and the B buffer half.

Times are cycle indices after the start write; the job takes (last readout
beat + 1) cycles, which is what the hardware CYCLES counter reports.
"""

from functools import lru_cache

import numpy as np

from ...driver.device import beats_done
from ...hw.constants import word_beats
from .layout import PARAM_WORDS, WeightLayout, readout_delay, settle_delay

__all__ = ["plan_jobs", "job_cycles", "gemm_cycles", "cycle_bound", "beats_done"]


def job_cycles(params, m_tiles, n_tiles, k, dma):
    """Cycles of one job: ``m_tiles`` row tiles in the A buffer times ``n_tiles`` column tiles, depth ``k``."""
    # remembered by what the timing depends on (not the buffer depths), so design points that differ
    # only in k_max or a_depth share their jobs' figures
    return _job_cycles(params["rows"], params["cols"], params["data_width"], params.get("mult_cols", params["cols"]),
                       params.get("terms", 1), m_tiles, n_tiles, k, dma)


@lru_cache(maxsize=1 << 18)
def _job_cycles(rows, cols, width, mult_cols, terms, m_tiles, n_tiles, k, dma):
    params = {"rows": rows, "cols": cols, "data_width": width, "mult_cols": mult_cols, "terms": terms}
    beat = width // 8
    n_a, n_p, n_o = word_beats(rows, width), word_beats(4 * cols, width), word_beats(cols, width)
    b_beats = WeightLayout.from_params(params).b_beats(k)
    bpc, latency = dma.bytes_per_cycle, dma.latency
    settle = settle_delay(cols) + readout_delay(rows)

    in_beat = m_tiles * k * n_a
    loaded = beats_done(0, in_beat, 0, beat, bpc, latency)
    wait_from = loaded + 1   # the loader spends one cycle in WAIT_HALF before each tile

    out_beat = 0             # next output beat (its stream-to-memory slot)
    read_end = -1            # last readout beat so far
    freed = -1               # cycle the previous row tile's last row was loaded (result registers free)
    released = [-1, -1]      # cycle from which each B buffer half may be reloaded
    feeder_free = 0
    out_words = rows * n_o  # output beats of one row tile
    freed_words = (rows - 1) * n_o
    wide = beat >= bpc      # beats arrive no faster than one per cycle (see beats_done)
    for n in range(n_tiles):
        half = n % 2
        start_load = max(wait_from, released[half]) + 1
        count = PARAM_WORDS * n_p + b_beats
        b_end = beats_done(in_beat, count, start_load, beat, bpc, latency)
        in_beat += count
        wait_from = b_end + 1
        step = max(feeder_free, b_end + 1)
        if m_tiles < _CLOSED_FORM_FROM:
            # beats_done(out_beat, count, first_load + 1, beat, bpc, 0) written out: this loop is the
            # cost model's innermost one
            for _ in range(m_tiles):
                last_step = max(step + k - 1, freed + 1)
                first_load = last_step + settle
                if wide:
                    freed = first_load if rows == 1 else max((out_beat + freed_words - 1) * beat // bpc,
                                                             first_load + freed_words)
                    read_end = max((out_beat + out_words - 1) * beat // bpc, first_load + out_words)
                else:
                    ready = max(out_beat * beat // bpc, first_load + 1)
                    freed = first_load if rows == 1 else ready + freed_words - 1
                    read_end = ready + out_words - 1
                out_beat += out_words
                step = last_step + 1
        else:
            last_step, freed = _row_tiles(m_tiles, step, freed, out_beat, k, rows, n_o, settle, beat, bpc)
            read_end = beats_done(out_beat + (m_tiles - 1) * out_words, out_words, last_step + settle + 1,
                                  beat, bpc, 0)
            out_beat += m_tiles * out_words
            step = last_step + 1
        released[half] = freed + 1
        feeder_free = step
    return read_end + 1


#: row tiles per column tile from which :func:`_row_tiles` replaces the step-by-step loop (below it the
#: loop is quicker than numpy's per-call overhead)
_CLOSED_FORM_FROM = 16


def _row_tiles(m_tiles, step, freed, out_beat, k, rows, n_o, settle, beat, bpc):
    """(last step, freed) after ``m_tiles`` row tiles of one column tile, without stepping through them.

    The loop in :func:`job_cycles` is a max-plus recurrence: with ``freed_i =
    max(P_i, last_i + Q)`` (``P_i`` the output channel's pace for row tile i,
    ``Q`` the settle-and-readout time of the rows before the last), the last
    step obeys ``last_i = max(last_{i-1} + d, P_{i-1} + 1)`` with ``d = max(k,
    Q + 1)``, so ``last_{m-1} = max(last_0 + (m-1) d, max_j P_{j-1} + 1 + (m-1-j) d)``:
    one vectorised maximum instead of ``m_tiles`` Python iterations, exactly equal.
    """
    out_words = rows * n_o
    last = max(step + k - 1, freed + 1)
    if rows == 1:
        # the result register frees as the row loads: no output-pace term
        q, pace = settle, None
    else:
        count = (rows - 1) * n_o
        tiles = out_beat + out_words * np.arange(m_tiles, dtype=np.int64)
        if beat >= bpc:
            q = settle + 1 + count - 1
            pace = (tiles + count - 1) * beat // bpc
        else:
            q = settle + 1 + count - 1
            pace = tiles * beat // bpc + count - 1
    d = max(k, q + 1)
    if m_tiles > 1 and pace is not None:
        j = np.arange(1, m_tiles, dtype=np.int64)
        last = max(last + (m_tiles - 1) * d, int(np.max(pace[:-1] + 1 + (m_tiles - 1 - j) * d)))
    else:
        last += (m_tiles - 1) * d
    freed = last + q if pace is None else max(int(pace[-1]), last + q)
    return last, freed


def cycle_bound(params, m_tiles, n_tiles, k, dma):
    """A cheap upper bound of :func:`job_cycles` (for the driver's cycle budget), in O(1).

    As if nothing overlapped: every stream beat moved on its own at the DMA
    rate, then every tile computed and settled, then every parameter wait.
    """
    rows, cols, width = params["rows"], params["cols"], params["data_width"]
    beat = width // 8
    n_a, n_p, n_o = word_beats(rows, width), word_beats(4 * cols, width), word_beats(cols, width)
    in_beats = m_tiles * k * n_a + n_tiles * (PARAM_WORDS * n_p + WeightLayout.from_params(params).b_beats(k))
    out_beats = m_tiles * n_tiles * rows * n_o
    transfer = dma.latency + (in_beats + out_beats) * (beat // dma.bytes_per_cycle + 1)
    return transfer + m_tiles * n_tiles * (k + settle_delay(cols) + readout_delay(rows) + 1) + 2 * n_tiles


def plan_jobs(m, k, rows, a_depth):
    """Split M into jobs of whole row tiles whose A block fits the A buffer: [(row0, m_tiles), ...]."""
    row_tiles = -(-m // rows)
    per_job = max(1, min(a_depth // k, 0xFFFF))
    return [(t * rows, min(per_job, row_tiles - t)) for t in range(0, row_tiles, per_job)]


def gemm_cycles(params, shape, dma):
    """Cycles of a whole (M, N, K) GEMM: the sum of its jobs."""
    m, n, k = shape
    n_tiles = -(-n // params["cols"])
    return sum(job_cycles(params, mt, n_tiles, k, dma) for _, mt in plan_jobs(m, k, params["rows"], params["a_depth"]))
