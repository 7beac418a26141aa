"""Closed-form cycle model of the flexarray core, walked command by command.

The decoder takes input beats one per cycle whenever it is in a loading state
(header, MAP/WEIGHTS/PARAMS payload, STEPS), so between two READOUTs the input
is one run of beats (``beats_done`` gives the cycle of any beat in it): the
model walks runs (one per tile, ``compiler.Run``), not folds. A step
fires with its last beat; its sums are written ``write_delay`` cycles later. A
READOUT hands its tile to the readout engine once the engine has taken the last
word of the tile before (the accumulation buffer has two banks), and the
decoder moves on the cycle after. The engine waits for the tile's last write,
issues one (word, lane group) item per cycle, each reaching the output FIFO
``readout_delay`` cycles after its read as one output beat; the sender takes
an item when the previous one has left. The output FIFO's credit never slows the readout below
the output stream's pace (its depth exceeds the read-to-FIFO delay), so no
term for it appears. Cycle indices count from the start write; the job takes
(last output beat + 1) cycles, what the CYCLES counter reports.
"""

from ...driver.device import beats_done
from .gateware import readout_delay, write_delay

__all__ = ["program_cycles", "cycle_bound"]


def program_cycles(design, program, dma):
    """Cycles of one job running ``program`` (a ``compiler.Program``) on ``design`` at DMA timing ``dma``."""
    beat, bpc, latency = design.beat_bytes, dma.bytes_per_cycle, dma.latency
    write = write_delay(design.multipliers, design.dn_depth)
    delay = readout_delay()
    ready = 0                 # first cycle the decoder takes the next beat
    in_beat = out_beat = 0
    last_sent = -1            # cycle the last output beat so far left
    taken = -1                # cycle the engine's last word so far was taken by the sender
    end = 0
    for run in program.runs:
        # the last step fires with the beat before the READOUT header
        last_fire = beats_done(in_beat, run.beats - 1, ready, beat, bpc, latency)
        header = max(last_fire + 1, latency + (in_beat + run.beats - 1) * beat // bpc)
        in_beat += run.beats
        words, out_word = run.words * run.word_beats, 1     # items: one output beat each
        handover = max(header + 1, taken + 1)
        first_read = max(handover + 1, last_fire + write + 1)
        arrive = first_read + delay          # the FIFO offers word w from cycle arrive + w
        start = max(arrive + 1, last_sent + 1)
        if words > 1:
            before_last = beats_done(out_beat, (words - 1) * out_word, start, beat, bpc, 0)
            taken = max(arrive + words - 1, before_last)
        else:
            taken = max(arrive, last_sent)
        last_sent = beats_done(out_beat, words * out_word, start, beat, bpc, 0)
        out_beat += words * out_word
        ready = handover + 1
        end = last_sent + 1
    return end


def cycle_bound(design, program, dma):
    """An upper bound of :func:`program_cycles` for a simulation's cycle budget."""
    return 2 * program_cycles(design, program, dma) + 1000
