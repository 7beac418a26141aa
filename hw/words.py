"""Words on the shell's streams: gathering input beats into words, sending words out beat by beat.

Cores exchange whole words with the host; a word starts on a beat boundary and
takes ``beats`` beats of the ``data_width``-bit stream (see ``shell.word_beats``).
Both blocks are components with stream ports; a core joins them to its own
stream ports with ``wiring.connect`` and drives only their control inputs:

    m.submodules.gather = gather = WordGatherer(max_beats=4, data_width=64)
    wiring.connect(m, wiring.flipped(self.input), gather.input)
    m.submodules.sender = sender = WordSender(beats=2, data_width=64)
    wiring.connect(m, sender.output, wiring.flipped(self.output))
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError
from .shell import beat_layout, check_data_width

__all__ = ["WordGatherer", "WordSender"]


def _check_beats(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"{name} must be a positive integer, not {value!r}")


class WordGatherer(wiring.Component):
    """Collects accepted input beats into words of up to ``max_beats`` beats.

    Ports: ``input`` (the beats; ``last`` is ignored here, the shell checks it),
    ``take`` (the core accepts beats this cycle: it is ``input.ready`` while the
    word is not complete, and ``words.ready`` too on its last beat), ``want``
    (beats of the word being loaded), ``clear`` (forget a partial word: a new
    job) and ``words``: valid in the cycle the last beat of a word is accepted.

    Beat ``i`` of a word goes to slot ``i``, so each bit of a word always comes
    from the same register (no multiplexer in front of a core's memories) and a
    beat writes one slot, not all of them. :meth:`word` picks the word completing
    this cycle (its earlier beats from the slots, the last one from the input);
    :meth:`held_word` is the same word read from the slots alone, valid in the
    cycle after it completed, so a core may file it from registers, a cycle
    later, rather than from the stream handshake. ``words.payload`` is the word
    of ``max_beats`` beats.
    """

    def __init__(self, *, max_beats, data_width):
        _check_beats("max_beats", max_beats)
        check_data_width(data_width)
        self.max_beats, self.data_width = max_beats, data_width
        self._slots = [Signal(data_width, name=f"slot{index}", reset_less=True) for index in range(max_beats)]
        super().__init__({
            "input": In(stream.Signature(beat_layout(data_width))),
            "take": In(1),
            "want": In(range(max_beats + 1)),
            "clear": In(1),
            "words": Out(stream.Signature(max_beats * data_width)),
        })

    def _check(self, beats, nbits):
        if not 1 <= beats <= self.max_beats or nbits > beats * self.data_width:
            raise ParameterError(f"a word of {nbits} bits in {beats} beats does not fit this gatherer "
                                 f"({self.max_beats} beats of {self.data_width} bits)")

    def word(self, beats, nbits):
        """The ``nbits`` of a ``beats``-beat word completing this cycle."""
        self._check(beats, nbits)
        return Cat(*self._slots[:beats - 1], self.input.payload.data)[:nbits]

    def held_word(self, beats, nbits):
        """The ``nbits`` of the ``beats``-beat word that completed in the previous cycle."""
        self._check(beats, nbits)
        return Cat(*self._slots[:beats])[:nbits]

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.max_beats + 1))
        # count + 1 kept in a register of its own, so ``last`` is an equality of
        # registers with ``want``, without an adder between them.
        count_next = Signal(range(self.max_beats + 2), init=1)
        last = count_next == self.want
        accepted = self.input.valid & self.input.ready
        m.d.comb += [
            self.input.ready.eq(self.take & (~last | self.words.ready)),
            self.words.payload.eq(Cat(*self._slots[:-1], self.input.payload.data)),
            self.words.valid.eq(self.input.valid & self.take & last),
        ]
        with m.If(accepted):
            m.d.sync += [count.eq(Mux(last, 0, count_next)), count_next.eq(Mux(last, 1, count_next + 1))]
        # A slot takes the beat at its position whenever one is offered, accepted or
        # not: the last write before ``count`` moves on is the accepted beat, and a
        # beat offered after a word completes lands only after the cycle that reads
        # it with held_word. So the slots' enables (most of the registers a beat
        # reaches) do not wait on the handshake, whose ready comes from the core's state.
        with m.If(self.input.valid):
            with m.Switch(count):
                for index, slot in enumerate(self._slots):
                    with m.Case(index):
                        m.d.sync += slot.eq(self.input.payload.data)
        with m.If(self.clear):
            m.d.sync += [count.eq(0), count_next.eq(1)]
        return m


class WordSender(wiring.Component):
    """Holds one word of ``beats`` beats and streams it out, TLAST on the last beat of the final word.

    Ports: ``words`` (a word and whether it is the job's ``final`` one; taken,
    ``words.ready``, when the holding register is empty or its last beat leaves
    this cycle), ``output`` (the beats), ``clear`` (drop the held word, a cycle
    later: a new job) and ``done`` (high as the final word's last beat leaves).
    """

    def __init__(self, *, beats, data_width):
        _check_beats("beats", beats)
        check_data_width(data_width)
        self.beats, self.data_width = beats, data_width
        super().__init__({
            "words": In(stream.Signature(data.StructLayout({"data": beats * data_width, "final": 1}))),
            "output": Out(stream.Signature(beat_layout(data_width))),
            "clear": In(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        valid, final = Signal(), Signal()
        word = Signal(self.beats * self.data_width)
        beat = Signal(range(self.beats))
        last_beat = beat == self.beats - 1
        sent = self.output.valid & self.output.ready
        word_sent = sent & last_beat
        m.d.comb += [
            self.words.ready.eq(~valid | word_sent),
            self.output.valid.eq(valid),
            self.output.payload.data.eq(word.word_select(beat, self.data_width)),
            self.output.payload.last.eq(final & last_beat),
            self.done.eq(word_sent & final),
        ]
        with m.If(sent):
            m.d.sync += beat.eq(Mux(last_beat, 0, beat + 1))
        with m.If(word_sent):
            m.d.sync += valid.eq(0)
        with m.If(self.words.valid & self.words.ready):
            m.d.sync += [word.eq(self.words.payload.data), valid.eq(1), final.eq(self.words.payload.final)]
        # a new job: nothing held, whatever the cycle's handshakes did. The clear is
        # registered first, so the start decode (an AXI write) does not reach the
        # holding register in the same cycle; no core offers a word in the cycle after
        # its start, so dropping the held word then is the same.
        clear = Signal()
        m.d.sync += clear.eq(self.clear)
        with m.If(clear):
            m.d.sync += [valid.eq(0), beat.eq(0)]
        return m
