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
the host codec uses (``driver/ggml/formats.py``): each ``Bits`` piece becomes a
(byte offset, shift, mask) entry of a read port's table.

Written for simulation speed as much as for hardware: Verilator evaluates every
combinational path each cycle, so no block-wide register is shifted or decoded
at once, datapath registers load only when their stage is valid, and the core's
memories and registers are at most a beat (64 bits) wide. Each column memory has
one write port and three read ports (RAM32M-sized on a 7-series part).

Job protocol (one DMA transfer in, one out):

* input stream: ``ACT_WORDS`` activation words of ``lanes`` int8 (token-major:
  word ``m * ROW_WORDS + w`` holds elements ``w * lanes ...`` of token ``m``),
  each ``lanes / beat`` whole beats; then the ``BLOCKS`` weight blocks packed
  back to back across beats exactly as stored in the GGUF (an 18-byte Q4_0 block
  takes 18 bytes of the stream), the last beat zero-padded.
* output stream: per block, per token, one 64-bit word ``isum | msum << 32``
  (two's complement), zero-padded to whole beats; TLAST on the last beat.

Pipeline: stream bytes are written where they belong in their block, in a block
memory of ``lanes`` byte-wide columns (byte o of a block in column o mod lanes;
block k in bank k mod banks), so a block is never moved; it is handed to the
sequencer once complete, while the next ones stream in. The sequencer walks
(token, step) over the block, ``lanes`` elements per step (one activation-memory
word); each step reads one window of ``lanes`` bytes per code piece (a row per
column from a table per format and step), and each lane takes its column's byte
and decodes it; a step's products are summed per 16-element group, scaled, and
accumulated over the block's steps. Results wait in an 8-entry FIFO for the
output stream; the sequencer issues only while the FIFO has room for every
result in flight.
"""

from amaranth import Module, Signal, Const, Cat, Mux, signed, unsigned, Array
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ...driver.ggml import get_format
from ...errors import ParameterError
from ...hw.registers import Register, CONFIG_BASE
from ...hw.shell import CoreBase, word_beats
from ...hw.words import WordSender
from ...hw.pipeline import LastFlag

__all__ = ["BfpCore", "HW_FORMATS", "BFP_CONFIG_REGISTERS", "FIFO_DEPTH", "PIPELINE", "RESULT_BYTES",
           "word_beats"]

#: weight formats in FORMAT-register order
HW_FORMATS = ("Q8_0", "Q4_0", "Q2_K", "Q3_K")
#: results that may be in flight between issue and the output stream
FIFO_DEPTH = 8
#: cycles from a block's last step issuing to its result being written to the FIFO
PIPELINE = 5
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


def _pieces(spec, codes, index):
    """(byte offset in the block, shift, mask, to_bit) of each piece of code ``index``, lowest bits first."""
    found = [(spec.offsets[p.field][0] + p.byte + index - p.first, p.shift, (1 << p.width) - 1, p.to_bit)
             for p in codes.pieces if p.first <= index < p.first + p.count]
    return sorted(found, key=lambda piece: piece[3])


class _Layout:
    """Where the block memory keeps each byte and where every reader finds its codes (all static, per format).

    The block memory is ``lanes`` byte-wide column memories: byte ``o`` of the block in bank ``b`` is row
    ``b * rows + o // lanes`` of column ``o % lanes``, so a beat writes each column at most once (bytes of
    two blocks that meet in a beat and share a column are never both used on chip: checked here) and a
    step's window of ``lanes`` bytes is one read per column.

    * ``quants[k]``: the k-th code piece of every lane: ``window`` {(format, step): first offset},
      ``column`` {format: column per lane} (constant over the steps: checked), ``classes`` [(lanes,
      {(format, step): (shift, mask, to_bit)})] of lanes that share those;
    * ``groups[kind][k][g]``: the k-th piece of group g's scale or min: {(format, step): (column, shift,
      mask, to_bit)}, all read from one scale window per step (``scale_window``);
    * ``beat_masks[f][pos]``: for a beat whose first byte is at offset ``pos`` of its block, (bit i: byte i of
      the beat is a used byte of this block; bit j: column j takes a used byte of the next block). Bytes the
      core never reads (d, dmin) are not written.

    Raises :class:`ParameterError` when a beat of ``beat`` bytes cannot be written that way.
    """

    def __init__(self, specs, lanes, beat):
        self.lanes = lanes
        steps = {f: s.block // lanes for f, s in enumerate(specs)}
        used = []
        for spec in specs:
            offsets = set()
            for codes in (spec.quants, spec.scales, spec.mins):
                for i in range(codes.count if codes else 0):
                    offsets.update(p[0] for p in _pieces(spec, codes, i))
            used.append(offsets)
        self.rows = 1 << ((max(s.block_bytes for s in specs) - 1) // lanes).bit_length()
        for f, spec in enumerate(specs):
            self._check_beats(spec, used[f], beat)
        # per format and position of a beat's first byte in its block: (bytes i of the beat that this block
        # uses, columns of the next block's used bytes that the beat carries)
        self.beat_masks = [[(sum(1 << i for i in range(beat) if pos + i < s.block_bytes and pos + i in used[f]),
                             sum(1 << (pos + i - s.block_bytes) for i in range(beat)
                                 if pos + i >= s.block_bytes and pos + i - s.block_bytes in used[f]))
                            for pos in range(s.block_bytes)] for f, s in enumerate(specs)]

        self.quants = []
        for k in range(max(len(_pieces(s, s.quants, 0)) for s in specs)):
            window, column, params = {}, {}, {}
            for f, spec in enumerate(specs):
                for t in range(steps[f]):
                    pieces = [_pieces(spec, spec.quants, t * lanes + l) for l in range(lanes)]
                    if len(pieces[0]) <= k:
                        continue
                    offsets = [p[k][0] for p in pieces]
                    window[(f, t)] = min(offsets)
                    if max(offsets) >= min(offsets) + lanes:
                        raise ValueError(f"{spec.name} step {t}: lanes read more than {lanes} bytes")
                    cols = [o % lanes for o in offsets]
                    if column.setdefault(f, cols) != cols:
                        raise ValueError(f"{spec.name}: a lane's column changes between steps")
                    for l, p in enumerate(pieces):
                        params.setdefault(l, {})[(f, t)] = p[k][1:]
            classes = {}
            for l in range(lanes):
                classes.setdefault(tuple(sorted(params.get(l, {}).items())), []).append(l)
            self.quants.append({"window": window, "column": column,
                                "classes": [(members, dict(key)) for key, members in classes.items()]})

        groups = lanes // GROUP
        self.scale_window, self.groups = {}, {}
        for kind in ("scales", "mins"):
            ports = max((len(_pieces(s, getattr(s, kind), 0)) for s in specs if getattr(s, kind)), default=0)
            self.groups[kind] = [[{} for _ in range(groups)] for _ in range(ports)]
        for f, spec in enumerate(specs):
            for t in range(steps[f]):
                found = []
                for kind in ("scales", "mins"):
                    codes = getattr(spec, kind)
                    for g in range(groups):
                        index = (t * lanes + g * GROUP) // spec.sub_block
                        for k, p in enumerate(_pieces(spec, codes, index) if codes else []):
                            found.append((kind, k, g, p))
                if not found:
                    continue
                base = min(p[0] for *_, p in found)
                if max(p[0] for *_, p in found) >= base + lanes:
                    raise ValueError(f"{spec.name} step {t}: scales span more than {lanes} bytes")
                self.scale_window[(f, t)] = base
                for kind, k, g, p in found:
                    self.groups[kind][k][g][(f, t)] = (p[0] % lanes,) + p[1:]

    def _check_beats(self, spec, used, beat):
        B = spec.block_bytes
        if beat >= B:
            raise ParameterError(f"a beat of {beat} bytes holds a whole {spec.name} block of {B}: the block "
                                 f"memory takes beats shorter than a block (data_width <= {8 * (B - 1)})")
        for pos in range(B):
            columns = {}
            for i in range(beat):
                o = (pos + i) % B
                if o in used:
                    if columns.setdefault(o % self.lanes, o) != o:
                        raise ParameterError(f"{spec.name}: a beat of {beat} bytes writes two used bytes to "
                                             f"one column of {self.lanes}")


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
        self.layout = _Layout([get_format(name) for name in HW_FORMATS], lanes, data_width // 8)
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

        # -- activations: word w of the activation memory is `lanes` bytes, kept as one memory per beat of the
        # word (beat j of every word in memory j), so no word-wide register gathers beats and a lane reads a
        # beat-wide memory word (both cheap to simulate)
        sub = L // WB
        act_mems = [Memory(shape=unsigned(W), depth=self.act_depth, init=[]) for _ in range(sub)]
        for j, mem in enumerate(act_mems):
            m.submodules[f"act{j}"] = mem
        loading = Signal()          # the activation section is still streaming in
        weights_phase = Signal()
        act_count = Signal(24)
        act_beat = Signal(range(sub))
        act_in = loading & self.input.valid
        for j, mem in enumerate(act_mems):
            port = mem.write_port()
            m.d.comb += [port.addr.eq(act_count), port.data.eq(self.input.payload.data),
                         port.en.eq(act_in & (act_beat == j))]
        with m.If(act_in):
            m.d.sync += act_beat.eq(Mux(act_beat == sub - 1, 0, act_beat + 1))
            with m.If(act_beat == sub - 1):
                m.d.sync += act_count.eq(act_count + 1)
                with m.If(act_count + 1 == cfg.act_words):
                    m.d.sync += [loading.eq(0), weights_phase.eq(1)]

        # -- block memory: stream bytes written where they belong in their block, never moved (see _Layout:
        # `lanes` byte-wide column memories, block k in bank k mod banks), so a step's bytes are one read per
        # column at a row from a table, and no block-wide register is shifted or decoded at once
        fill = Signal(range(SIZE + 1))       # bytes accepted and not yet handed to the sequencer
        have = Signal()
        transfer = Signal()
        blk_free = Signal()
        m.d.comb += [have.eq(fill >= block_bytes), transfer.eq(weights_phase & have & blk_free)]
        ready_weights = weights_phase & ((fill < block_bytes) | transfer)
        m.d.comb += self.input.ready.eq(loading | ready_weights)
        accept = Signal()
        m.d.comb += accept.eq(self.input.valid & ready_weights)
        m.d.sync += fill.eq(Mux(transfer, fill - block_bytes, fill) + Mux(accept, WB, 0))

        layout = self.layout
        min_b = min(s.block_bytes for s in specs)
        # blocks alive at once: the one the sequencer walks and those of up to SIZE accepted bytes
        alive = 1 + -(-SIZE // min_b)
        banks = 1 << (alive - 1).bit_length()
        bank_bits = banks.bit_length() - 1
        row_bits = layout.rows.bit_length() - 1
        log_l = L.bit_length() - 1
        columns = [Memory(shape=unsigned(8), depth=banks * layout.rows, init=[]) for _ in range(L)]
        for c, mem in enumerate(columns):
            m.submodules[f"column{c}"] = mem
        wr_pos = Signal(range(MAXB))         # byte offset of the next stream byte in its block
        wr_blk = Signal(bank_bits)           # its block's bank
        cur = Signal(bank_bits)              # bank of the block the sequencer walks
        nxt = Signal(bank_bits)              # bank of the next block to hand over
        # an accepted beat is written into the columns the next cycle, from registers: the per-column write
        # logic then depends on no input (Verilator evaluates it once a cycle), and a block is still whole
        # in memory before its first read (the sequencer reads it two cycles after its last beat, at the soonest).
        # What each column does with a beat is decided once per beat, as column masks from a table over
        # (format, position in the block) (see _Layout.beat_masks), and the beat is rotated so that column c
        # takes byte c mod beat of one of two rotations: each column's port is then a mask bit and two muxes,
        # which is what keeps 32 write ports cheap to simulate every cycle.
        here_bytes, there_cols = Signal(WB), Signal(WB)
        with m.Switch(Cat(wr_pos, fmt)):
            for f in range(len(specs)):
                for pos, (here, there) in enumerate(layout.beat_masks[f]):
                    with m.Case(pos | f << len(wr_pos)):
                        m.d.comb += [here_bytes.eq(here), there_cols.eq(there)]
        column_pos = wr_pos[:log_l]
        padded = Cat(here_bytes, Const(0, L - WB))
        here_cols = Cat(padded, padded).bit_select((L - column_pos).as_unsigned(), L)    # rotated left by column_pos
        byte_bits = (WB - 1).bit_length()
        write_en = Signal(L)                        # columns that take a byte of the registered beat
        there_en = Signal(L, reset_less=True)       # ... a byte of the next block (its row 0, the next bank)
        wrap = Signal(L, reset_less=True)           # columns whose byte is in the row after the beat's first
        row0 = Signal(row_bits, reset_less=True)
        bank, next_bank = Signal(bank_bits, reset_less=True), Signal(bank_bits, reset_less=True)
        here_shift, there_shift = Signal(byte_bits, reset_less=True), Signal(byte_bits, reset_less=True)
        beat = Signal(W, reset_less=True)
        m.d.sync += write_en.eq(Mux(accept, here_cols | there_cols, 0))
        with m.If(accept):
            m.d.sync += [beat.eq(self.input.payload.data), there_en.eq(there_cols),
                         wrap.eq(((Const(1, 1) << column_pos) - 1)[:L]), row0.eq(wr_pos[log_l:]),
                         bank.eq(wr_blk), next_bank.eq(wr_blk + 1),
                         # column c takes byte (c - position) of this block's bytes, (c + bytes left) of the next's
                         here_shift.eq(-wr_pos), there_shift.eq(block_bytes - wr_pos)]
        for c, mem in enumerate(columns):
            port = mem.write_port()
            there = there_en[c]
            m.d.comb += [port.en.eq(write_en[c]),
                         port.addr.eq(Cat(Mux(there, 0, row0 + wrap[c])[:row_bits], Mux(there, next_bank, bank))),
                         port.data.eq(beat.word_select((c + Mux(there, there_shift, here_shift))[:byte_bits], 8))]
        with m.If(accept):
            position = wr_pos + WB
            over = position >= block_bytes
            m.d.sync += [wr_pos.eq(Mux(over, position - block_bytes, position)), wr_blk.eq(wr_blk + over)]
        with m.If(transfer):
            m.d.sync += [cur.eq(nxt), nxt.eq(nxt + 1)]

        # -- sequencer: (token, step) over the block in bank `cur`
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
        # loop ends as registered flags (hw/pipeline.py): the token count's comparator was the critical
        # path (83.8 MHz) into the memories' write enables
        step_end = LastFlag(step, steps, "step_end")
        token_end = LastFlag(token, cfg.tokens, "token_end")
        row_block_end = LastFlag(row_block, cfg.row_blocks, "row_block_end")
        m.d.comb += [issue.eq(blk_valid & room), last_step.eq(step_end.flag), last_token.eq(token_end.flag)]
        block_done = issue & last_step & last_token
        m.d.comb += blk_free.eq(~blk_valid | block_done)
        act_rd = [mem.read_port(transparent_for=()) for mem in act_mems]
        m.d.comb += [p.addr.eq(tok_addr + step) for p in act_rd] + [p.en.eq(issue) for p in act_rd]
        with m.If(issue):
            with m.If(last_step):
                m.d.sync += [step.eq(0), step_end.restart(), token.eq(token + 1), token_end.step(),
                             tok_addr.eq(tok_addr + cfg.row_words)]
                with m.If(last_token):
                    m.d.sync += [token.eq(0), token_end.restart(), blk_valid.eq(0)]
                    with m.If(row_block_end.flag):
                        m.d.sync += [row_block.eq(0), row_block_end.restart(), blk_base.eq(0), tok_addr.eq(0)]
                    with m.Else():
                        m.d.sync += [row_block.eq(row_block + 1), row_block_end.step(), blk_base.eq(blk_base + steps),
                                     tok_addr.eq(blk_base + steps)]
            with m.Else():
                m.d.sync += [step.eq(step + 1), step_end.step()]
        with m.If(transfer):
            m.d.sync += blk_valid.eq(1)

        # stage 1: the step's bytes, read from the block's bank (they land with the activation word), decoded
        # to element codes and group scales by the pieces of the format's spec (tables: _Layout)
        step_bits = len(step)
        select = Cat(step, fmt)

        def table(entries, widths, name):
            """Signals looked up from {(format, step): values} for this step (0 where absent)."""
            values = [Signal(w, name=f"{name}_{i}") for i, w in enumerate(widths)]
            with m.Switch(select):
                for (f, t), entry in entries.items():
                    with m.Case(t | f << step_bits):
                        m.d.comb += [v.eq(e) for v, e in zip(values, entry)]
            return values

        def staged(values):
            out = [Signal.like(v, name=f"{v.name}1", reset_less=True) for v in values]
            with m.If(issue):
                m.d.sync += [o.eq(v) for o, v in zip(out, values)]
            return out

        def read_window(window, name):
            """Each column's byte of the ``lanes``-byte window starting at the table's offset."""
            # the window's first row, and the columns whose byte is in the next row (before the window's first
            # column): constants per (format, step), so a column's row is one add
            base, wrap = table({key: (v >> log_l, (1 << (v % L)) - 1) for key, v in window.items()},
                               [(MAXB >> log_l).bit_length(), L], f"{name}_window")
            data = []
            for c, mem in enumerate(columns):
                row = base + wrap[c]
                port = mem.read_port(transparent_for=())
                m.d.comb += [port.addr.eq(Cat(row[:row_bits], cur)), port.en.eq(issue)]
                data.append(port.data)
            return data

        def decode(pieces, conversion):
            code = 0
            for data, shift, mask, to_bit in pieces:
                code = code | (((data >> shift) & mask) << to_bit)
            sign, offset = conversion
            return ((code ^ sign).as_signed() - (sign + offset))[:8].as_signed()

        def conversions(kind, default):
            sign, offset = Signal(8, name=f"{kind}_sign"), Signal(signed(9), name=f"{kind}_offset")
            with m.Switch(fmt):
                for i, s in enumerate(specs):
                    codes = getattr(s, kind)
                    with m.Case(i):
                        if codes is None:
                            m.d.comb += [sign.eq(0), offset.eq(-default)]
                        elif codes.signed:
                            m.d.comb += [sign.eq(1 << (codes.bits - 1)), offset.eq(0)]
                        else:
                            m.d.comb += [sign.eq(0), offset.eq(codes.offset)]
            return sign, offset

        piece_widths = [3, 8, 3]            # shift, mask, bit position in the code
        lane_pieces = [[] for _ in range(L)]
        for k, port in enumerate(layout.quants):
            data = read_window(port["window"], f"q{k}")
            for c, (members, entries) in enumerate(port["classes"]):
                params = staged(table(entries, piece_widths, f"q{k}_class{c}"))
                for l in members:
                    byte = Signal(8, name=f"q{k}_lane{l}")
                    with m.Switch(fmt):
                        for f, cols in port["column"].items():
                            with m.Case(f):
                                m.d.comb += byte.eq(data[cols[l]])
                    lane_pieces[l].append((byte, *params))
        w_lane = [decode(p, conversions("quants", 0)) for p in lane_pieces]
        scale_data = Array(read_window(layout.scale_window, "scales"))
        group_values = {}
        for kind, default in (("scales", 1), ("mins", 0)):
            pieces = [[] for _ in range(groups)]
            for k, port in enumerate(layout.groups[kind]):
                for g, entries in enumerate(port):
                    column, *params = staged(table(entries, [log_l] + piece_widths, f"{kind}{k}_g{g}"))
                    pieces[g].append((scale_data[column], *params))
            convert = conversions(kind, default)
            group_values[kind] = [decode(p, convert) for p in pieces]
        g_scale, g_min = group_values["scales"], group_values["mins"]
        v1, first1, last1 = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [v1.eq(issue), first1.eq(step == 0), last1.eq(last_step)]

        # Datapath registers are reset-less and load only under their stage's valid bit: their values only
        # count there, and Verilator then computes a stage only in the cycles it works (a register with a
        # reset recomputes its next value from the reset input every cycle, twice with the input phase).
        # stage 1b: the operands registered. The activation memory's read data (an ECP5 block RAM's output,
        # slow) into the multiplier was the design's critical path at 59.6 MHz (ECP5-85F, placer seed 1),
        # and so was the column read and decode in front of the weight operand.
        a_read = [act_rd[l // WB].data[8 * (l % WB):8 * (l % WB) + 8].as_signed() for l in range(L)]
        a_lane = [Signal(signed(8), name=f"a1_{l}", reset_less=True) for l in range(L)]
        w_reg = [Signal(signed(8), name=f"w1_{l}", reset_less=True) for l in range(L)]
        s1 = [Signal(signed(8), name=f"s1_{g}", reset_less=True) for g in range(groups)]
        n1 = [Signal(signed(8), name=f"n1_{g}", reset_less=True) for g in range(groups)]
        vb, firstb, lastb = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        with m.If(v1):
            m.d.sync += [a_lane[l].eq(a_read[l]) for l in range(L)] + [w_reg[l].eq(w_lane[l]) for l in range(L)]
            m.d.sync += [s1[g].eq(g_scale[g]) for g in range(groups)] + [n1[g].eq(g_min[g]) for g in range(groups)]
        m.d.sync += [vb.eq(v1), firstb.eq(first1), lastb.eq(last1)]

        # stage 2: products
        prod = [Signal(signed(16), name=f"prod_{l}", reset_less=True) for l in range(L)]
        a2 = [Signal(signed(8), name=f"a2_{l}", reset_less=True) for l in range(L)]
        s2 = [Signal(signed(8), name=f"s2_{g}", reset_less=True) for g in range(groups)]
        n2 = [Signal(signed(8), name=f"n2_{g}", reset_less=True) for g in range(groups)]
        v2, first2, last2 = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        with m.If(vb):
            m.d.sync += [prod[l].eq(a_lane[l] * w_reg[l]) for l in range(L)]
            m.d.sync += [a2[l].eq(a_lane[l]) for l in range(L)]
            m.d.sync += [s2[g].eq(s1[g]) for g in range(groups)] + [n2[g].eq(n1[g]) for g in range(groups)]
        m.d.sync += [v2.eq(vb), first2.eq(firstb), last2.eq(lastb)]

        # stage 3: per-group sums (adder trees)
        def tree(values):
            while len(values) > 1:
                values = [(values[i] + values[i + 1]) if i + 1 < len(values) else values[i]
                          for i in range(0, len(values), 2)]
            return values[0]

        psum = [Signal(signed(20), name=f"psum_{g}", reset_less=True) for g in range(groups)]
        asum = [Signal(signed(13), name=f"asum_{g}", reset_less=True) for g in range(groups)]
        s3 = [Signal(signed(8), name=f"s3_{g}", reset_less=True) for g in range(groups)]
        n3 = [Signal(signed(8), name=f"n3_{g}", reset_less=True) for g in range(groups)]
        v3, first3, last3 = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        for g in range(groups):
            with m.If(v2):
                m.d.sync += [psum[g].eq(tree(prod[g * GROUP:(g + 1) * GROUP])),
                             asum[g].eq(tree(a2[g * GROUP:(g + 1) * GROUP])), s3[g].eq(s2[g]), n3[g].eq(n2[g])]
        m.d.sync += [v3.eq(v2), first3.eq(first2), last3.eq(last2)]

        # stage 4: sub-block scales and mins applied
        sp = [Signal(signed(28), name=f"sp_{g}", reset_less=True) for g in range(groups)]
        sm = [Signal(signed(20), name=f"sm_{g}", reset_less=True) for g in range(groups)]
        v4, first4, last4 = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        for g in range(groups):
            with m.If(v3):
                m.d.sync += [sp[g].eq(psum[g] * s3[g]), sm[g].eq(asum[g] * n3[g])]
        m.d.sync += [v4.eq(v3), first4.eq(first3), last4.eq(last3)]

        # stage 5: accumulate over the block's steps; a finished (block, token) goes to the FIFO
        isum, msum = Signal(signed(32), reset_less=True), Signal(signed(32), reset_less=True)
        step_i, step_m = tree(sp), tree(sm)
        new_i = Signal(signed(32))
        new_m = Signal(signed(32))
        m.d.comb += [new_i.eq(Mux(first4, 0, isum) + step_i), new_m.eq(Mux(first4, 0, msum) + step_m)]
        with m.If(v4):
            m.d.sync += [isum.eq(new_i), msum.eq(new_m)]
        push = v4 & last4

        # -- result FIFO (registers) and the output stream
        fifo = Array(Signal(64, name=f"fifo_{i}", reset_less=True) for i in range(FIFO_DEPTH))
        w_ptr, r_ptr = Signal(range(FIFO_DEPTH)), Signal(range(FIFO_DEPTH))
        count = Signal(range(FIFO_DEPTH + 1))
        with m.If(push):
            m.d.sync += [fifo[w_ptr].eq(Cat(new_i, new_m)), w_ptr.eq(w_ptr + 1)]
        m.submodules.sender = sender = WordSender(beats=word_beats(RESULT_BYTES, W), data_width=W)
        wiring.connect(m, sender.output, wiring.flipped(self.output))
        sent = Signal(32)
        sent_end = LastFlag(sent, cfg.results, "sent_end")
        load = Signal()
        m.d.comb += [sender.words.valid.eq(count > 0), sender.words.payload.data.eq(fifo[r_ptr]),
                     sender.words.payload.final.eq(sent_end.flag), sender.clear.eq(self.start),
                     self.done.eq(sender.done), load.eq(sender.words.valid & sender.words.ready)]
        with m.If(load):
            m.d.sync += [r_ptr.eq(r_ptr + 1), sent.eq(sent + 1), sent_end.step()]
        m.d.sync += count.eq(count + push - load)
        m.d.sync += outstanding.eq(outstanding + (issue & last_step) - load)

        m.d.comb += [self.busy.eq(issue), self.macs.eq(Mux(issue, L, 0)),
                     self.input_wait.eq(loading | (weights_phase & ~blk_valid))]

        with m.If(self.start):
            m.d.sync += [loading.eq(1), weights_phase.eq(0), act_count.eq(0), act_beat.eq(0), fill.eq(0), write_en.eq(0),
                         wr_pos.eq(0), wr_blk.eq(0), cur.eq(0), nxt.eq(0),
                         blk_valid.eq(0), step.eq(0), token.eq(0), tok_addr.eq(0), blk_base.eq(0),
                         row_block.eq(0), outstanding.eq(0), w_ptr.eq(0), r_ptr.eq(0), count.eq(0), sent.eq(0),
                         step_end.restart(), token_end.restart(), row_block_end.restart(), sent_end.restart(),
                         v1.eq(0), vb.eq(0), v2.eq(0), v3.eq(0), v4.eq(0)]
        return m
