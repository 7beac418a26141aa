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
one input pixel (plus the input offset, -zero point, so the operands are 9-bit)
and the ``rows`` x ``cols`` weights of one tap, and adds ``cols`` dot products
of length ``rows``; ``CIN_CHUNKS`` steps cover all input channels, then the
``cols`` sums are added into the accumulation buffer (a read-modify-write in
one cycle, two cycles after the step). Loop order per job: input row, valid
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
  the band, each requantized on its way out (bias, TFLite's double-rounding
  fixed-point multiplier per channel, output zero point, clamp); reading a
  word clears it for the next job. TLAST on the last beat.

The host crops the input to the rows and columns that contribute to the band,
so every streamed row and column has at least one valid tap.
"""


from amaranth import Module, Signal, Cat, Const, Mux, signed, unsigned
from amaranth.lib.memory import Memory

from ...errors import ParameterError
from ...hw.registers import Register, CONFIG_BASE
from ...hw.shell import CoreBase, word_beats
from ...hw.words import WordGatherer, WordSender

__all__ = ["Mm2imCore", "MM2IM_CONFIG_REGISTERS", "PARAM_WORDS", "word_beats", "MAX_KERNEL", "MAX_STRIDE"]

MAX_KERNEL = 15
MAX_STRIDE = 15
PARAM_WORDS = 3


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

        m.submodules.w_mem = w_mem = Memory(shape=unsigned(8 * R * C), depth=self.w_depth, init=[])
        m.submodules.in_mem = in_mem = Memory(shape=unsigned(8 * R), depth=2 * self.in_depth, init=[])
        m.submodules.acc_mem = acc_mem = Memory(shape=unsigned(32 * C), depth=self.acc_depth, init=[])
        w_wr, w_rd = w_mem.write_port(), w_mem.read_port()
        in_wr, in_rd = in_mem.write_port(), in_mem.read_port()
        acc_wr, acc_rd = acc_mem.write_port(), acc_mem.read_port(domain="comb")

        params = [Signal(32 * C, name=f"param_{kind}") for kind in ("bias", "mult", "shift")]
        half_full = Signal(2)

        # ---- loader: gathers beats into words and files them ----
        gather = WordGatherer(m, self.input, n_max, W)
        want, word_done = gather.want, gather.done

        def word(beats, nbytes):
            return gather.word(beats, 8 * nbytes)

        load_index = Signal(24)
        load_kind = Signal(2)
        load_row = Signal(16)
        load_half = load_row[0]
        empty_done = Signal()     # the weights are in and there is no input row: only the bias to read out

        with m.If(self.start):
            m.d.sync += [gather.count.eq(0), half_full.eq(0), load_kind.eq(0), load_index.eq(0), load_row.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "LOAD_PARAMS"
            with m.State("LOAD_PARAMS"):
                m.d.comb += [self.input.ready.eq(1), want.eq(n_p)]
                with m.If(word_done):
                    for kind in range(PARAM_WORDS):
                        with m.If(load_kind == kind):
                            m.d.sync += params[kind].eq(word(n_p, 4 * C))
                    m.d.sync += load_kind.eq(load_kind + 1)
                    with m.If(load_kind == PARAM_WORDS - 1):
                        m.next = "LOAD_W"
            with m.State("LOAD_W"):
                m.d.comb += [self.input.ready.eq(1), want.eq(n_w), w_wr.addr.eq(load_index),
                             w_wr.data.eq(word(n_w, R * C)), w_wr.en.eq(word_done)]
                with m.If(word_done):
                    m.d.sync += load_index.eq(load_index + 1)
                    with m.If(load_index + 1 == cfg.w_words):
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
                m.d.comb += [self.input.ready.eq(1), want.eq(n_a),
                             in_wr.addr.eq(Cat(load_index[:len(in_wr.addr) - 1], load_half)),
                             in_wr.data.eq(word(n_a, R)), in_wr.en.eq(word_done)]
                with m.If(word_done):
                    m.d.sync += load_index.eq(load_index + 1)
                    with m.If(load_index + 1 == cfg.row_words):
                        m.d.sync += [load_index.eq(0), half_full.bit_select(load_half, 1).eq(1),
                                     load_row.eq(load_row + 1)]
                        with m.If(load_row + 1 == cfg.in_rows):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "WAIT_ROW"

        # ---- walker: input row, valid ky, input column, valid kx, channel chunk; one step per cycle ----
        feeding = Signal()
        row = Signal(16)
        cur_half = row[0]
        ky, kx = Signal(4), Signal(4)
        ix, chunk = Signal(16), Signal(16)
        base_y, base_x = Signal(signed(18)), Signal(signed(18))

        def low_tap(base):
            return Mux(base < 0, -base, 0)[:4]

        def high_tap(base, kernel, size):
            room = Signal(signed(19))
            m.d.comb += room.eq(size - base)
            return Mux(room < kernel, room, kernel)

        next_base_x, next_base_y = base_x + cfg.stride_w, base_y + cfg.stride_h
        last_chunk = chunk + 1 == cfg.cin_chunks
        last_kx = kx + 1 == high_tap(base_x, cfg.kw, cfg.out_w)
        last_ix = ix + 1 == cfg.in_w
        last_ky = ky + 1 == high_tap(base_y, cfg.kh, cfg.out_h)
        last_row = row + 1 == cfg.in_rows
        issue = Signal()
        final_step = Signal()
        m.d.comb += [
            issue.eq(feeding & half_full.bit_select(cur_half, 1)),
            final_step.eq(last_chunk & last_kx & last_ix & last_ky & last_row),
            w_rd.addr.eq((ky * cfg.kw + kx) * cfg.cin_chunks + chunk),
            in_rd.addr.eq(Cat((ix * cfg.cin_chunks + chunk)[:len(in_rd.addr) - 1], cur_half)),
            self.busy.eq(issue),
            self.input_wait.eq(feeding & ~half_full.bit_select(cur_half, 1)),
            self.macs.eq(Mux(issue, R * C, 0)),
        ]
        acc_addr = Signal(range(self.acc_depth))
        m.d.comb += acc_addr.eq((base_y + ky) * cfg.out_w + base_x + kx)

        with m.If(self.start):
            m.d.sync += [feeding.eq(cfg.in_rows != 0), row.eq(0), chunk.eq(0), ix.eq(0),
                         base_x.eq(cfg.base_x), base_y.eq(cfg.base_y),
                         kx.eq(low_tap(cfg.base_x)), ky.eq(low_tap(cfg.base_y))]
        with m.Elif(issue):
            m.d.sync += chunk.eq(chunk + 1)
            with m.If(last_chunk):
                m.d.sync += [chunk.eq(0), kx.eq(kx + 1)]
                with m.If(last_kx):
                    m.d.sync += [ix.eq(ix + 1), base_x.eq(next_base_x), kx.eq(low_tap(next_base_x))]
                    with m.If(last_ix):
                        m.d.sync += [ix.eq(0), base_x.eq(cfg.base_x), kx.eq(low_tap(cfg.base_x)), ky.eq(ky + 1)]
                        with m.If(last_ky):
                            m.d.sync += [row.eq(row + 1), base_y.eq(next_base_y), ky.eq(low_tap(next_base_y)),
                                         half_full.bit_select(cur_half, 1).eq(0)]
                            with m.If(last_row):
                                m.d.sync += feeding.eq(0)

        # ---- MatMul: one step's rows x cols products, summed per output channel over the chunks ----
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_addr = Signal(range(self.acc_depth))
        m.d.sync += [s1_valid.eq(issue), s1_first.eq(chunk == 0), s1_last.eq(last_chunk), s1_addr.eq(acc_addr)]
        operands = []
        for r in range(R):
            value = Signal(signed(10), name=f"a{r}")
            m.d.comb += value.eq(in_rd.data[8 * r:8 * r + 8].as_signed() + cfg.input_offset)
            operands.append(value)
        partial = []
        for c in range(C):
            dot = sum(operands[r] * w_rd.data[8 * (r * C + c):8 * (r * C + c) + 8].as_signed() for r in range(R))
            total = Signal(signed(32), name=f"psum{c}")
            with m.If(s1_valid):
                m.d.sync += total.eq(Mux(s1_first, 0, total) + dot)
            partial.append(total)
        s2_valid = Signal()
        s2_addr = Signal(range(self.acc_depth))
        m.d.sync += [s2_valid.eq(s1_valid & s1_last), s2_addr.eq(s1_addr)]

        # ---- col2IM: add the partial sums into their output pixel (read-modify-write in one cycle) ----
        reading = Signal()
        read_index = Signal(24)
        accumulated = Cat(*[(acc_rd.data[32 * c:32 * c + 32].as_signed() + partial[c])[:32] for c in range(C)])

        # The last step's sums are written two cycles after it issues; reading starts the cycle after.
        finished = Signal()
        m.d.comb += finished.eq((issue & final_step) | empty_done)
        finished_d1, finished_d2 = Signal(), Signal()
        m.d.sync += [finished_d1.eq(finished), finished_d2.eq(finished_d1)]

        # ---- readout: requantize one pixel's `cols` sums into the output register, stream it out ----
        sender = WordSender(self.output, n_o, W)
        load = reading & sender.free
        m.d.comb += acc_rd.addr.eq(Mux(reading, read_index, s2_addr))
        with m.If(load):
            m.d.comb += [acc_wr.addr.eq(read_index), acc_wr.data.eq(0), acc_wr.en.eq(1)]
        with m.Elif(s2_valid):
            m.d.comb += [acc_wr.addr.eq(s2_addr), acc_wr.data.eq(accumulated), acc_wr.en.eq(1)]

        out_bytes = []
        for c in range(C):
            biased = Signal(signed(32), name=f"post{c}_acc")
            m.d.comb += biased.eq(acc_rd.data[32 * c:32 * c + 32].as_signed() + params[0][32 * c:32 * c + 32].as_signed())
            scaled = requantize_double(m, f"post{c}", biased, params[1][32 * c:32 * c + 31],
                                       params[2][32 * c:32 * c + 5], params[2][32 * c + 8:32 * c + 13])
            shifted = Signal(signed(34), name=f"post{c}_zp")
            clamped = Signal(signed(8), name=f"post{c}_out")
            m.d.comb += [
                shifted.eq(scaled + cfg.output_zero_point),
                clamped.eq(Mux(shifted < cfg.act_min, cfg.act_min, Mux(shifted > cfg.act_max, cfg.act_max, shifted))),
            ]
            out_bytes.append(clamped)
        pixel_word = Cat(*out_bytes, Const(0, n_o * W - 8 * C))

        with m.If(self.start):
            m.d.sync += [reading.eq(0), read_index.eq(0), *sender.reset()]
        with m.Elif(finished_d2):
            m.d.sync += [reading.eq(1), read_index.eq(0)]
        sender.connect(m, self.done)
        with m.If(load):
            m.d.sync += [*sender.load(pixel_word, read_index + 1 == cfg.out_pixels), read_index.eq(read_index + 1)]
            with m.If(read_index + 1 == cfg.out_pixels):
                m.d.sync += reading.eq(0)
        return m


def requantize_double(m, name, acc, multiplier, left, right):
    """TFLite's double-rounding MultiplyByQuantizedMultiplier of an int32, combinational; a signed(34) result.

    ``SaturatingRoundingDoublingHighMul(acc << left, multiplier)`` (the product
    plus 2^30, or 1 - 2^30 when negative, divided by 2^31 truncating toward zero),
    then ``RoundingDivideByPOT(., right)``. ``multiplier`` < 2^31 never saturates.
    """
    shifted = Signal(signed(32), name=f"{name}_shifted")
    product = Signal(signed(64), name=f"{name}_product")
    nudged = Signal(signed(64), name=f"{name}_nudged")
    high = Signal(signed(34), name=f"{name}_high")
    mask = Signal(32, name=f"{name}_mask")
    result = Signal(signed(34), name=f"{name}_scaled")
    m.d.comb += [
        shifted.eq((acc << left)[:32].as_signed()),
        product.eq(shifted * multiplier),
        nudged.eq(product + Mux(product >= 0, 1 << 30, 1 - (1 << 30))),
        high.eq(Mux(nudged >= 0, nudged >> 31, -((-nudged) >> 31))),
        mask.eq((Const(1, 33) << right) - 1),
        result.eq((high >> right) + ((high[:32] & mask) > ((mask >> 1) + high[33]))),
    ]
    return result
