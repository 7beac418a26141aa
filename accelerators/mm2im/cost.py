"""Closed-form cycle model of the MM2IM core, row by row (O(streamed input rows) per job).

* loader: three parameter words and the weights back to back from cycle 0;
  then per input row one idle cycle (WAIT_ROW) and ``ROW_WORDS`` words, waiting
  until the walker has released the buffer half of the row two back;
* walker: one step per cycle; row r starts the cycle after it is fully loaded
  or the cycle after the previous row's last step, whichever is later, and
  takes (valid ky) x (valid kx summed over the streamed columns) x chunks steps;
  its half is free from the cycle after its last step;
* col2IM and readout: the first pixel enters the output register
  ``first_output(rows)`` cycles after the last step (the adder tree, the
  read-modify-write, the readout's read and the requantizer's fixed latency;
  with no input row, counted from the last weight word), and beats leave one
  per cycle from the following cycle, paced by the stream-to-memory channel:
  the readout queue keeps the output register fed.

Times are cycle indices after the start write; a job takes (last output beat
+ 1) cycles, which is what the CYCLES counter reports.
"""

from ...driver.device import beats_done
from .gateware import PARAM_WORDS, word_beats, first_output

__all__ = ["beats_done", "job_cycles"]


def job_cycles(params, chunks, taps, row_words, steps_per_row, out_pixels, dma):
    """Cycles of one job: ``taps`` = KH * KW, ``steps_per_row`` the walker steps of each streamed row."""
    rows, cols, width = params["rows"], params["cols"], params["data_width"]
    beat = width // 8
    n_a, n_w, n_p, n_o = word_beats(rows, width), word_beats(rows * cols, width), word_beats(4 * cols, width), \
        word_beats(cols, width)
    bpc, latency = dma.bytes_per_cycle, dma.latency

    in_beat = PARAM_WORDS * n_p + taps * chunks * n_w
    last_step = beats_done(0, in_beat, 0, beat, bpc, latency)      # the last weight word, for an empty band
    wait_from = last_step + 1
    released = [-1, -1]
    for r, steps in enumerate(steps_per_row):
        half = r % 2
        start_load = max(wait_from, released[half]) + 1
        count = row_words * n_a
        loaded = beats_done(in_beat, count, start_load, beat, bpc, latency)
        in_beat += count
        wait_from = loaded + 1
        first = max(loaded + 1, last_step + 1)
        last_step = first + steps - 1
        released[half] = last_step + 1
    first_load = last_step + first_output(rows)
    return beats_done(0, out_pixels * n_o, first_load + 1, beat, bpc, 0) + 1
