"""BFP core: integer block dot products of llama.cpp-quantized weights with int8 activations.

One job multiplies ``BLOCKS`` weight blocks (``N`` rows of ``ROW_BLOCKS`` blocks)
by ``TOKENS`` activation rows and returns, per (block, token), the block's
integer sums: ``isum = sum_j scale_j * sum_{i in sub-block j} q_w[i] * q_a[i]``
and ``msum = sum_j min_j * sum_{i in j} q_a[i]``. The float super-scales
(weight ``d``/``dmin``, activation ``d``) are applied on the host (see
``accelerators/bfp/__init__.py`` for why). The weight format is a register
(``FORMAT``), so consecutive jobs switch formats without reconfiguration:

===  ======  ===========  =====  =================================
 #   weight  activations  block  sub-block scale / min
===  ======  ===========  =====  =================================
 0   Q8_0    Q8_0         32     1 / none
 1   Q4_0    Q8_0         32     1 / none
 2   Q2_K    Q8_K         256    4-bit / 4-bit per 16
 3   Q3_K    Q8_K         256    6-bit signed (-32) / none, per 16
===  ======  ===========  =====  =================================

The element and scale decoders are generated from the same declarative specs
the host codec uses (``driver/ggml/formats.py``): each ``Bits`` piece is a
wiring from block bytes to code bits.

Job protocol (one DMA transfer in, one out):

* input stream: ``ACT_WORDS`` activation words of ``lanes`` int8 (token-major:
  word ``m * ROW_WORDS + w`` holds elements ``w * lanes ...`` of token ``m``),
  each ``lanes / beat`` whole beats; then the ``BLOCKS`` weight blocks packed
  back to back across beats exactly as stored in the GGUF (an 18-byte Q4_0 block
  takes 18 bytes of the stream), the last beat zero-padded.
* output stream: per block, per token, one 64-bit word ``isum | msum << 32``
  (two's complement), zero-padded to whole beats; TLAST on the last beat.

Pipeline: an assembler gathers stream bytes until a whole block is present and
hands it (decoded to element codes, sub-block scales and mins) to the compute
registers, while the next block streams in. The sequencer walks (token, step)
over the block, ``lanes`` elements per step (one activation-memory word); a
step's products are summed per 16-element group, scaled, and accumulated over
the block's steps. Results wait in an 8-entry FIFO for the output stream; the
sequencer issues only while the FIFO has room for every result in flight.
"""

from amaranth import Module, Signal, Cat, Const, Mux, signed, unsigned, Array
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ...driver.ggml import get_format
from ...errors import ParameterError
from ...hw.registers import Register, CONFIG_BASE
from ...hw.shell import CoreBase, word_beats
from ...hw.words import WordGatherer, WordSender

__all__ = ["BfpCore", "HW_FORMATS", "BFP_CONFIG_REGISTERS", "FIFO_DEPTH", "PIPELINE", "RESULT_BYTES",
           "word_beats"]

#: weight formats in FORMAT-register order
HW_FORMATS = ("Q8_0", "Q4_0", "Q2_K", "Q3_K")
#: results that may be in flight between issue and the output stream
FIFO_DEPTH = 8
#: cycles from a block's last step issuing to its result being written to the FIFO
PIPELINE = 4
RESULT_BYTES = 8
GROUP = 16


def _reg(name, offset, width, doc=""):
    return Register(name, CONFIG_BASE + offset, "rw", width, doc=doc)


BFP_CONFIG_REGISTERS = (
    _reg("FORMAT", 0x00, 2, doc="weight format: 0 Q8_0, 1 Q4_0, 2 Q2_K, 3 Q3_K"),
    _reg("TOKENS", 0x04, 16, doc="activation rows (tokens) M"),
    _reg("ROW_BLOCKS", 0x08, 16, doc="blocks per weight row (K / block)"),
    _reg("ROW_WORDS", 0x0C, 16, doc="activation words per token (K / lanes)"),
    _reg("ACT_WORDS", 0x10, 24, doc="activation words streamed (TOKENS * ROW_WORDS)"),
    _reg("BLOCKS", 0x14, 32, doc="weight blocks streamed (N * ROW_BLOCKS)"),
    _reg("RESULTS", 0x18, 32, doc="BLOCKS * TOKENS"),
)


def _decoders(spec, block_bytes):
    """(element values, scales, mins) of ``spec`` as Amaranth values over the block bytes."""
    def codes(desc, default):
        if desc is None:
            return [Const(default, signed(9)) for _ in range(spec.sub_blocks)]
        parts = [[] for _ in range(desc.count)]
        for p in desc.pieces:
            start = spec.offsets[p.field][0] + p.byte
            for i in range(p.count):
                parts[p.first + i].append((p.to_bit, block_bytes[start + i][p.shift:p.shift + p.width]))
        values = []
        for bits in parts:
            code = Cat(*(v for _, v in sorted(bits, key=lambda b: b[0])))
            if desc.signed:
                values.append(code.as_signed())
            else:
                values.append((code.as_unsigned() - desc.offset).as_signed())
        return values

    return codes(spec.quants, 0), codes(spec.scales, 1), codes(spec.mins, 0)


class BfpCore(CoreBase):
    """The BFP core; wrap it in :class:`~accelkit.hw.shell.AcceleratorShell` to export it.

    ``lanes`` int8 MACs per cycle (16 or 32; a multiple of the beat width), ``act_depth`` activation words of
    ``lanes`` bytes. Raises :class:`ParameterError`.
    """

    config_registers = BFP_CONFIG_REGISTERS

    def __init__(self, *, lanes=32, data_width=64, act_depth=1024):
        if lanes not in (16, 32):
            raise ParameterError(f"lanes must be 16 or 32, not {lanes!r}")
        if not isinstance(act_depth, int) or act_depth < 2 or act_depth & (act_depth - 1) or act_depth > 1 << 20:
            raise ParameterError(f"act_depth must be a power of two in 2..{1 << 20}, not {act_depth!r}")
        if data_width > 8 * lanes or (8 * lanes) % data_width:
            raise ParameterError(f"data width {data_width} must divide the activation word of {8 * lanes} bits")
        self.lanes, self.act_depth = lanes, act_depth
        self.info = lanes | (1 << 16)
        super().__init__(data_width)

    def elaborate(self, platform):
        m = Module()
        L, W = self.lanes, self.data_width
        WB = W // 8
        specs = [get_format(name) for name in HW_FORMATS]
        MAXB = max(s.block_bytes for s in specs)
        MAXE = max(s.block for s in specs)
        SIZE = MAXB + WB - 1
        cfg = self.config
        groups = L // GROUP

        fmt = Signal(2)
        block_bytes = Signal(range(MAXB + 1))
        steps = Signal(range(MAXE // L + 1))
        m.d.comb += fmt.eq(cfg.format)
        with m.Switch(fmt):
            for i, s in enumerate(specs):
                with m.Case(i):
                    m.d.comb += [block_bytes.eq(s.block_bytes), steps.eq(s.block // L)]

        # -- activations: gathered into words of `lanes` bytes, written to the activation memory
        m.submodules.act = act = Memory(shape=unsigned(8 * L), depth=self.act_depth, init=[])
        act_wr, act_rd = act.write_port(), act.read_port()
        loading = Signal()          # the activation section is still streaming in
        weights_phase = Signal()
        act_count = Signal(24)
        m.submodules.gather = gather = WordGatherer(max_beats=L // WB, data_width=W)
        wiring.connect(m, wiring.flipped(self.input), gather.input)
        # It sees the weight beats too (it takes whatever the core takes); only words while loading are filed.
        m.d.comb += [gather.want.eq(L // WB), gather.words.ready.eq(1), gather.clear.eq(self.start)]
        m.d.comb += [act_wr.addr.eq(act_count), act_wr.data.eq(gather.word(L // WB, 8 * L)),
                     act_wr.en.eq(loading & gather.words.valid)]
        with m.If(loading & gather.words.valid):
            m.d.sync += act_count.eq(act_count + 1)
            with m.If(act_count + 1 == cfg.act_words):
                m.d.sync += [loading.eq(0), weights_phase.eq(1)]

        # -- block assembler: stream bytes to whole blocks
        buf = Signal(8 * SIZE)
        fill = Signal(range(SIZE + 1))
        have = Signal()
        transfer = Signal()
        blk_free = Signal()
        m.d.comb += [have.eq(fill >= block_bytes), transfer.eq(weights_phase & have & blk_free)]
        ready_weights = weights_phase & ((fill < block_bytes) | transfer)
        m.d.comb += gather.take.eq(loading | ready_weights)
        accept = Signal()
        m.d.comb += accept.eq(self.input.valid & ready_weights)
        base = Signal(range(SIZE + 1))
        m.d.comb += base.eq(Mux(transfer, fill - block_bytes, fill))
        buf_bytes = [buf[8 * p:8 * p + 8] for p in range(SIZE)]
        beat_bytes = [self.input.payload.data[8 * i:8 * i + 8] for i in range(WB)]
        for p in range(SIZE):
            shifted = Signal(8, name=f"shifted_{p}")
            with m.Switch(fmt):
                for i, s in enumerate(specs):
                    with m.Case(i):
                        m.d.comb += shifted.eq(buf_bytes[p + s.block_bytes] if p + s.block_bytes < SIZE else 0)
            kept = Mux(transfer, shifted, buf_bytes[p])
            incoming = kept
            for i in range(WB):
                if p - i >= 0:
                    incoming = Mux(accept & (base == p - i), beat_bytes[i], incoming)
            m.d.sync += buf[8 * p:8 * p + 8].eq(incoming)
        m.d.sync += fill.eq(base + Mux(accept, WB, 0))

        # -- decode at transfer into the compute registers
        codes = [Signal(signed(8), name=f"code_{e}") for e in range(MAXE)]
        scales = [Signal(signed(8), name=f"scale_{j}") for j in range(MAXE // GROUP)]
        mins = [Signal(signed(8), name=f"min_{j}") for j in range(MAXE // GROUP)]
        with m.If(transfer):
            with m.Switch(fmt):
                for i, s in enumerate(specs):
                    with m.Case(i):
                        q, sc, mn = _decoders(s, buf_bytes)
                        for e in range(MAXE):
                            m.d.sync += codes[e].eq(q[e] if e < s.block else 0)
                        per_group = s.sub_block // GROUP
                        for j in range(MAXE // GROUP):
                            sub = j // per_group
                            m.d.sync += [scales[j].eq(sc[sub] if sub < len(sc) else 0),
                                         mins[j].eq(mn[sub] if sub < len(mn) else 0)]

        # -- sequencer: (token, step) over the block in the compute registers
        blk_valid = Signal()
        step = Signal(range(MAXE // L + 1))
        token = Signal(16)
        tok_addr = Signal(24)        # token * ROW_WORDS + block base
        blk_base = Signal(16)        # word offset of this block in its row
        row_block = Signal(16)
        outstanding = Signal(range(FIFO_DEPTH + 1))
        room = outstanding < FIFO_DEPTH
        issue = Signal()
        last_step = Signal()
        last_token = Signal()
        m.d.comb += [issue.eq(blk_valid & room), last_step.eq(step == steps - 1),
                     last_token.eq(token == cfg.tokens - 1)]
        block_done = issue & last_step & last_token
        m.d.comb += blk_free.eq(~blk_valid | block_done)
        m.d.comb += [act_rd.addr.eq(tok_addr + step)]
        with m.If(issue):
            with m.If(last_step):
                m.d.sync += [step.eq(0), token.eq(token + 1), tok_addr.eq(tok_addr + cfg.row_words)]
                with m.If(last_token):
                    m.d.sync += [token.eq(0), blk_valid.eq(0)]
                    with m.If(row_block + 1 == cfg.row_blocks):
                        m.d.sync += [row_block.eq(0), blk_base.eq(0), tok_addr.eq(0)]
                    with m.Else():
                        m.d.sync += [row_block.eq(row_block + 1), blk_base.eq(blk_base + steps),
                                     tok_addr.eq(blk_base + steps)]
            with m.Else():
                m.d.sync += step.eq(step + 1)
        with m.If(transfer):
            m.d.sync += blk_valid.eq(1)

        # stage 1: lane operands and group scales for this step (the memory read lands with them)
        w_lane = [Signal(signed(8), name=f"w_lane_{l}") for l in range(L)]
        g_scale = [Signal(signed(8), name=f"g_scale_{g}") for g in range(groups)]
        g_min = [Signal(signed(8), name=f"g_min_{g}") for g in range(groups)]
        v1, first1, last1 = Signal(), Signal(), Signal()
        # lane l of step s takes element s * lanes + l: a mux over the block's steps only
        for l in range(L):
            m.d.sync += w_lane[l].eq(Array(codes[l::L])[step])
        for g in range(groups):
            m.d.sync += [g_scale[g].eq(Array(scales[g::groups])[step]), g_min[g].eq(Array(mins[g::groups])[step])]
        m.d.sync += [v1.eq(issue), first1.eq(step == 0), last1.eq(last_step)]

        # stage 2: products
        a_lane = [act_rd.data[8 * l:8 * l + 8].as_signed() for l in range(L)]
        prod = [Signal(signed(16), name=f"prod_{l}") for l in range(L)]
        a2 = [Signal(signed(8), name=f"a2_{l}") for l in range(L)]
        s2 = [Signal(signed(8), name=f"s2_{g}") for g in range(groups)]
        n2 = [Signal(signed(8), name=f"n2_{g}") for g in range(groups)]
        v2, first2, last2 = Signal(), Signal(), Signal()
        m.d.sync += [prod[l].eq(a_lane[l] * w_lane[l]) for l in range(L)]
        m.d.sync += [a2[l].eq(a_lane[l]) for l in range(L)]
        m.d.sync += [s2[g].eq(g_scale[g]) for g in range(groups)] + [n2[g].eq(g_min[g]) for g in range(groups)]
        m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1)]

        # stage 3: per-group sums (adder trees)
        def tree(values):
            while len(values) > 1:
                values = [(values[i] + values[i + 1]) if i + 1 < len(values) else values[i]
                          for i in range(0, len(values), 2)]
            return values[0]

        psum = [Signal(signed(20), name=f"psum_{g}") for g in range(groups)]
        asum = [Signal(signed(13), name=f"asum_{g}") for g in range(groups)]
        s3 = [Signal(signed(8), name=f"s3_{g}") for g in range(groups)]
        n3 = [Signal(signed(8), name=f"n3_{g}") for g in range(groups)]
        v3, first3, last3 = Signal(), Signal(), Signal()
        for g in range(groups):
            m.d.sync += [psum[g].eq(tree(prod[g * GROUP:(g + 1) * GROUP])),
                         asum[g].eq(tree(a2[g * GROUP:(g + 1) * GROUP])), s3[g].eq(s2[g]), n3[g].eq(n2[g])]
        m.d.sync += [v3.eq(v2), first3.eq(first2), last3.eq(last2)]

        # stage 4: sub-block scales and mins applied
        sp = [Signal(signed(28), name=f"sp_{g}") for g in range(groups)]
        sm = [Signal(signed(20), name=f"sm_{g}") for g in range(groups)]
        v4, first4, last4 = Signal(), Signal(), Signal()
        for g in range(groups):
            m.d.sync += [sp[g].eq(psum[g] * s3[g]), sm[g].eq(asum[g] * n3[g])]
        m.d.sync += [v4.eq(v3), first4.eq(first3), last4.eq(last3)]

        # stage 5: accumulate over the block's steps; a finished (block, token) goes to the FIFO
        isum, msum = Signal(signed(32)), Signal(signed(32))
        step_i, step_m = tree(sp), tree(sm)
        new_i = Signal(signed(32))
        new_m = Signal(signed(32))
        m.d.comb += [new_i.eq(Mux(first4, 0, isum) + step_i), new_m.eq(Mux(first4, 0, msum) + step_m)]
        with m.If(v4):
            m.d.sync += [isum.eq(new_i), msum.eq(new_m)]
        push = v4 & last4

        # -- result FIFO (registers) and the output stream
        fifo = Array(Signal(64, name=f"fifo_{i}") for i in range(FIFO_DEPTH))
        w_ptr, r_ptr = Signal(range(FIFO_DEPTH)), Signal(range(FIFO_DEPTH))
        count = Signal(range(FIFO_DEPTH + 1))
        with m.If(push):
            m.d.sync += [fifo[w_ptr].eq(Cat(new_i, new_m)), w_ptr.eq(w_ptr + 1)]
        m.submodules.sender = sender = WordSender(beats=word_beats(RESULT_BYTES, W), data_width=W)
        wiring.connect(m, sender.output, wiring.flipped(self.output))
        sent = Signal(32)
        load = Signal()
        m.d.comb += [sender.words.valid.eq(count > 0), sender.words.payload.data.eq(fifo[r_ptr]),
                     sender.words.payload.final.eq(sent + 1 == cfg.results), sender.clear.eq(self.start),
                     self.done.eq(sender.done), load.eq(sender.words.valid & sender.words.ready)]
        with m.If(load):
            m.d.sync += [r_ptr.eq(r_ptr + 1), sent.eq(sent + 1)]
        m.d.sync += count.eq(count + push - load)
        m.d.sync += outstanding.eq(outstanding + (issue & last_step) - load)

        m.d.comb += [self.busy.eq(issue), self.macs.eq(Mux(issue, L, 0)),
                     self.input_wait.eq(loading | (weights_phase & ~blk_valid))]

        with m.If(self.start):
            m.d.sync += [loading.eq(1), weights_phase.eq(0), act_count.eq(0), fill.eq(0),
                         blk_valid.eq(0), step.eq(0), token.eq(0), tok_addr.eq(0), blk_base.eq(0),
                         row_block.eq(0), outstanding.eq(0), w_ptr.eq(0), r_ptr.eq(0), count.eq(0), sent.eq(0),
                         v1.eq(0), v2.eq(0), v3.eq(0), v4.eq(0)]
        return m
