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

from ...hw.requantize import Requantizer, LATENCY as REQUANT_LATENCY
from ...hw import pipeline
from ...hw.words import WordGatherer, WordSender

__all__ = ["Mm2imCore", "MM2IM_CONFIG_REGISTERS", "PARAM_WORDS", "word_beats", "MAX_KERNEL", "MAX_STRIDE",
           "tree_levels", "rmw_done", "first_output"]

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

        m.submodules.w_mem = w_mem = Memory(shape=unsigned(8 * R * C), depth=self.w_depth, init=[])
        m.submodules.in_mem = in_mem = Memory(shape=unsigned(8 * R), depth=2 * self.in_depth, init=[])
        m.submodules.acc_mem = acc_mem = Memory(shape=unsigned(32 * C), depth=self.acc_depth, init=[])
        w_wr, w_rd = w_mem.write_port(), w_mem.read_port()
        in_wr, in_rd = in_mem.write_port(), in_mem.read_port()
        acc_wr, acc_rd = acc_mem.write_port(), acc_mem.read_port()

        params = [Signal(32 * C, name=f"param_{kind}") for kind in ("bias", "mult", "shift")]
        half_full = Signal(2)

        # ---- loader: gathers beats into words and files them ----
        m.submodules.gather = gather = WordGatherer(max_beats=n_max, data_width=W)
        wiring.connect(m, wiring.flipped(self.input), gather.input)
        # a word is filed in the cycle it completes; a new job forgets a partial one
        m.d.comb += [gather.words.ready.eq(1), gather.clear.eq(self.start)]
        want, word_done = gather.want, gather.words.valid

        def word(beats, nbytes):
            return gather.word(beats, 8 * nbytes)

        load_index = Signal(24)
        load_kind = Signal(2)
        load_row = Signal(16)
        load_half = load_row[0]
        empty_done = Signal()     # the weights are in and there is no input row: only the bias to read out

        with m.If(self.start):
            m.d.sync += [half_full.eq(0), load_kind.eq(0), load_index.eq(0), load_row.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "LOAD_PARAMS"
            with m.State("LOAD_PARAMS"):
                m.d.comb += [gather.take.eq(1), want.eq(n_p)]
                with m.If(word_done):
                    for kind in range(PARAM_WORDS):
                        with m.If(load_kind == kind):
                            m.d.sync += params[kind].eq(word(n_p, 4 * C))
                    m.d.sync += load_kind.eq(load_kind + 1)
                    with m.If(load_kind == PARAM_WORDS - 1):
                        m.next = "LOAD_W"
            with m.State("LOAD_W"):
                m.d.comb += [gather.take.eq(1), want.eq(n_w), w_wr.addr.eq(load_index),
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
                m.d.comb += [gather.take.eq(1), want.eq(n_a),
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
        # Memory addresses are counters, not products: the host supplies each
        # product the walk needs as a per-job constant (see the *_INIT and *_STEP
        # registers), so no multiplier sits in the address path.
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

        def positive(value):
            return Mux(value < 0, 0, value)

        next_base_x, next_base_y = base_x + cfg.stride_w, base_y + cfg.stride_h
        last_chunk = chunk + 1 == cfg.cin_chunks
        last_kx = kx + 1 == high_tap(base_x, cfg.kw, cfg.out_w)
        last_ix = ix + 1 == cfg.in_w
        last_ky = ky + 1 == high_tap(base_y, cfg.kh, cfg.out_h)
        last_row = row + 1 == cfg.in_rows
        issue = Signal()
        final_step = Signal()

        # Weight word (ky * KW + kx) * CIN_CHUNKS + chunk: the first kx of a column is
        # max(0, -base_x), so its offset max(0, -base_x) * CIN_CHUNKS follows a
        # pointer that starts at -BASE_X * CIN_CHUNKS and steps by -STRIDE_W *
        # CIN_CHUNKS; likewise for the first ky of a row, in units of KW * CIN_CHUNKS.
        w_addr = Signal(24)
        w_ky_base = Signal(24)                 # ky * KW * CIN_CHUNKS
        w_kx_pointer = Signal(signed(26))      # -base_x * CIN_CHUNKS
        w_ky_pointer = Signal(signed(26))      # -base_y * KW * CIN_CHUNKS
        next_w_kx_pointer = w_kx_pointer - cfg.w_kx_step
        next_w_ky_pointer = w_ky_pointer - cfg.w_ky_step
        # Input word ix * CIN_CHUNKS + chunk of the current row.
        in_addr, in_column = Signal(24), Signal(24)
        # Accumulation word (base_y + ky) * OUT_W + base_x + kx: the first ky of a row
        # gives max(0, base_y) * OUT_W, a pointer stepping by STRIDE_H * OUT_W.
        acc_addr = Signal(range(self.acc_depth))
        acc_row = Signal(24)                   # (base_y + ky) * OUT_W
        acc_pointer = Signal(signed(26))       # base_y * OUT_W
        next_acc_pointer = acc_pointer + cfg.acc_y_step

        m.d.comb += [
            issue.eq(feeding & half_full.bit_select(cur_half, 1)),
            final_step.eq(last_chunk & last_kx & last_ix & last_ky & last_row),
            w_rd.addr.eq(w_addr),
            in_rd.addr.eq(Cat(in_addr[:len(in_rd.addr) - 1], cur_half)),
            self.busy.eq(issue),
            self.input_wait.eq(feeding & ~half_full.bit_select(cur_half, 1)),
            self.macs.eq(Mux(issue, R * C, 0)),
        ]

        with m.If(self.start):
            first_w_ky = positive(cfg.w_ky_init)
            m.d.sync += [feeding.eq(cfg.in_rows != 0), row.eq(0), chunk.eq(0), ix.eq(0),
                         base_x.eq(cfg.base_x), base_y.eq(cfg.base_y),
                         kx.eq(low_tap(cfg.base_x)), ky.eq(low_tap(cfg.base_y)),
                         w_kx_pointer.eq(cfg.w_kx_init), w_ky_pointer.eq(cfg.w_ky_init),
                         w_ky_base.eq(first_w_ky), w_addr.eq(first_w_ky + positive(cfg.w_kx_init)),
                         in_addr.eq(0), in_column.eq(0),
                         acc_pointer.eq(cfg.acc_y_init), acc_row.eq(positive(cfg.acc_y_init)),
                         acc_addr.eq(positive(cfg.acc_y_init) + positive(cfg.base_x))]
        with m.Elif(issue):
            m.d.sync += [chunk.eq(chunk + 1), w_addr.eq(w_addr + 1), in_addr.eq(in_addr + 1)]
            with m.If(last_chunk):
                m.d.sync += [chunk.eq(0), kx.eq(kx + 1), in_addr.eq(in_column), acc_addr.eq(acc_addr + 1)]
                with m.If(last_kx):
                    m.d.sync += [ix.eq(ix + 1), base_x.eq(next_base_x), kx.eq(low_tap(next_base_x)),
                                 w_kx_pointer.eq(next_w_kx_pointer),
                                 w_addr.eq(w_ky_base + positive(next_w_kx_pointer)),
                                 in_addr.eq(in_addr + 1), in_column.eq(in_addr + 1),
                                 acc_addr.eq(acc_row + positive(next_base_x))]
                    with m.If(last_ix):
                        m.d.sync += [ix.eq(0), base_x.eq(cfg.base_x), kx.eq(low_tap(cfg.base_x)), ky.eq(ky + 1),
                                     w_kx_pointer.eq(cfg.w_kx_init), w_ky_base.eq(w_ky_base + cfg.w_ky_row),
                                     w_addr.eq(w_ky_base + cfg.w_ky_row + positive(cfg.w_kx_init)),
                                     in_addr.eq(0), in_column.eq(0),
                                     acc_row.eq(acc_row + cfg.out_w),
                                     acc_addr.eq(acc_row + cfg.out_w + positive(cfg.base_x))]
                        with m.If(last_ky):
                            first_w_ky = positive(next_w_ky_pointer)
                            first_acc_row = positive(next_acc_pointer)
                            m.d.sync += [row.eq(row + 1), base_y.eq(next_base_y), ky.eq(low_tap(next_base_y)),
                                         half_full.bit_select(cur_half, 1).eq(0),
                                         w_ky_pointer.eq(next_w_ky_pointer), w_ky_base.eq(first_w_ky),
                                         w_addr.eq(first_w_ky + positive(cfg.w_kx_init)),
                                         acc_pointer.eq(next_acc_pointer), acc_row.eq(first_acc_row),
                                         acc_addr.eq(first_acc_row + positive(cfg.base_x))]
                            with m.If(last_row):
                                m.d.sync += feeding.eq(0)

        # ---- MatMul: one step's rows x cols products, summed per output channel over the chunks ----
        # Stage 1: memory data. Then the operands, the products, registered, and a
        # registered adder tree (tree_levels(R) levels); the flags travel alongside.
        def delayed(value, cycles, name):
            return pipeline.delayed(m, value, cycles, name)

        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_addr = Signal(range(self.acc_depth))
        m.d.sync += [s1_valid.eq(issue), s1_first.eq(chunk == 0), s1_last.eq(last_chunk), s1_addr.eq(acc_addr)]
        # Stage 2: the operands (with the input offset) and weights registered, so
        # no block RAM output drives an adder or a multiplier in the same cycle.
        operands = []
        for r in range(R):
            value = Signal(signed(10), name=f"a{r}", reset_less=True)
            with m.If(s1_valid):
                m.d.sync += value.eq(in_rd.data[8 * r:8 * r + 8].as_signed() + cfg.input_offset)
            operands.append(value)
        weights = Signal(8 * R * C, name="weights", reset_less=True)
        with m.If(s1_valid):
            m.d.sync += weights.eq(w_rd.data)
        dots = []
        for c in range(C):
            level = []
            for r in range(R):
                product = Signal(signed(18), name=f"product{r}_{c}", reset_less=True)
                m.d.sync += product.eq(operands[r] * weights[8 * (r * C + c):8 * (r * C + c) + 8].as_signed())
                level.append(product)
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
        flags = delayed(Cat(s1_valid, s1_first, s1_last, s1_addr), 2 + tree_levels(R), "dot_flags")
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
        # (stage 0), add (stage 1), write (stage 2). A sum still in stage 2, or
        # written in the cycle the read happened (stage 3), is newer than what the
        # memory returned: it is bypassed in, chosen by address matches found a
        # stage early.
        r1_valid, r2_valid, r3_valid = Signal(), Signal(), Signal()
        r1_addr, r2_addr, r3_addr = (Signal(range(self.acc_depth), name=f"r{i}_addr") for i in (1, 2, 3))
        r1_partial = Signal(32 * C, reset_less=True)
        r2_sum, r3_sum = Signal(32 * C, reset_less=True), Signal(32 * C, reset_less=True)
        from_r2, from_r3 = Signal(), Signal()
        m.d.sync += [
            r1_valid.eq(rmw_valid), r1_addr.eq(rmw_addr), r1_partial.eq(Cat(*partial)),
            r2_valid.eq(r1_valid), r2_addr.eq(r1_addr),
            r3_valid.eq(r2_valid), r3_addr.eq(r2_addr), r3_sum.eq(r2_sum),
            # In stage 1 next cycle, r1 will be in stage 2 and r2 in stage 3.
            from_r2.eq(r1_valid & (r1_addr == rmw_addr)),
            from_r3.eq(r2_valid & (r2_addr == rmw_addr)),
        ]
        stored = Mux(from_r2, r2_sum, Mux(from_r3, r3_sum, acc_rd.data))
        m.d.sync += r2_sum.eq(Cat(*[(stored[32 * c:32 * c + 32].as_signed()
                                     + r1_partial[32 * c:32 * c + 32].as_signed())[:32] for c in range(C)]))

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
        m.d.comb += [
            read.eq(reading & (in_flight != QUEUE_DEPTH)),
            take.eq(queue.r_rdy & sender.words.ready),
            acc_rd.addr.eq(Mux(reading, read_index, rmw_addr)),
        ]
        with m.If(read):
            m.d.comb += [acc_wr.addr.eq(read_index), acc_wr.data.eq(0), acc_wr.en.eq(1)]
        with m.Elif(r2_valid):
            m.d.comb += [acc_wr.addr.eq(r2_addr), acc_wr.data.eq(r2_sum), acc_wr.en.eq(1)]
        m.d.sync += in_flight.eq(in_flight + read - take)

        read_valid = Signal()
        m.d.sync += read_valid.eq(read)
        out_bytes = []
        for c in range(C):
            m.submodules[f"requantizer{c}"] = requantizer = Requantizer(float_support=False)
            m.d.comb += [
                requantizer.valid.eq(read_valid),
                requantizer.acc.eq(acc_rd.data[32 * c:32 * c + 32].as_signed()),
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
            with m.If(read_index + 1 == cfg.out_pixels):
                m.d.sync += reading.eq(0)
        m.d.comb += [sender.clear.eq(self.start), self.done.eq(sender.done), sender.words.valid.eq(queue.r_rdy),
                     sender.words.payload.data.eq(Cat(queue.r_data, Const(0, n_o * W - 8 * C))),
                     sender.words.payload.final.eq(sent_index + 1 == cfg.out_pixels)]
        with m.If(take):
            m.d.sync += sent_index.eq(sent_index + 1)
        return m


def tree_levels(rows):
    """Registered adder levels that sum ``rows`` products."""
    return max(rows - 1, 0).bit_length()


#: Pixels the readout queue holds: more than a read takes to come out of the
#: requantizer (1 + its LATENCY), twice over, so reads keep ahead of the sender.
QUEUE_DEPTH = 32


def rmw_done(rows):
    """Cycles from a job's last step issuing to the readout's first read of the accumulation buffer.

    Stage 1 (memory data), stage 2 (registered operands), the products, the
    adder tree, the partial sum, then the read-modify-write's read, add and write.
    """
    return 7 + tree_levels(rows)


def first_output(rows):
    """Cycles from a job's last step issuing to the first pixel entering the output register."""
    return rmw_done(rows) + 2 + REQUANT_LATENCY
