"""Int8 output-stationary systolic GEMM core.

Job protocol (one DMA transfer in, one out), for C = A[M x K] . B[K x N]:

* input stream: the A block first, ``M_TILES`` row tiles of ``K`` words, each
  word one column of a row tile (``rows`` int8 values, k-major); then for each
  of ``N_TILES`` column tiles: four parameter words of ``cols`` 32-bit values
  (biases, multiplier low words, multiplier high words, shifts) and ``K`` words
  of B (``cols`` int8 values each). Every word starts on a beat boundary and is
  zero-padded to whole beats.
* output stream: for each column tile, for each row tile, ``rows`` words of
  ``cols`` int8 results (zero-padded to whole beats); TLAST on the last beat.

The A block stays in an on-chip buffer and is reused by every column tile;
B tiles are double-buffered so the next one loads while the current one is
computed. Each PE adds ``a * b`` into its accumulator; operands move one PE per
cycle (A to the right, B down) and the first/last flags travel with A, so tiles
follow each other without draining the array. Post-processing (bias,
requantization, output zero point, clamp) is the shared fixed-latency
requantizer of ``hw/requantize.py``, one per column: it takes one row of
``cols`` results per cycle as soon as the row is final and fills a buffer of
``rows`` rows ahead of the readout.

Requantization has the two modes of LiteRT's reference kernels (see
``driver/quant.py``), chosen per job by ``REQUANT_MODE``:

* 0, double rounding (CONV_2D): multiplier < 2^31 in the low word, shift word =
  left shift | right shift << 8;
* 1, float (FULLY_CONNECTED): the double scale ``M * 2^-E`` with its 53-bit
  mantissa ``M`` in the two multiplier words and ``E`` in the shift word; the
  product is rounded to 53 significant bits (half to even, as a double
  multiply does) and then to an integer with halves away from zero.
"""


from amaranth import Module, Signal, Cat, Const, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from .layout import (GEMM_CONFIG_REGISTERS, PARAM_WORDS, RESULT_DELAY, WeightLayout, readout_delay,
                     settle_delay)
from .pe import PEArray

from ...errors import ParameterError
from ...hw.shell import CoreBase, word_beats
from ...hw import pipeline
from ...hw.pipeline import LastFlag
from ...hw.dsp import registered_product
from ...hw.words import WordGatherer, WordSender
from ...hw.requantize import LATENCY as REQUANT_LATENCY, Requantizer, clamp_bounds, rounding_masks

#: Cycles from a row's total being selected to its row term being ready, as the row enters.
TERM_LEAD = 3

__all__ = ["GemmCore", "GEMM_CONFIG_REGISTERS", "PARAM_WORDS", "word_beats", "readout_delay", "settle_delay"]


def _positive(name, value, maximum):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise ParameterError(f"{name} must be an integer in 1..{maximum}, not {value!r}")


class GemmCore(CoreBase):
    """The GEMM core; wrap it in :class:`~accelkit.hw.shell.AcceleratorShell` to export it.

    Parameters are keyword-only: ``rows`` x ``cols`` PEs, stream ``data_width``
    in bits, ``k_max`` (power of two) words per B buffer half, ``a_depth``
    words in the A buffer (at least ``k_max``); ``mult_cols`` multiplier
    columns (default: all) and ``terms`` power-of-two terms per weight in the
    other, shift-PE, columns (see ``pe.py``). Raises :class:`ParameterError`.
    """

    config_registers = GEMM_CONFIG_REGISTERS

    def __init__(self, *, rows=8, cols=8, data_width=64, k_max=2048, a_depth=4096, mult_cols=None, terms=1,
                 stuck_pe=None):
        _positive("rows", rows, 64)
        _positive("cols", cols, 64)
        _positive("k_max", k_max, 32768)
        _positive("a_depth", a_depth, 1 << 20)
        if k_max & (k_max - 1):
            raise ParameterError(f"k_max must be a power of two, not {k_max}")
        if a_depth < k_max:
            raise ParameterError(f"a_depth ({a_depth}) must be at least k_max ({k_max}) to hold one row tile")
        self.rows, self.cols, self.k_max, self.a_depth = rows, cols, k_max, a_depth
        self.layout = WeightLayout(cols, cols if mult_cols is None else mult_cols, terms, data_width)
        if self.layout.words_per_row > k_max:
            raise ParameterError(f"k_max ({k_max}) must be at least the {self.layout.words_per_row} weight words "
                                 "one beat carries")
        self.info = rows | (cols << 8)
        self.stuck_pe = stuck_pe     # a fault injected on purpose (faults.py), not a parameter
        super().__init__(data_width)

    def elaborate(self, platform):
        m = Module()
        R, C, W = self.rows, self.cols, self.data_width
        layout = self.layout
        per_row = layout.words_per_row          # weight words per B memory row (a power of two)
        row_shift = per_row.bit_length() - 1
        n_a, n_b = word_beats(R, W), layout.beats_per_row
        n_p, n_o = word_beats(4 * C, W), word_beats(C, W)
        n_max = max(n_a, n_b, n_p)
        cfg = self.config

        # ``no_rw_check``: no word is read in the cycle it is written (A is loaded before the feeder
        # starts, a B half only while the feeder is not on it), so Yosys need not emulate the read's
        # old-data result around the block RAM: that emulation put a multiplexer (and a compare of
        # the two addresses) between each block RAM output and its register (99.95 MHz, gemm seed 3).
        m.submodules.a_mem = a_mem = Memory(shape=unsigned(8 * R), depth=self.a_depth, init=[],
                                            attrs={"no_rw_check": 1})
        m.submodules.b_mem = b_mem = Memory(shape=unsigned(layout.row_bits), depth=2 * self.k_max // per_row,
                                            init=[], attrs={"no_rw_check": 1})
        a_wr, a_rd = a_mem.write_port(), a_mem.read_port()
        b_wr, b_rd = b_mem.write_port(), b_mem.read_port()

        # Per-channel parameters, double-buffered like B: [half][bias, mult_lo, mult_hi, shift].
        # One 32-bit register per column (no reset: a tile's parameters are always loaded before
        # it is computed), not one word-wide register: a verilated model handles values wider
        # than 64 bits as arrays, at several operations per access.
        params = [[[Signal(32, name=f"param{h}_{kind}{j}", reset_less=True) for j in range(C)]
                   for kind in ("bias", "mult_lo", "mult_hi", "shift")] for h in range(2)]
        half_full = Signal(2)
        pending = Signal()      # a tile's results are in the PEs' result registers, not yet read out
        a_words = Signal(range(self.a_depth + 1))

        # ---- loader: gathers beats into words and files them ----
        m.submodules.gather = gather = WordGatherer(max_beats=n_max, data_width=W)
        wiring.connect(m, wiring.flipped(self.input), gather.input)
        # a word is filed in the cycle it completes; a new job forgets a partial one
        m.d.comb += [gather.words.ready.eq(1), gather.clear.eq(self.start)]
        want, word_done = gather.want, gather.words.valid

        def word(beats, nbytes=None, nbits=None):
            return gather.word(beats, nbits or 8 * nbytes)

        load_index = Signal(range(self.a_depth + 1))
        load_tile = Signal(16)
        load_half = load_tile[0]
        load_kind = Signal(range(PARAM_WORDS))
        load_k = Signal(range(self.k_max // per_row))     # B memory row being loaded
        b_rows = Signal(range(self.k_max // per_row + 1))
        m.d.comb += b_rows.eq((cfg.k + per_row - 1) >> row_shift)

        # Loop ends of the loader, the feeder and the readout are registered flags (hw/pipeline.py).
        k_end = LastFlag(load_k, b_rows, "load_k_end")
        tile_end = LastFlag(load_tile, cfg.n_tiles, "load_tile_end")
        with m.If(self.start):
            m.d.sync += [a_words.eq(cfg.m_tiles * cfg.k), load_index.eq(0), load_tile.eq(0),
                         half_full.eq(0), tile_end.restart()]

        # A parameter word is filed a cycle after it completes, from the gatherer's slots, so
        # the stream handshake does not reach every parameter register's enable in the cycle
        # the word completes. The tile's B words follow, so it lands long before it is read.
        param_load = Signal()
        param_slot = Signal(range(2 * PARAM_WORDS))
        param_word = gather.held_word(n_p, 32 * C)
        # With each shift word, its rounding masks (see the requantizer's copy below), decoded from
        # the word's slots: registers of their own per half, so no decode is behind the half select.
        mask_names = ("round_mask", "round_below", "round_above")
        masks = [[[Signal(width, name=f"{name}{h}_{j}", reset_less=True) for name, width in zip(mask_names, (32, 32, 33))]
                  for j in range(C)] for h in range(2)]
        m.d.sync += param_load.eq(0)
        with m.If(param_load):
            for h in range(2):
                for kind in range(PARAM_WORDS):
                    with m.If(param_slot == kind + PARAM_WORDS * h):
                        m.d.sync += [params[h][kind][j].eq(param_word[32 * j:32 * j + 32]) for j in range(C)]
                        if kind == 3:
                            for j in range(C):
                                decoded = rounding_masks(param_word[32 * j + 8:32 * j + 13])
                                m.d.sync += [held.eq(value) for held, value in zip(masks[h][j], decoded)]

        # The write ports' addresses and data do not depend on the loader's state, only
        # their enables do, so the state register does not fan out to every data bit.
        m.d.comb += [a_wr.addr.eq(load_index), a_wr.data.eq(word(n_a, R)),
                     b_wr.addr.eq(Cat(load_k, load_half)), b_wr.data.eq(word(n_b, nbits=layout.row_bits))]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "LOAD_A"
            with m.State("LOAD_A"):
                m.d.comb += [gather.take.eq(1), want.eq(n_a), a_wr.en.eq(word_done)]
                with m.If(word_done):
                    m.d.sync += load_index.eq(load_index + 1)
                    with m.If(load_index + 1 == a_words):
                        m.next = "WAIT_HALF"
            with m.State("WAIT_HALF"):
                with m.If(~half_full.bit_select(load_half, 1)):
                    m.d.sync += load_kind.eq(0)
                    m.next = "LOAD_PARAMS"
            with m.State("LOAD_PARAMS"):
                m.d.comb += [gather.take.eq(1), want.eq(n_p)]
                with m.If(word_done):
                    m.d.sync += [param_load.eq(1), param_slot.eq(Cat(load_kind, load_half))]
                    m.d.sync += [load_kind.eq(load_kind + 1), load_k.eq(0), k_end.restart()]
                    with m.If(load_kind == PARAM_WORDS - 1):
                        m.next = "LOAD_B"
            with m.State("LOAD_B"):
                m.d.comb += [gather.take.eq(1), want.eq(n_b), b_wr.en.eq(word_done)]
                with m.If(word_done):
                    m.d.sync += [load_k.eq(load_k + 1), k_end.step()]
                    with m.If(k_end.flag):
                        m.d.sync += [half_full.bit_select(load_half, 1).eq(1), load_tile.eq(load_tile + 1),
                                     tile_end.step()]
                        with m.If(tile_end.flag):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "WAIT_HALF"

        # ---- feeder: walks column tile n, row tile t, depth k; one step per cycle ----
        feeding = Signal()
        feed_n, feed_t = Signal(16), Signal(16)
        feed_k = Signal(range(self.k_max))
        a_base = Signal(range(self.a_depth + 1))
        feed_k_end = LastFlag(feed_k, cfg.k, "feed_k_end")
        feed_t_end = LastFlag(feed_t, cfg.m_tiles, "feed_t_end")
        feed_n_end = LastFlag(feed_n, cfg.n_tiles, "feed_n_end")
        step_last = feed_k_end.flag
        issue = Signal()
        m.d.comb += [
            issue.eq(feeding & half_full.bit_select(feed_n[0], 1) & ~(step_last & pending)),
            a_rd.addr.eq(a_base + feed_k),
            b_rd.addr.eq(Cat(feed_k[row_shift:], feed_n[0])),
            self.busy.eq(issue),
            # Idle for want of data: the A block or the current B tile is still loading.
            self.input_wait.eq(feeding & ~half_full.bit_select(feed_n[0], 1)),
            self.macs.eq(Mux(issue, R * C, 0)),
        ]
        with m.If(self.start):
            m.d.sync += [feeding.eq(1), feed_n.eq(0), feed_t.eq(0), feed_k.eq(0), a_base.eq(0), pending.eq(0),
                         feed_k_end.restart(), feed_t_end.restart(), feed_n_end.restart()]
        with m.Elif(issue):
            m.d.sync += [feed_k.eq(feed_k + 1), feed_k_end.step()]
            with m.If(step_last):
                m.d.sync += [feed_k.eq(0), feed_k_end.restart(), pending.eq(1), feed_t.eq(feed_t + 1),
                             feed_t_end.step(), a_base.eq(a_base + cfg.k)]
                with m.If(feed_t_end.flag):
                    m.d.sync += [feed_t.eq(0), feed_t_end.restart(), a_base.eq(0), feed_n.eq(feed_n + 1),
                                 feed_n_end.step()]
                    with m.If(feed_n_end.flag):
                        m.d.sync += feeding.eq(0)

        # ---- systolic array ----
        # Stage 1: memory data arrives one cycle after the address, with its flags.
        # Stage 2: the data registered, so no block RAM output drives a multiplier
        # or an adder in the same cycle (a block RAM's clock-to-output delay is
        # about a third of a 100 MHz cycle on the ECP5).
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_word = Signal(range(per_row))
        m.d.sync += [s1_valid.eq(issue), s1_first.eq(feed_k == 0), s1_last.eq(step_last),
                     s1_word.eq(feed_k[:row_shift])]
        b_word = b_rd.data if per_row == 1 else b_rd.data.word_select(s1_word, layout.word_bits)
        s2_valid, s2_first, s2_last = Signal(), Signal(), Signal()
        a_data = Signal(8 * R, reset_less=True)
        b_data = Signal(layout.word_bits, reset_less=True)
        m.d.sync += [s2_valid.eq(s1_valid), s2_first.eq(s1_first), s2_last.eq(s1_last)]
        # Loaded in every cycle (what uses them goes by the step's flags), so the block RAM
        # outputs meet no enable logic: with one, that was the critical path (106.8 MHz).
        m.d.sync += [a_data.eq(a_rd.data), b_data.eq(b_word)]

        def delayed(value, cycles, name, reset_less=False):
            return pipeline.delayed(m, value, cycles, name, reset_less)

        m.submodules.pe_array = array = PEArray(R, layout, self.stuck_pe)
        for i in range(R):
            m.d.comb += array.a[i].eq(delayed(a_data[8 * i:8 * i + 8].as_signed(), i, f"skew_a{i}", True))
        m.d.comb += array.flags.eq(Cat(s2_valid, s2_first, s2_last))
        for j in range(C):
            field = b_data[layout.offsets[j]:layout.offsets[j] + layout.bits(j)]
            m.d.comb += array.b[j].eq(delayed(field, j, f"skew_b{j}", True))
        results = array.results

        # Row i of a tile's results is final settle_delay(C) + i cycles after its
        # last step issues (the step reaches PE (i, C-1) C + i cycles after stage
        # 2, and its sum is in the result register RESULT_DELAY cycles later); the
        # readout may load row 0 readout_delay(R) + 1 cycles after the rows start to
        # enter. The row-term pipeline starts TERM_LEAD cycles before the rows enter.
        term_select = settle_delay(C) - TERM_LEAD
        term_token = delayed(issue & step_last, term_select, "term_token")
        entry_token = delayed(term_token, TERM_LEAD - 1, "entry_token")
        ready_token = delayed(entry_token, readout_delay(R), "result_token")

        # ---- requantization pipeline ----
        # Rows enter one per cycle as they become final, pass through the shared
        # fixed-latency requantizer (``hw/requantize.py``) and are written,
        # requantized, into a buffer of R rows. The readout may load row 0 once
        # both the step has crossed the array (R cycles after the rows start to
        # enter) and row 0 has left the pipeline (LATENCY + 1 cycles): the later of
        # the two. Nothing in the pipeline waits on the output stream; the next
        # tile's rows enter only after this tile's last row has been loaded.
        reading = Signal()
        read_row = Signal(range(R))
        read_t, read_n = Signal(16), Signal(16)
        read_t_end = LastFlag(read_t, cfg.m_tiles, "read_t_end")
        read_n_end = LastFlag(read_n, cfg.n_tiles, "read_n_end")
        read_half = read_n[0]
        m.submodules.sender = sender = WordSender(beats=n_o, data_width=W)
        wiring.connect(m, sender.output, wiring.flipped(self.output))
        load = reading & sender.words.ready

        entering = Signal()
        enter_row = Signal(range(R))
        with m.If(entry_token):
            m.d.sync += [entering.eq(1), enter_row.eq(0)]
        with m.Elif(entering):
            m.d.sync += enter_row.eq(enter_row + 1)
            with m.If(enter_row == R - 1):
                m.d.sync += entering.eq(0)
        # ---- per-row zero-point term ----
        # A product of two zero-point-shifted activations, sum_k (a - za)(b - zb),
        # needs -zb * sum_k a[m, k] per output row, which no per-column bias holds.
        # Each array row sums its A operands as they leave the A buffer (all rows
        # of a step at once, before the skew) and keeps the tile's total; as the
        # tile's rows enter the requantizer, a registered selection and two
        # registered multipliers form ROW_OFFSET x each row's total, one row per
        # cycle, TERM_LEAD cycles ahead; the term is added to the row's bias beside the
        # requantizer's first stage. The totals stay put until the tile's rows have
        # all entered: the next tile's last step waits for the readout (``pending``).
        sum_shape = signed(9 + (self.k_max - 1).bit_length())
        row_totals = []
        for i in range(R):
            running = Signal(sum_shape, name=f"row_sum{i}", reset_less=True)
            total = Signal(sum_shape, name=f"row_total{i}", reset_less=True)
            step_sum = Signal(sum_shape, name=f"row_step_sum{i}")
            m.d.comb += step_sum.eq(Mux(s2_first, 0, running) + a_data[8 * i:8 * i + 8].as_signed())
            with m.If(s2_valid):
                m.d.sync += running.eq(step_sum)
                with m.If(s2_last):
                    m.d.sync += total.eq(step_sum)
            # Row 0's total is selected term_select cycles after the last step issues; the
            # total is latched at the end of cycle 2 (stage 2), so before cycle 3 the
            # selection takes the sum being latched.
            row_totals.append(step_sum if (i == 0 and term_select < 3) else total)
        # The selected total times ROW_OFFSET as two registered products (hw/dsp.py), the
        # total's low bits (unsigned) and its top 9 bits (signed), each within one multiplier
        # block, summed in a third cycle: TERM_LEAD cycles from the selection to the term.
        term_row = Signal(range(R), name="term_row")
        selecting = Signal()
        selected = Signal(sum_shape, name="row_total_selected", reset_less=True)
        offset = Signal(signed(9), name="row_offset", reset_less=True)
        m.d.comb += selecting.eq(term_token if R == 1 else term_token | (term_row != 0))
        choice = _select(row_totals, term_row)
        with m.If(selecting):
            m.d.sync += selected.eq(choice)
            if R > 1:
                m.d.sync += term_row.eq(Mux(term_row == R - 1, 0, term_row + 1))
        m.d.sync += offset.eq(cfg.row_offset)
        low_bits = len(selected) - 9
        term_valid = delayed(selecting, 1, "term_valid")
        products = [registered_product(m, platform, f"row_term_{part}", a=a, b=cfg.row_offset, a_held=held,
                                       b_held=offset, a_enable=selecting, p_enable=term_valid)
                    for part, a, held in (("low", choice[:low_bits], selected[:low_bits]),
                                          ("high", choice[low_bits:].as_signed(),
                                           selected[low_bits:].as_signed()))]
        row_term = Signal(signed(32), name="row_term", reset_less=True)
        with m.If(delayed(term_valid, 1, "term_sum_valid")):
            m.d.sync += row_term.eq(products[0] + (products[1] << low_bits))

        # The row number travels beside the requantizers' values; its valid bit at each
        # stage is also the valid bit of that stage in all C requantizers (shared_valid).
        tags = [Cat(enter_row, entering)]
        for index in range(REQUANT_LATENCY):
            tags.append(delayed(tags[-1], 1, f"requant_tag{index + 1}"))
        stage_valid = Cat(*[tag[-1] for tag in tags[1:]])
        row, valid = tags[-1][:-1], tags[-1][-1]
        with m.If(self.start):
            m.d.sync += [reading.eq(0), read_t.eq(0), read_n.eq(0), read_t_end.restart(), read_n_end.restart()]
        with m.Elif(ready_token):
            m.d.sync += [reading.eq(1), read_row.eq(0)]

        # The parameters of the tile in the pipeline: its rows are all loaded
        # before read_n moves on, and the loader refills a half only after that.
        # They are copied into registers of their own, so the buffer-half select
        # (fanning out to every parameter bit) is not in any requantizer path; the
        # copy lags read_n by a cycle, and the next tile's rows enter many cycles later.
        # The copy is refreshed only in the cycle after a parameter word is filed or
        # the read half moves (the only times its source changes). It includes the
        # rounding masks, decoded when their shift word was filed: in the requantizer's
        # stage 12 they were the ECP5's critical path (83.6 MHz); registered there, a
        # verilated model worked them out for every value (870 instructions a cycle);
        # decoded behind the half select, an adder sat on the path from read_n (102.2 MHz).
        refresh, copied_half = Signal(), Signal()
        m.d.sync += [refresh.eq(param_load), copied_half.eq(read_half)]
        copy_now = refresh | (read_half != copied_half)

        def tile_copy(halves, name):
            copy = Signal(len(halves[0]), name=f"tile_{name}", reset_less=True)
            with m.If(copy_now):
                m.d.sync += copy.eq(Mux(read_half, halves[1], halves[0]))
            return copy

        def field(kind, j, width=32):
            return tile_copy([params[h][kind][j][:width] for h in range(2)], f"param{kind}_{j}")

        out_bytes = []
        clamp_low, clamp_high = clamp_bounds(m, cfg.act_min, cfg.act_max, cfg.output_zero_point)
        for j in range(C):
            m.submodules[f"requantizer{j}"] = requantizer = Requantizer(shared_valid=True, external_masks=True,
                                                                        shared_bounds=True)
            m.d.comb += [requantizer.clamp_low.eq(clamp_low), requantizer.clamp_high.eq(clamp_high)]
            for index, name in enumerate(mask_names):
                m.d.comb += getattr(requantizer, name).eq(tile_copy([masks[h][j][index] for h in range(2)],
                                                                    f"{name}_{j}"))
            # The requantizer reads its bias a cycle after the accumulator, when the
            # row term of the row (valid in the cycle the row enters) is in this sum.
            bias = field(0, j)
            biased = Signal(signed(32), name=f"bias_with_row_term{j}", reset_less=True)
            with m.If(entering):
                m.d.sync += biased.eq(bias + row_term)
            m.d.comb += [
                requantizer.valid.eq(entering),
                requantizer.stage_valid.eq(stage_valid),
                requantizer.acc.eq(_select([results[i][j] for i in range(R)], enter_row)),
                requantizer.bias.eq(biased),
                requantizer.float_mode.eq(cfg.requant_mode),
                requantizer.multiplier.eq(Cat(field(1, j), field(2, j, 22))),
                requantizer.shifts.eq(field(3, j, 16)),
                requantizer.zero_point.eq(cfg.output_zero_point),
                requantizer.act_min.eq(cfg.act_min),
                requantizer.act_max.eq(cfg.act_max),
            ]
            out_bytes.append(requantizer.value)
        m.submodules.row_buffer = row_buffer = Memory(shape=unsigned(8 * C), depth=R, init=[])
        buffer_wr, buffer_rd = row_buffer.write_port(), row_buffer.read_port(domain="comb")
        m.d.comb += [buffer_wr.addr.eq(row), buffer_wr.data.eq(Cat(*out_bytes)), buffer_wr.en.eq(valid),
                     buffer_rd.addr.eq(read_row)]
        row_word = Cat(buffer_rd.data, Const(0, n_o * W - 8 * C))
        final_row = (read_row == R - 1) & read_t_end.flag & read_n_end.flag

        m.d.comb += [sender.clear.eq(self.start), self.done.eq(sender.done), sender.words.valid.eq(reading),
                     sender.words.payload.data.eq(row_word), sender.words.payload.final.eq(final_row)]
        with m.If(load):
            m.d.sync += read_row.eq(read_row + 1)
            # The last row leaves the result registers and the tile's parameters:
            # the array may finish its next tile, and the loader may refill the half.
            with m.If(read_row == R - 1):
                m.d.sync += [reading.eq(0), pending.eq(0), read_t.eq(read_t + 1), read_t_end.step()]
                with m.If(read_t_end.flag):
                    m.d.sync += [read_t.eq(0), read_t_end.restart(), read_n.eq(read_n + 1), read_n_end.step(),
                                 half_full.bit_select(read_half, 1).eq(0)]
        return m


def _select(values, index):
    """``values[index]`` as a balanced tree of multiplexers on the bits of ``index``."""
    level = 0
    while len(values) > 1:
        values = [Mux(index[level], values[i + 1], values[i]) if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
        level += 1
    return values[0]
