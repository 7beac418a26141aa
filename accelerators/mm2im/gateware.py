"""MM2IM core: int8 transposed convolution as a MatMul followed by an on-chip col2IM accumulation.

For one output-channel tile of ``cols`` channels and one band of output rows,
every input pixel is multiplied by the filter taps (a MatMul of input pixels x
(tap, output channel)), and each partial product vector is added straight into
the accumulation buffer word of the output pixel it lands on (col2IM). Taps
that would land outside the band are never issued: for each input row the core
walks only the kernel rows ``ky`` with ``0 <= base_y + ky < OUT_H`` and, per
input column, only the kernel columns with ``0 <= base_x + kx < OUT_W``, where
``base = i * stride - pad`` (relative to the band). So no cycle and no MAC is
spent on a contribution that the crop would discard, and none on the zeros a
zero-insertion lowering would multiply.

Array: ``rows`` x ``cols`` PEs. In one step it takes ``rows`` input channels of
one input pixel (plus the input offset, -zero point, added as the row is
loaded, so the operands are 10-bit) and the ``rows`` x ``cols`` weights of one
tap, and adds ``cols`` dot products
of length ``rows`` (registered products, then a registered adder tree);
``CIN_CHUNKS`` steps cover all input channels, then the ``cols`` sums are added
into the accumulation buffer, a block RAM with synchronous reads, by a
read-modify-write pipeline (read, add, write) with a same-address bypass. Loop order per job: input row, valid
``ky``, input column, valid ``kx``, input-channel chunk.

Job protocol (one DMA transfer in, one out):

* input stream: three parameter words of ``cols`` 32-bit values (biases,
  multipliers, shifts = left | right << 8); ``W_WORDS`` weight words of
  ``rows * cols`` int8 (tap-major, then chunk; byte ``r * cols + c`` is
  input channel ``chunk * rows + r`` of output channel ``c``); then ``IN_ROWS``
  input rows of ``ROW_WORDS = IN_W * CIN_CHUNKS`` words of ``rows`` int8.
  Every word starts on a beat boundary and is zero-padded to whole beats.
  Input rows are double-buffered: the next row loads while one is computed.
* output stream: ``OUT_PIXELS`` words of ``cols`` int8 results, row-major over
  the band, each requantized on its way out by the shared fixed-latency
  requantizer (``hw/requantize.py``: bias, TFLite's double-rounding fixed-point
  multiplier per channel, output zero point, clamp) into a queue that feeds the
  output stream; reading a word clears it for the next job. TLAST on the last
  beat.

The host crops the input to the rows and columns that contribute to the band,
so every streamed row and column has at least one valid tap.
"""


from amaranth import Module, Signal, Cat, Const, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ...errors import ParameterError
from ...hw.registers import Register, CONFIG_BASE
from ...hw.shell import CoreBase, word_beats
from amaranth.lib.fifo import SyncFIFO

from ...hw.dsp import registered_product
from ...hw.requantize import Requantizer, LATENCY as REQUANT_LATENCY
from ...hw import pipeline
from ...hw.words import WordGatherer, WordSender

__all__ = ["Mm2imCore", "MM2IM_CONFIG_REGISTERS", "PARAM_WORDS", "word_beats", "MAX_KERNEL", "MAX_STRIDE",
           "tree_levels", "rmw_done", "first_output"]

MAX_KERNEL = 15
MAX_STRIDE = 15
PARAM_WORDS = 3
#: Bits of an input value with the input offset added (int8 plus a 9-bit signed offset).
OPERAND_BITS = 10


def _reg(name, offset, width, signed=False, doc=""):
    return Register(name, CONFIG_BASE + offset, "rw", width, signed=signed, doc=doc)


MM2IM_CONFIG_REGISTERS = (
    _reg("IN_W", 0x00, 16, doc="input columns streamed per row (after cropping)"),
    _reg("IN_ROWS", 0x04, 16, doc="input rows streamed in this job (0: the band only gets its bias)"),
    _reg("CIN_CHUNKS", 0x08, 16, doc="input-channel chunks of `rows` channels"),
    _reg("KH", 0x0C, 4, doc="kernel height"),
    _reg("KW", 0x10, 4, doc="kernel width"),
    _reg("STRIDE_H", 0x14, 4, doc="vertical stride"),
    _reg("STRIDE_W", 0x18, 4, doc="horizontal stride"),
    _reg("BASE_Y", 0x1C, 17, signed=True, doc="output row (in the band) of tap 0 of the first streamed row"),
    _reg("BASE_X", 0x20, 17, signed=True, doc="output column of tap 0 of the first streamed column"),
    _reg("OUT_H", 0x24, 16, doc="output rows in the band"),
    _reg("OUT_W", 0x28, 16, doc="output columns"),
    _reg("OUT_PIXELS", 0x2C, 24, doc="OUT_H * OUT_W"),
    _reg("W_WORDS", 0x30, 24, doc="KH * KW * CIN_CHUNKS weight words"),
    _reg("ROW_WORDS", 0x34, 24, doc="IN_W * CIN_CHUNKS words per input row"),
    _reg("INPUT_OFFSET", 0x38, 9, signed=True, doc="added to every input value (minus the input zero point)"),
    _reg("OUTPUT_ZERO_POINT", 0x3C, 8, signed=True, doc="added after requantization"),
    _reg("ACT_MIN", 0x40, 8, signed=True, doc="lower clamp of the int8 output"),
    _reg("ACT_MAX", 0x44, 8, signed=True, doc="upper clamp of the int8 output"),
    # Products the walk's address counters need, so the core has no address multiplier.
    _reg("W_KX_INIT", 0x48, 26, signed=True, doc="-BASE_X * CIN_CHUNKS"),
    _reg("W_KX_STEP", 0x4C, 24, doc="STRIDE_W * CIN_CHUNKS"),
    _reg("W_KY_INIT", 0x50, 26, signed=True, doc="-BASE_Y * KW * CIN_CHUNKS"),
    _reg("W_KY_STEP", 0x54, 24, doc="STRIDE_H * KW * CIN_CHUNKS"),
    _reg("W_KY_ROW", 0x58, 24, doc="KW * CIN_CHUNKS (weight words per kernel row)"),
    _reg("ACC_Y_INIT", 0x5C, 26, signed=True, doc="BASE_Y * OUT_W"),
    _reg("ACC_Y_STEP", 0x60, 24, doc="STRIDE_H * OUT_W"),
)


def _power_of_two(name, value, maximum):
    if (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum
            or value & (value - 1)):
        raise ParameterError(f"{name} must be a power of two in 1..{maximum}, not {value!r}")


class Mm2imCore(CoreBase):
    """The MM2IM core; wrap it in :class:`~accelkit.hw.shell.AcceleratorShell` to export it.

    ``rows`` input-channel lanes x ``cols`` output-channel lanes; ``w_depth``
    weight words, ``in_depth`` words per input-row buffer half, ``acc_depth``
    accumulation words (output pixels per band). Raises :class:`ParameterError`.
    """

    config_registers = MM2IM_CONFIG_REGISTERS

    def __init__(self, *, rows=8, cols=8, data_width=64, w_depth=1024, in_depth=512, acc_depth=1024):
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
                raise ParameterError(f"{name} must be an integer in 1..64, not {value!r}")
        _power_of_two("w_depth", w_depth, 1 << 16)
        _power_of_two("in_depth", in_depth, 1 << 16)
        _power_of_two("acc_depth", acc_depth, 1 << 20)
        self.rows, self.cols = rows, cols
        self.w_depth, self.in_depth, self.acc_depth = w_depth, in_depth, acc_depth
        self.info = rows | (cols << 8) | (1 << 16)
        super().__init__(data_width)

    def elaborate(self, platform):
        m = Module()
        R, C, W = self.rows, self.cols, self.data_width
        n_a, n_w, n_p, n_o = word_beats(R, W), word_beats(R * C, W), word_beats(4 * C, W), word_beats(C, W)
        n_max = max(n_a, n_w, n_p)
        cfg = self.config

        # No ``no_rw_check`` here (gemm has it): on mm2im it moved the loader's write enables into the
        # block RAMs' own inputs and the gatherer's count became the critical path (92.5 MHz, seed 2).
        m.submodules.w_mem = w_mem = Memory(shape=unsigned(8 * R * C), depth=self.w_depth, init=[])
        m.submodules.in_mem = in_mem = Memory(shape=unsigned(OPERAND_BITS * R), depth=2 * self.in_depth, init=[])
        m.submodules.acc_mem = acc_mem = Memory(shape=unsigned(32 * C), depth=self.acc_depth, init=[])
        w_wr, w_rd = w_mem.write_port(), w_mem.read_port()
        in_wr, in_rd = in_mem.write_port(), in_mem.read_port()
        w_addr = Signal.like(w_rd.addr, name="w_read_addr", reset_less=True)
        in_read_addr = Signal.like(in_rd.addr, name="in_read_addr", reset_less=True)
        acc_wr, acc_rd = acc_mem.write_port(), acc_mem.read_port()
        acc_data = Signal(32 * C, name="acc_data", reset_less=True)     # the read data, registered

        params = [Signal(32 * C, name=f"param_{kind}") for kind in ("bias", "mult", "shift")]

        def delayed(value, cycles, name):
            return pipeline.delayed(m, value, cycles, name)

        # ---- per-job constants ----
        # Registered arithmetic on the configuration, which holds still for the
        # whole job, so that loop ends compare a counter with a register instead
        # of adding and comparing in one cycle. Each settles one or two cycles
        # after START, before any loop uses it.
        def constant(value, shape, name):
            held = Signal(shape, name=f"job_{name}", reset_less=True)
            m.d.sync += held.eq(value)
            return held

        coord, pointer = signed(20), signed(28)
        w_words_m1 = constant(cfg.w_words - 1, 24, "w_words_m1")
        row_words_m1 = constant(cfg.row_words - 1, 24, "row_words_m1")
        out_pixels_m1 = constant(cfg.out_pixels - 1, 24, "out_pixels_m1")
        in_rows_m1 = constant(cfg.in_rows - 1, 16, "in_rows_m1")
        in_rows_m2 = constant(cfg.in_rows - 2, 16, "in_rows_m2")
        in_w_m1 = constant(cfg.in_w - 1, 16, "in_w_m1")
        in_w_m2 = constant(cfg.in_w - 2, 16, "in_w_m2")
        one_column = constant(cfg.in_w == 1, 1, "one_column")
        chunks_m2 = constant(cfg.cin_chunks - 2, 16, "chunks_m2")
        one_chunk = constant(cfg.cin_chunks == 1, 1, "one_chunk")
        kw_m1 = constant(cfg.kw - 1, 4, "kw_m1")
        kh_m1 = constant(cfg.kh - 1, 4, "kh_m1")
        x_minus_base = constant(-cfg.base_x, coord, "x_minus_base")
        y_minus_base = constant(-cfg.base_y, coord, "y_minus_base")
        x_room = constant(constant(cfg.out_w - 1, coord, "out_w_m1") - cfg.base_x, coord, "x_room")
        y_room = constant(constant(cfg.out_h - 1, coord, "out_h_m1") - cfg.base_y, coord, "y_room")

        def decoder(name, load, advance, wrap, sums, decode):
            """The next column's (or row's) decoded fields, registered one step ahead of the walk.

            ``sums`` maps a name to (first value, stride, shape): running sums that
            take the first value on ``load`` (and on an ``advance`` while ``wrap``
            holds) and add the stride on an ``advance``. ``decode`` maps them to
            {field: (shape, value)}; the fields are registered on ``advance``.
            """
            raw = {}
            for key, (first, stride, shape) in sums.items():
                value = Signal(shape, name=f"{name}_{key}", reset_less=True)
                with m.If(load):
                    m.d.sync += value.eq(first)
                with m.Elif(advance):
                    m.d.sync += value.eq(Mux(wrap, first, value + stride))
                raw[key] = value
            fields = {}
            for key, (shape, value) in decode(raw).items():
                held = Signal(shape, name=f"next_{name}_{key}", reset_less=True)
                with m.If(advance):
                    m.d.sync += held.eq(value)
                fields[key] = held
            return fields
        half_full = Signal(2)

        # ---- loader: gathers beats into words and files them ----
        m.submodules.gather = gather = WordGatherer(max_beats=n_max, data_width=W)
        wiring.connect(m, wiring.flipped(self.input), gather.input)
        # a word is filed in the cycle it completes; a new job forgets a partial one
        m.d.comb += [gather.words.ready.eq(1), gather.clear.eq(self.start)]
        want, word_done = gather.want, gather.words.valid

        def word(beats, nbytes):
            return gather.word(beats, 8 * nbytes)

        def with_offset(values):
            # Input values are stored with the input offset already added, so the
            # operand stage takes block RAM data straight into a register.
            return Cat(*[(values[8 * r:8 * r + 8].as_signed() + cfg.input_offset)[:OPERAND_BITS] for r in range(R)])

        load_index = Signal(24)
        load_kind = Signal(2)
        load_row = Signal(16)
        load_half = load_row[0]
        empty_done = Signal()     # the weights are in and there is no input row: only the bias to read out

        with m.If(self.start):
            m.d.sync += [half_full.eq(0), load_kind.eq(0), load_index.eq(0), load_row.eq(0)]
        # A parameter word is filed a cycle after it completes, from the gatherer's slots, so
        # the stream handshake does not reach the parameter registers' enables.
        param_load, param_kind = Signal(), Signal(2)
        param_word = gather.held_word(n_p, 32 * C)
        m.d.sync += param_load.eq(0)
        with m.If(param_load):
            for kind in range(PARAM_WORDS):
                with m.If(param_kind == kind):
                    m.d.sync += params[kind].eq(param_word)
        # The write ports' addresses and data do not depend on the loader's state, only
        # their enables do, so the state register does not fan out to every data bit.
        m.d.comb += [w_wr.addr.eq(load_index), w_wr.data.eq(word(n_w, R * C)),
                     in_wr.addr.eq(Cat(load_index[:len(in_wr.addr) - 1], load_half)),
                     in_wr.data.eq(with_offset(word(n_a, R)))]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "LOAD_PARAMS"
            with m.State("LOAD_PARAMS"):
                m.d.comb += [gather.take.eq(1), want.eq(n_p)]
                with m.If(word_done):
                    m.d.sync += [param_load.eq(1), param_kind.eq(load_kind)]
                    m.d.sync += load_kind.eq(load_kind + 1)
                    with m.If(load_kind == PARAM_WORDS - 1):
                        m.next = "LOAD_W"
            with m.State("LOAD_W"):
                m.d.comb += [gather.take.eq(1), want.eq(n_w), w_wr.en.eq(word_done)]
                with m.If(word_done):
                    m.d.sync += load_index.eq(load_index + 1)
                    with m.If(load_index == w_words_m1):
                        m.d.sync += load_index.eq(0)
                        with m.If(cfg.in_rows == 0):
                            m.d.comb += empty_done.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "WAIT_ROW"
            with m.State("WAIT_ROW"):
                with m.If(~half_full.bit_select(load_half, 1)):
                    m.next = "LOAD_ROW"
            with m.State("LOAD_ROW"):
                m.d.comb += [gather.take.eq(1), want.eq(n_a), in_wr.en.eq(word_done)]
                with m.If(word_done):
                    m.d.sync += load_index.eq(load_index + 1)
                    with m.If(load_index == row_words_m1):
                        m.d.sync += [load_index.eq(0), half_full.bit_select(load_half, 1).eq(1),
                                     load_row.eq(load_row + 1)]
                        with m.If(load_row == in_rows_m1):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "WAIT_ROW"

        # ---- walker: input row, valid ky, input column, valid kx, channel chunk; one step per cycle ----
        # No step decision adds and compares in one cycle: loop ends are
        # registered flags or 4-bit equalities, and the taps of the next column
        # (and of the next row) are decoded a column (a row) ahead from running
        # sums that step by the stride, so starting a column only copies
        # registers. Memory addresses are counters, never products: the host
        # supplies each product the walk needs as a per-job constant (the *_INIT
        # and *_STEP registers).
        feeding = Signal()
        row = Signal(16)
        cur_half = row[0]
        ky, kx = Signal(4), Signal(4)
        ky_end, kx_end = Signal(4), Signal(4)            # last valid tap of this row, of this column
        ix, chunk = Signal(16), Signal(16)
        last_chunk, first_chunk, last_ix, last_row = Signal(), Signal(), Signal(), Signal()
        last_kx, last_ky = kx == kx_end, ky == ky_end
        issue = Signal()
        final_step = Signal()
        # Weight word (ky * KW + kx) * CIN_CHUNKS + chunk = w_ky_base + w_column; the
        # first valid kx of a column starts w_column at max(0, -base_x) * CIN_CHUNKS.
        w_ky_base, w_column = Signal(24), Signal(24)
        # Input word ix * CIN_CHUNKS + chunk of the current row.
        in_addr, in_column = Signal(24), Signal(24)
        # Accumulation word (base_y + ky) * OUT_W + base_x + kx = acc_row + acc_column.
        acc_row, acc_column = Signal(24), Signal(24)

        # The decoders start two cycles after START, when the per-job constants
        # have settled, and are primed by two steps; the first step can issue
        # seven cycles after START at the earliest (three parameter words, a
        # weight word, WAIT_ROW, a row word), after the priming.
        load = delayed(self.start, 2, "walk_load")
        prime = delayed(load, 1, "walk_prime1") | delayed(load, 2, "walk_prime2")
        column_advance, row_advance = Signal(), Signal()
        raw_column = Signal(16)           # index of the column the running sums are at (cyclic over IN_W)
        raw_wrap = raw_column == in_w_m1
        with m.If(load):
            m.d.sync += raw_column.eq(0)
        with m.Elif(column_advance | prime):
            m.d.sync += raw_column.eq(Mux(raw_wrap, 0, raw_column + 1))

        def positive(value):
            return Mux(value[-1], 0, value)

        def smaller(value, bound):
            return Mux(value < bound, value, bound)

        # columns repeat for every ky of every row, so their sums wrap at IN_W
        next_column = decoder("column", load, column_advance | prime, raw_wrap, {
            "base": (cfg.base_x, cfg.stride_w, coord),
            "minus_base": (x_minus_base, -cfg.stride_w, coord),
            "room": (x_room, -cfg.stride_w, coord),
            "w_pointer": (cfg.w_kx_init, -cfg.w_kx_step, pointer),
        }, lambda raw: {
            "kx": (4, positive(raw["minus_base"])[:4]),
            "kx_end": (4, smaller(raw["room"], kw_m1)[:4]),
            "w_column": (24, positive(raw["w_pointer"])[:24]),
            "acc_column": (24, positive(raw["base"])[:24]),
        })
        next_row = decoder("row", load, row_advance | prime, Const(0), {
            "minus_base": (y_minus_base, -cfg.stride_h, coord),
            "room": (y_room, -cfg.stride_h, coord),
            "w_pointer": (cfg.w_ky_init, -cfg.w_ky_step, pointer),
            "acc_pointer": (cfg.acc_y_init, cfg.acc_y_step, pointer),
        }, lambda raw: {
            "ky": (4, positive(raw["minus_base"])[:4]),
            "ky_end": (4, smaller(raw["room"], kh_m1)[:4]),
            "w_ky_base": (24, positive(raw["w_pointer"])[:24]),
            "acc_row": (24, positive(raw["acc_pointer"])[:24]),
        })

        def start_column():
            m.d.sync += [kx.eq(next_column["kx"]), kx_end.eq(next_column["kx_end"]),
                         w_column.eq(next_column["w_column"]), acc_column.eq(next_column["acc_column"])]

        def start_row():
            m.d.sync += [ky.eq(next_row["ky"]), ky_end.eq(next_row["ky_end"]),
                         w_ky_base.eq(next_row["w_ky_base"]), acc_row.eq(next_row["acc_row"])]

        m.d.comb += [
            issue.eq(feeding & half_full.bit_select(cur_half, 1)),
            column_advance.eq(issue & last_chunk & last_kx),
            row_advance.eq(column_advance & last_ix & last_ky),
            final_step.eq(row_advance & last_row),
            w_rd.addr.eq(w_addr),
            in_rd.addr.eq(in_read_addr),
            self.busy.eq(issue),
            self.input_wait.eq(feeding & ~half_full.bit_select(cur_half, 1)),
            self.macs.eq(Mux(issue, R * C, 0)),
        ]

        with m.If(self.start):
            m.d.sync += [feeding.eq(cfg.in_rows != 0), row.eq(0), last_row.eq(cfg.in_rows == 1),
                         chunk.eq(0), last_chunk.eq(cfg.cin_chunks == 1), first_chunk.eq(1),
                         ix.eq(0), last_ix.eq(cfg.in_w == 1), in_addr.eq(0), in_column.eq(0)]
        with m.Elif(prime):
            start_column()
            start_row()
        with m.Elif(issue):
            m.d.sync += [chunk.eq(chunk + 1), last_chunk.eq(chunk == chunks_m2), first_chunk.eq(0),
                         w_column.eq(w_column + 1), in_addr.eq(in_addr + 1)]
            with m.If(last_chunk):
                m.d.sync += [chunk.eq(0), last_chunk.eq(one_chunk), first_chunk.eq(1), kx.eq(kx + 1),
                             in_addr.eq(in_column), acc_column.eq(acc_column + 1)]
                with m.If(last_kx):
                    start_column()
                    m.d.sync += [ix.eq(ix + 1), last_ix.eq(ix == in_w_m2),
                                 in_addr.eq(in_addr + 1), in_column.eq(in_addr + 1)]
                    with m.If(last_ix):
                        m.d.sync += [ix.eq(0), last_ix.eq(one_column), ky.eq(ky + 1),
                                     w_ky_base.eq(w_ky_base + cfg.w_ky_row), acc_row.eq(acc_row + cfg.out_w),
                                     in_addr.eq(0), in_column.eq(0)]
                        with m.If(last_ky):
                            start_row()
                            m.d.sync += [row.eq(row + 1), last_row.eq(row == in_rows_m2),
                                         half_full.bit_select(cur_half, 1).eq(0)]
                            with m.If(last_row):
                                m.d.sync += feeding.eq(0)

        # ---- MatMul: one step's rows x cols products, summed per output channel over the chunks ----
        # Stage 0: addresses. Stage 1: memory data. Then the operands (twice), the products, registered, and a
        # registered adder tree (tree_levels(R) levels); the flags travel alongside.
        # Stage 0: the memory addresses registered (the weight address is a sum of two
        # counters, and its adder fanned out to every weight block RAM's address in one
        # cycle), with the step's flags and accumulation address.
        s0_valid, s0_first, s0_last = Signal(), Signal(), Signal()
        s0_addr = Signal(range(self.acc_depth))
        m.d.sync += [s0_valid.eq(issue), s0_first.eq(first_chunk), s0_last.eq(last_chunk),
                     s0_addr.eq(acc_row + acc_column), w_addr.eq(w_ky_base + w_column),
                     in_read_addr.eq(Cat(in_addr[:len(in_rd.addr) - 1], cur_half))]
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_addr = Signal(range(self.acc_depth))
        m.d.sync += [s1_valid.eq(s0_valid), s1_first.eq(s0_first), s1_last.eq(s0_last), s1_addr.eq(s0_addr)]
        s2_valid = Signal()
        m.d.sync += s2_valid.eq(s1_valid)
        # Stage 2: the operands (the input buffer holds them with the input offset
        # added on load) and weights registered, so no block RAM output drives an
        # adder or a multiplier in the same cycle. These registers load every cycle
        # (stage 3 loads only valid ones), so the block RAM output meets no enable
        # logic on its way in: that path (5.8 ns out of the block, 3.3 ns of routing)
        # was mm2im's critical one once the input handshake's fan-out was cut.
        operands = []
        for r in range(R):
            value = Signal(signed(10), name=f"a{r}", reset_less=True)
            m.d.sync += value.eq(in_rd.data[OPERAND_BITS * r:OPERAND_BITS * (r + 1)].as_signed())
            operands.append(value)
        weights = Signal(8 * R * C, name="weights", reset_less=True)
        m.d.sync += weights.eq(w_rd.data)
        # Stage 3: the operands and weights again, the multipliers' own operand registers
        # (hw/dsp.py: on an ECP5 those of the multiplier blocks, so neither the block RAM
        # output nor the fabric-to-DSP routing is in a path with a multiply).
        operands3 = []
        for r in range(R):
            value = Signal(signed(10), name=f"a{r}_3", reset_less=True)
            with m.If(s2_valid):
                m.d.sync += value.eq(operands[r])
            operands3.append(value)
        weights3 = Signal(8 * R * C, name="weights_3", reset_less=True)
        with m.If(s2_valid):
            m.d.sync += weights3.eq(weights)
        dots = []
        for c in range(C):
            level = []
            for r in range(R):
                bits = slice(8 * (r * C + c), 8 * (r * C + c) + 8)
                level.append(registered_product(m, platform, f"mac{r}_{c}", a=operands[r], b=weights[bits].as_signed(),
                                                a_held=operands3[r], b_held=weights3[bits].as_signed(),
                                                a_enable=s2_valid, b_enable=s2_valid))
            depth = 0
            while len(level) > 1:
                depth += 1
                pairs = []
                for i in range(0, len(level), 2):
                    if i + 1 == len(level):
                        total = level[i]
                    else:
                        total = level[i] + level[i + 1]
                    held = Signal(signed(18 + depth), name=f"tree{depth}_{i // 2}_{c}", reset_less=True)
                    m.d.sync += held.eq(total)
                    pairs.append(held)
                level = pairs
            dots.append(level[0])
        flags = delayed(Cat(s1_valid, s1_first, s1_last, s1_addr), 3 + tree_levels(R), "dot_flags")
        dot_valid, dot_first, dot_last, dot_addr = flags[0], flags[1], flags[2], flags[3:]
        partial = []
        for c in range(C):
            total = Signal(signed(32), name=f"psum{c}", reset_less=True)
            with m.If(dot_valid):
                m.d.sync += total.eq(Mux(dot_first, 0, total) + dots[c])
            partial.append(total)
        rmw_valid = Signal()
        rmw_addr = Signal(range(self.acc_depth))
        m.d.sync += [rmw_valid.eq(dot_valid & dot_last), rmw_addr.eq(dot_addr)]

        # ---- col2IM: add the partial sums into their output pixel ----
        # A pipelined read-modify-write on block RAM (synchronous reads): read
        # (stage 0), memory data (stage 1), the data registered twice (stages 2 and
        # 3: a block RAM's clock-to-output delay is half a 100 MHz cycle on the ECP5,
        # so the register it feeds has no other input and sits beside it), add,
        # write (stage 4). The memory cannot hold the sums of the four operations
        # issued just before (written at stage 4 in the cycle of the read or later):
        # the newest of them with the same address is bypassed in, chosen by address
        # matches found a stage early.
        r_valid = [rmw_valid] + [Signal(name=f"r{i}_valid") for i in range(1, 8)]
        r_addr = [rmw_addr] + [Signal(range(self.acc_depth), name=f"r{i}_addr") for i in range(1, 8)]
        r1_partial, r2_partial, r3_partial = (Signal(32 * C, reset_less=True, name=f"r{i}_partial")
                                              for i in (1, 2, 3))
        r3_stored = Signal(32 * C, reset_less=True)
        sums = {i: Signal(32 * C, reset_less=True, name=f"r{i}_sum") for i in (4, 5, 6, 7)}
        bypass = {i: Signal(name=f"from_r{i}") for i in (4, 5, 6, 7)}
        m.d.sync += [r_valid[i].eq(r_valid[i - 1]) for i in range(1, 8)]
        m.d.sync += [r_addr[i].eq(r_addr[i - 1]) for i in range(1, 8)]
        m.d.sync += [
            r1_partial.eq(Cat(*partial)), r2_partial.eq(r1_partial), r3_partial.eq(r2_partial),
            acc_data.eq(acc_rd.data), r3_stored.eq(acc_data),
            sums[5].eq(sums[4]), sums[6].eq(sums[5]), sums[7].eq(sums[6]),
        ]
        # In stage 3 next cycle, r3 will be in stage 4, r4 in stage 5, and so on.
        m.d.sync += [bypass[i].eq(r_valid[i - 1] & (r_addr[i - 1] == r_addr[2])) for i in (4, 5, 6, 7)]
        stored = Mux(bypass[4], sums[4], Mux(bypass[5], sums[5], Mux(bypass[6], sums[6],
                                                                      Mux(bypass[7], sums[7], r3_stored))))
        m.d.sync += sums[4].eq(Cat(*[(stored[32 * c:32 * c + 32].as_signed()
                                      + r3_partial[32 * c:32 * c + 32].as_signed())[:32] for c in range(C)]))

        # The last step's sums are in the memory RMW_DONE cycles after it issues;
        # the readout's first read comes then.
        finished = Signal()
        m.d.comb += finished.eq((issue & final_step) | empty_done)
        start_reading = delayed(finished, rmw_done(R) - 1, "finished")

        # ---- readout: read a pixel (clearing it), requantize it, queue it, stream it out ----
        # Reads issue only while the queue has room for everything in flight, so
        # the requantizer never has to stop; the queue is deep enough that the
        # sender never waits for a pixel once the first one is in.
        m.submodules.sender = sender = WordSender(beats=n_o, data_width=W)
        wiring.connect(m, sender.output, wiring.flipped(self.output))
        reading = Signal()
        read_index = Signal(24)
        in_flight = Signal(range(QUEUE_DEPTH + 1))     # pixels read and not yet taken by the sender
        m.submodules.queue = queue = SyncFIFO(width=8 * C, depth=QUEUE_DEPTH)
        read = Signal()
        take = Signal()
        # Whether the queue has room is a register of its own (from in_flight's next value), so
        # the count's comparator is not in front of the accumulation memory's write port
        # (every data bit of which a read clears): that was a critical path (105.0 MHz, seed 3).
        room = Signal(init=1)
        m.d.comb += [
            read.eq(reading & room),
            take.eq(queue.r_rdy & sender.words.ready),
            acc_rd.addr.eq(Mux(reading, read_index, rmw_addr)),
        ]
        with m.If(read):
            m.d.comb += [acc_wr.addr.eq(read_index), acc_wr.data.eq(0), acc_wr.en.eq(1)]
        with m.Elif(r_valid[4]):
            m.d.comb += [acc_wr.addr.eq(r_addr[4]), acc_wr.data.eq(sums[4]), acc_wr.en.eq(1)]
        in_flight_next = Signal.like(in_flight)
        m.d.comb += in_flight_next.eq(in_flight + read - take)
        m.d.sync += [in_flight.eq(in_flight_next), room.eq(in_flight_next != QUEUE_DEPTH)]

        read_valid = delayed(read, 2, "read_valid")       # the pixel in acc_data
        out_bytes = []
        for c in range(C):
            m.submodules[f"requantizer{c}"] = requantizer = Requantizer(float_support=False, registered_masks=True)
            m.d.comb += [
                requantizer.valid.eq(read_valid),
                requantizer.acc.eq(acc_data[32 * c:32 * c + 32].as_signed()),
                requantizer.bias.eq(params[0][32 * c:32 * c + 32]),
                requantizer.multiplier.eq(params[1][32 * c:32 * c + 31]),
                requantizer.shifts.eq(params[2][32 * c:32 * c + 16]),
                requantizer.zero_point.eq(cfg.output_zero_point),
                requantizer.act_min.eq(cfg.act_min),
                requantizer.act_max.eq(cfg.act_max),
            ]
            out_bytes.append(requantizer.value)
        m.d.comb += [queue.w_data.eq(Cat(*out_bytes)), queue.w_en.eq(requantizer.out_valid),
                     queue.r_en.eq(take)]

        sent_index = Signal(24)
        with m.If(self.start):
            m.d.sync += [reading.eq(0), read_index.eq(0), sent_index.eq(0)]
        with m.Elif(start_reading):
            m.d.sync += [reading.eq(1), read_index.eq(0)]
        with m.If(read):
            m.d.sync += read_index.eq(read_index + 1)
            with m.If(read_index == out_pixels_m1):
                m.d.sync += reading.eq(0)
        m.d.comb += [sender.clear.eq(self.start), self.done.eq(sender.done), sender.words.valid.eq(queue.r_rdy),
                     sender.words.payload.data.eq(Cat(queue.r_data, Const(0, n_o * W - 8 * C))),
                     sender.words.payload.final.eq(sent_index == out_pixels_m1)]
        with m.If(take):
            m.d.sync += sent_index.eq(sent_index + 1)
        return m


def tree_levels(rows):
    """Registered adder levels that sum ``rows`` products."""
    return max(rows - 1, 0).bit_length()


#: Pixels the readout queue holds: more than a read takes to come out of the
#: requantizer (1 + its LATENCY) and into the queue, so reads keep ahead of the sender.
QUEUE_DEPTH = 32


def rmw_done(rows):
    """Cycles from a job's last step issuing to the readout's first read of the accumulation buffer.

    Stage 0 (registered addresses), stage 1 (memory data), stage 2 (registered
    operands), stage 3 (the multipliers' operand registers), the products, the
    adder tree, the partial sum, then the read-modify-write's read, data
    registered twice, add and write.
    """
    return 11 + tree_levels(rows)


def first_output(rows):
    """Cycles from a job's last step issuing to the first pixel entering the output register
    (the read, the data registered, the requantizer, the queue)."""
    return rmw_done(rows) + 3 + REQUANT_LATENCY
