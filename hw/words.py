"""Words on the shell's streams: gathering input beats into words, sending words out beat by beat.

Cores exchange whole words with the host; a word starts on a beat boundary and
takes ``beats`` beats of the ``data_width``-bit stream (see ``shell.word_beats``).
Both helpers add their logic to the caller's module, so a core's own ``sync``
statements written later (a reset on ``start``, a load) take precedence over
theirs, as Amaranth's last-assignment rule gives.
"""

from amaranth import Cat, Mux, Signal

__all__ = ["WordGatherer", "WordSender"]


class WordGatherer:
    """Collects accepted input beats into words of up to ``max_beats`` beats.

    The caller sets ``want`` (beats of the word being loaded) combinationally
    and raises the stream's ready; ``done`` is high in the cycle the last beat
    of a word is accepted, when :meth:`word` is the whole word. Clear ``count``
    on a new job.
    """

    def __init__(self, m, stream, max_beats, data_width):
        self.max_beats, self.data_width = max_beats, data_width
        self.buffer = Signal(max_beats * data_width)
        self.count = Signal(range(max_beats + 1))
        self.want = Signal(range(max_beats + 1))
        self.done = Signal()
        accepted = stream.valid & stream.ready
        last = self.count + 1 == self.want
        self.full = Cat(self.buffer[data_width:], stream.payload.data)
        m.d.comb += self.done.eq(accepted & last)
        with m.If(accepted):
            m.d.sync += [self.buffer.eq(self.full), self.count.eq(Mux(last, 0, self.count + 1))]

    def word(self, beats, nbits):
        """The ``nbits`` of a ``beats``-beat word completing this cycle."""
        low = (self.max_beats - beats) * self.data_width
        return self.full[low:low + nbits]


class WordSender:
    """Holds one word of ``beats`` beats and streams it out, TLAST on the last beat of the final word.

    ``free`` says the register can take a word this cycle (it is empty, or its
    last beat leaves now); load it with :meth:`load` under that condition. Call
    :meth:`connect` before the core's own load logic; ``reset()`` on a new job.
    """

    def __init__(self, stream, beats, data_width):
        self.stream, self.beats, self.data_width = stream, beats, data_width
        self.valid, self.final = Signal(), Signal()
        self.word = Signal(beats * data_width)
        self.beat = Signal(range(beats))
        self.sent = stream.valid & stream.ready
        self.word_sent = self.sent & (self.beat == beats - 1)
        self.free = ~self.valid | self.word_sent

    def reset(self):
        return [self.valid.eq(0), self.beat.eq(0)]

    def load(self, word, final):
        return [self.word.eq(word), self.valid.eq(1), self.final.eq(final)]

    def connect(self, m, done):
        """Drive the stream and ``done`` (high as the final word's last beat leaves)."""
        last_beat = self.beat == self.beats - 1
        m.d.comb += [
            self.stream.valid.eq(self.valid),
            self.stream.payload.data.eq(self.word.word_select(self.beat, self.data_width)),
            self.stream.payload.last.eq(self.final & last_beat),
            done.eq(self.word_sent & self.final),
        ]
        with m.If(self.sent):
            m.d.sync += self.beat.eq(Mux(last_beat, 0, self.beat + 1))
        with m.If(self.word_sent):
            m.d.sync += self.valid.eq(0)
