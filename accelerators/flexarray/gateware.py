"""flexarray core: MAERI/SIGMA-style multiplier switches behind a distribution and a reduction network.

``N`` multiplier switches each hold a stationary int8 operand (a weight) and
capture a streaming int8 operand from the distribution network; a reduction
network (see ``networks.py``) adds the products of each virtual neuron (VN) and
delivers up to ``RN_BW`` VN sums per step into an accumulation buffer, which
adds over folds and is read out through TFLite-exact requantization. The
hardware follows a configuration computed by the host's mapping compiler
(``compiler.py``) and loaded once per fold or tile into on-chip registers; no
control travels with the streaming data beats.

Input stream: commands, each a header beat followed by its payload beats. The
header's low 32 bits: opcode (bits 0-2), ``first`` (3), ``last`` (4), a count
(8-23) and the beats per step (24-31, STEPS only).

* MAP (1): ``map_beats`` beats, the mapping (``map_bytes``), byte ``b`` of the
  payload at byte ``b`` of the configuration: per multiplier one byte, the
  position of its operand among the step's values | VN end << 7 (positions
  stay below 128 because a step never carries more values than multipliers);
  per output lane two bytes (collecting node index; tree level | enable << 7),
  or with a lane ``reach`` one byte (the node's index within the lane's region,
  bits 0-3; tree level, bits 4-6; enable, bit 7);
  the number of multipliers in use (two bytes, for the MAC counter); with the
  reference network ``seq`` only, per multiplier its lane | used << 7; with the
  augmented reduction tree ``art`` only, per adder node (level 1 first) its
  configuration byte (``art.py``; the VN end bits are then unused).
* WEIGHTS (2): ``weight_beats`` beats, one int8 stationary operand per multiplier;
  with a non-zero ``count`` its fold's steps follow at once, as a STEPS command
  with this header would bring them (one header beat less per fold).
* PARAMS (3): ``count`` beats (at most ``param_beats``), per output lane 12
  bytes (96 bits) from lane 0 on: bias (bits 0-31), the requantizer's 54-bit
  multiplier (32-85) and its shifts packed into 10 bits (86-95: left | right
  << 5 in double-rounding mode, the exponent in float mode). A tile sends only
  the lanes it uses.
* STEPS (4): ``count`` steps of ``beats per step`` beats each. A beat carries
  ``DN_BW`` int8 values; multiplier ``i`` captures the value at position
  ``pos_i`` of every step, lane ``pos_i % DN_BW`` of beat ``pos_i // DN_BW``
  (the distribution network: a crossbar, ``DN_BW`` values to any multipliers
  each cycle; or, with ``dn=tree``, MAERI's distribution tree: ``DN_BW``
  binary multicast trees of ``N / DN_BW`` multipliers each, lane ``l`` feeding
  tree ``l``, so a multiplier's position is always on its own tree's lane and
  a value needed on several trees is sent on each; every switch level is
  registered, the value going on with the destination mask of its leaves,
  and the configuration a step multiplies with follows it down the same
  number of levels). After a step's last beat (and the tree) its products
  enter the reduction network; the sums of step ``s`` are written into
  accumulation word ``s`` (``first``) or added to it.
* READOUT (5): hands the tile's accumulation bank and parameters to the
  readout engine and switches the steps to the other bank: the next tile's
  commands stream in while this one is read out (double-buffered
  accumulation). The decoder waits here only while the engine still reads the
  tile before. The engine waits for the tile's last write, then reads words
  ``0..count-1`` in order, each ``beats per step`` times, once per group of
  ``min(DN_BW, RN_BW)`` lanes: the group goes through that many requantizers
  (their per-channel parameters travel down the pipeline with the data, so the
  group may change every cycle) and becomes one output beat (lanes from byte 0;
  bytes past the lanes the tile uses are don't-care). TLAST marks the last beat
  of a READOUT marked ``last``, which ends the job.

Every multiplier output, every tree level and every memory read is registered.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory

from ...errors import ParameterError
from ...hw.dsp import registered_product
from ...hw.pipeline import LastFlag
from ...hw.registers import CONFIG_BASE, Register
from ...hw.shell import CoreBase, word_beats
from . import requant
from .networks import (LANE_WIDTH, PRODUCT_WIDTH, AugmentedReductionTree, ForwardingAdderNetwork, SegmentedSum,
                       lane_of_layout, latency, select_layout)

__all__ = ["FlexArrayCore", "FLEX_CONFIG_REGISTERS", "Opcode", "map_bytes", "lane_bytes", "REACHES",
           "PARAM_BYTES_PER_LANE", "REDUCTION_NETWORKS",
           "DISTRIBUTION_NETWORKS", "write_delay", "readout_delay", "dn_depth", "fifo_depth"]

FLEX_CONFIG_REGISTERS = (
    Register("OUTPUT_ZERO_POINT", CONFIG_BASE + 0x00, "rw", 8, signed=True, doc="added after requantization"),
    Register("ACT_MIN", CONFIG_BASE + 0x04, "rw", 8, signed=True, doc="lower clamp of the int8 output"),
    Register("ACT_MAX", CONFIG_BASE + 0x08, "rw", 8, signed=True, doc="upper clamp of the int8 output"),
    Register("REQUANT_MODE", CONFIG_BASE + 0x0C, "rw", 1, doc="0: double rounding (CONV_2D), 1: float (FC)"),
)

PARAM_BYTES_PER_LANE = 12
REDUCTION_NETWORKS = ("fan", "seq", "art")
DISTRIBUTION_NETWORKS = ("xbar", "tree")


class Opcode:
    MAP = 1
    WEIGHTS = 2
    PARAMS = 3
    STEPS = 4
    READOUT = 5


def map_bytes(n, lanes, rn, reach=0):
    """Bytes of the mapping configuration of ``n`` multipliers and ``lanes`` output lanes (see the module doc)."""
    return n + lane_bytes(reach) * lanes + 2 + {"seq": n, "art": n - 1}.get(rn, 0)


def lane_bytes(reach):
    """Map bytes per output lane: a node index and a level byte, or one byte when lanes have a reach."""
    return 1 if reach else 2


#: lane reaches the hardware takes (multipliers per lane region; 0: every lane reaches every node)
REACHES = (0, 1, 2, 4, 8, 16)


def dn_depth(n, dn_bw, dn):
    """Register levels of the distribution network between a beat and the multipliers' operand registers:
    one for the crossbar (each multiplier's choice from the beat and its take flag, registered beside it);
    for the tree, its switch levels, log2 of the multipliers per subtree."""
    return (n // dn_bw).bit_length() - 1 if dn == "tree" else 1


def write_delay(n, depth=0):
    """Cycles from a step's last beat to the cycle its sums are written into the accumulation buffer.

    Capture (the beat's cycle; ``depth`` distribution-tree levels later), product
    register, a register level between the multiplier blocks and the network, the
    reduction network, the buffer read, the write.
    """
    return 1 + depth + 1 + 1 + latency(n) + 1


def readout_delay():
    """Cycles from reading a word to the cycle the output FIFO offers it: memory read, the word's register,
    requantizer, FIFO."""
    return 1 + 1 + requant.LATENCY + 1


def fifo_depth():
    """Output FIFO depth: enough that its credit never slows the readout below the output stream's pace."""
    return readout_delay() + 2


def _check(name, value, allowed):
    if isinstance(value, bool) or value not in allowed:
        raise ParameterError(f"{name} must be one of {', '.join(map(str, allowed))}, not {value!r}")


class FlexArrayCore(CoreBase):
    """The flexarray core; wrap it in :class:`~accelkit.hw.shell.AcceleratorShell` to export it.

    Keyword-only parameters: ``multipliers`` (N, a power of two 4..128),
    ``dn_bw`` (int8 values per beat, 4..128, a power of two; the stream is
    ``8 * dn_bw`` bits wide), ``rn_bw`` (output lanes, 1..N), ``rn`` (``"fan"``,
    ``"seq"`` or ``"art"``), ``dn`` (``"xbar"`` or ``"tree"``, at most ``N``
    values a beat), ``acc_depth`` (accumulation words, a power
    of two), ``reach`` (multipliers per lane region, 0 for lanes that reach
    every node; ``rn="fan"`` with ``dn="xbar"`` only). Raises :class:`ParameterError`.
    """

    config_registers = FLEX_CONFIG_REGISTERS

    def __init__(self, *, multipliers=16, dn_bw=8, rn_bw=8, rn="fan", dn="xbar", acc_depth=512, reach=0):
        _check("multipliers", multipliers, [1 << e for e in range(2, 8)])
        _check("dn_bw", dn_bw, [1 << e for e in range(2, 8)])
        _check("rn", rn, REDUCTION_NETWORKS)
        _check("dn", dn, DISTRIBUTION_NETWORKS)
        if dn == "tree" and dn_bw > multipliers:
            raise ParameterError(f"dn=tree needs dn_bw ({dn_bw}) <= multipliers ({multipliers}): one multicast "
                                 "tree of multipliers per value of a beat")
        if isinstance(rn_bw, bool) or not isinstance(rn_bw, int) or not 1 <= rn_bw <= multipliers:
            raise ParameterError(f"rn_bw must be an integer in 1..multipliers ({multipliers}), not {rn_bw!r}")
        if isinstance(acc_depth, bool) or not isinstance(acc_depth, int) or acc_depth < 2 or acc_depth & (acc_depth - 1) \
                or acc_depth > 1 << 16:
            raise ParameterError(f"acc_depth must be a power of two in 2..65536, not {acc_depth!r}")
        _check("reach", reach, [r for r in REACHES if r <= multipliers])
        if reach and (rn, dn) != ("fan", "xbar"):
            raise ParameterError(f"a lane reach ({reach}) needs rn=fan and dn=xbar, not rn={rn} and dn={dn}: "
                                 "set reach=0")
        self.n, self.dn_bw, self.rn_bw, self.rn, self.dn, self.acc_depth = multipliers, dn_bw, rn_bw, rn, dn, acc_depth
        self.reach = reach
        self.info = multipliers | (rn_bw << 8)
        self.dn_depth = dn_depth(multipliers, dn_bw, dn)
        #: lanes requantized per cycle (one output beat) and lane groups per accumulation word
        self.per_beat = min(dn_bw, rn_bw)
        self.groups = -(-rn_bw // self.per_beat)
        super().__init__(8 * dn_bw)

    @property
    def map_bytes(self):
        return map_bytes(self.n, self.rn_bw, self.rn, self.reach)

    def elaborate(self, platform):
        m = Module()
        n, lanes, bw, width = self.n, self.rn_bw, self.dn_bw, self.data_width
        cfg = self.config
        map_beats = word_beats(self.map_bytes, width)
        weight_beats = word_beats(n, width)
        param_beats = word_beats(PARAM_BYTES_PER_LANE * lanes, width)

        def field(reg, byte):
            return reg[8 * byte:8 * byte + 8]

        # ---- configuration registers: beat k of a load is word k (byte 0 at bit 0). A beat is filed the cycle
        # after it is taken, from a copy of it, under its word's own registered enable: the handshake then
        # reaches a few enable registers rather than every configuration flip-flop (its fan-out into the
        # parameter words bounded a 16-multiplier design at 81.5 MHz: 1.7 ns of logic, 10.6 ns of routing).
        # Nothing reads a word in that cycle: the map and the parameters are read a header later, and the
        # weights go straight into the multipliers' B registers (below).
        map_reg = Signal(map_beats * width, reset_less=True)
        param_reg = Signal(param_beats * width, reset_less=True)
        beat = self.input.payload.data
        accepted = self.input.valid & self.input.ready
        load_beat = Signal(width, reset_less=True)
        map_we, weight_we, param_we = Signal(map_beats), Signal(weight_beats), Signal(param_beats)
        m.d.sync += [load_beat.eq(beat), map_we.eq(0), weight_we.eq(0), param_we.eq(0)]

        def file_words(reg, enables, source):
            """Word k of ``reg`` loads word k of ``source`` (or ``source`` itself, one word wide) under enable k."""
            for k in range(len(enables)):
                with m.If(enables[k]):
                    m.d.sync += reg.word_select(k, width).eq(source if len(source) == width
                                                             else source.word_select(k, width))

        file_words(map_reg, map_we, load_beat)
        file_words(param_reg, param_we, load_beat)
        # the tree's levels delay the operands, and the step's configuration follows them down (below)
        follows = self.dn == "tree" and self.dn_depth > 0
        if follows:
            weight_reg = Signal(weight_beats * width, reset_less=True)
            file_words(weight_reg, weight_we, load_beat)
            weights = [field(weight_reg, i).as_signed() for i in range(n)]
        else:
            weights = None        # the B registers are the weight registers

        dn_bits = (bw - 1).bit_length()          # dn_bw >= 4: the position's low bits are the beat's lane
        dn_lane = [field(map_reg, i)[:dn_bits] for i in range(n)]
        slot = [field(map_reg, i)[dn_bits:7] for i in range(n)]
        ends = Cat(field(map_reg, i)[7] for i in range(n))
        if self.reach:
            # one byte a lane: node index within the region (bits 0-3), level (4-6), enable (7)
            select = [(Cat(field(map_reg, n + j)[:4], Const(0, 4)), Cat(field(map_reg, n + j)[4:7], Const(0, 4),
                                                                         field(map_reg, n + j)[7]))
                      for j in range(lanes)]
        else:
            select = [(field(map_reg, n + 2 * j), field(map_reg, n + 2 * j + 1)) for j in range(lanes)]
        at = n + lane_bytes(self.reach) * lanes
        used_count = Cat(field(map_reg, at), field(map_reg, at + 1))
        lane_of = [field(map_reg, at + 2 + i) if self.rn == "seq" else Const(0, 8) for i in range(n)]
        node_cfg = [field(map_reg, at + 2 + i) for i in range(n - 1)] if self.rn == "art" else []

        # ---- decoder ----
        opcode, first, last = Signal(3), Signal(), Signal()
        count, per_step = Signal(16), Signal(8)
        beats_left = Signal(16)
        load_index = Signal(range(max(map_beats, weight_beats, param_beats) + 1))
        # (the tracer never named the first one: "$signal" keeps the default design's Verilog as it was)
        step, step_beat = Signal(16, name="$signal"), Signal(8, name="step_beat")
        fire, pop = Signal(), Signal()
        # a step's last beat and a run's last step as registered flags: `fire` is a gate after the handshake,
        # not an adder and a comparator (they bounded a 16-multiplier design at 73.9 MHz into the counters)
        beat_last, step_last = LastFlag(step_beat, per_step, "beat_last"), LastFlag(step, count, "step_last")
        in_flight = Signal()
        header = beat[:32]

        # readout engine: the tile handed over by READOUT (its bank, word count, last) and its progress
        bank = Signal()                   # the bank STEPS accumulate into
        engine_busy, engine_bank, engine_last, engine_count = Signal(), Signal(), Signal(), Signal(16)
        engine_beats = Signal(8)          # output beats per word of the tile being read out
        issued, popped = Signal(16), Signal(16)            # words
        group, popped_group = Signal(8), Signal(8)         # lane groups (output beats) within the word
        outstanding = Signal(range(fifo_depth() + 1))
        # the readout's parameters: copied from the loaded ones the cycle after READOUT hands a tile over, word
        # k under its own registered enable (as the loads above); the requantizers first read them a cycle later
        param_active = Signal(param_beats * width, reset_less=True)
        copy_we = Signal(param_beats)
        m.d.sync += copy_we.eq(0)
        file_words(param_active, copy_we, param_reg)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += self.input.ready.eq(1)
                with m.If(accepted):
                    m.d.sync += [opcode.eq(header[:3]), first.eq(header[3]), last.eq(header[4]),
                                 count.eq(header[8:24]), per_step.eq(header[24:32]), step.eq(0), step_beat.eq(0),
                                 beat_last.flag.eq(header[24:32] == 1), step_last.flag.eq(header[8:24] == 1)]
                    with m.Switch(header[:3]):
                        with m.Case(Opcode.MAP):
                            m.d.sync += [beats_left.eq(map_beats), load_index.eq(0)]
                            m.next = "LOAD"
                        with m.Case(Opcode.WEIGHTS):
                            m.d.sync += [beats_left.eq(weight_beats), load_index.eq(0)]
                            m.next = "LOAD"
                        with m.Case(Opcode.PARAMS):
                            m.d.sync += [beats_left.eq(header[8:24]), load_index.eq(0)]
                            with m.If(header[8:24] != 0):
                                m.next = "LOAD"
                        with m.Case(Opcode.STEPS):
                            m.next = "STEPS"
                        with m.Case(Opcode.READOUT):
                            m.next = "READOUT"
            with m.State("LOAD"):
                m.d.comb += self.input.ready.eq(1)
                with m.If(accepted):
                    m.d.sync += [beats_left.eq(beats_left - 1), load_index.eq(load_index + 1)]
                    with m.Switch(opcode):
                        with m.Case(Opcode.MAP):
                            m.d.sync += [map_we[k].eq(load_index == k) for k in range(map_beats)]
                        with m.Case(Opcode.WEIGHTS):
                            m.d.sync += [weight_we[k].eq(load_index == k) for k in range(weight_beats)]
                        with m.Case(Opcode.PARAMS):
                            # lane 0 first, at bit 0: a tile loads only the lanes it uses (beats past the
                            # last word are taken and dropped)
                            m.d.sync += [param_we[k].eq(load_index == k) for k in range(param_beats)]
                    with m.If(beats_left == 1):
                        m.next = "HEADER"
                        with m.If((opcode == Opcode.WEIGHTS) & (count != 0)):
                            m.next = "STEPS"
            with m.State("STEPS"):
                m.d.comb += self.input.ready.eq(1)
                with m.If(accepted):
                    m.d.sync += [step_beat.eq(step_beat + 1), beat_last.step()]
                    with m.If(beat_last.flag):
                        m.d.comb += fire.eq(1)
                        m.d.sync += [step_beat.eq(0), beat_last.restart(), step.eq(step + 1), step_last.step()]
                        with m.If(step_last.flag):
                            m.next = "HEADER"
            with m.State("READOUT"):
                with m.If(~engine_busy):
                    m.d.sync += [engine_busy.eq(1), engine_bank.eq(bank), engine_last.eq(last),
                                 engine_count.eq(count), engine_beats.eq(per_step), issued.eq(0), popped.eq(0),
                                 group.eq(0), popped_group.eq(0),
                                 bank.eq(~bank), copy_we.eq(~0)]
                    m.next = "HEADER"
                    with m.If(last):
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~engine_busy):
                    m.next = "IDLE"

        # ---- multiplier switches: capture (distribution network), then registered products ----
        lane_values = [beat[8 * l:8 * l + 8].as_signed() for l in range(bw)]
        operands = []
        capture = fsm.ongoing("STEPS") & accepted
        if self.dn == "xbar":
            # one registered level: each multiplier's choice from the beat and its take flag, so the handshake,
            # the FSM and the lane choice (a map register) reach registers the placer may put beside the
            # multiplier, and the block's A input comes from one register (the FSM state into the blocks'
            # enables bounded a 16-multiplier design at 80.1 MHz; a shared registered beat before the selection,
            # 90.1 MHz: a map register through the selection into the A input, 1.3 ns of logic, 9.8 of routing)
            # The take flag is two registers, the beat taken (one) and each multiplier's slot match (one
            # each), and their AND: the handshake through the slot compare into one register per multiplier
            # bounded a 16-multiplier design at 93.0 MHz (1.2 ns of logic, 9.5 ns of routing from the shell)
            lane_array = Array(lane_values)
            beat_taken = Signal(name="beat_taken")
            matches = Signal(n, name="slot_matches", reset_less=True)
            m.d.sync += [beat_taken.eq(capture), matches.eq(Cat(slot[i] == step_beat for i in range(n)))]
            for i in range(n):
                picked = Signal(signed(8), name=f"picked{i}", reset_less=True)
                m.d.sync += picked.eq(lane_array[dn_lane[i]])
                operand = Signal(signed(8), name=f"operand{i}", reset_less=True)
                value, take = picked, beat_taken & matches[i]
                with m.If(take):
                    m.d.sync += operand.eq(value)
                operands.append((value, take, operand))
        else:
            # the distribution tree: lane l multicast to multipliers l*per_tree.. by registered switches, each
            # passing the value on with the destination mask of its leaves (a switch takes a new value only
            # when a leaf below it wants one: left, right, both or idle)
            per_tree = n // bw

            def distribute(value, mask, name):
                if len(mask) == 1:
                    return [(value, mask[0])]
                held = Signal(signed(8), name=f"dn_{name}", reset_less=True)
                wanted = Signal(len(mask), name=f"dn_{name}_mask")
                m.d.sync += wanted.eq(mask)
                with m.If(mask.any()):
                    m.d.sync += held.eq(value)
                half = len(mask) // 2
                return (distribute(held, wanted[:half], name + "l") + distribute(held, wanted[half:], name + "r"))

            for lane in range(bw):
                leaves = range(lane * per_tree, (lane + 1) * per_tree)
                mask = Cat(capture & (slot[i] == step_beat) for i in leaves)
                for i, (value, enable) in zip(leaves, distribute(lane_values[lane], mask, f"t{lane}")):
                    operand = Signal(signed(8), name=f"operand{i}", reset_less=True)
                    with m.If(enable):
                        m.d.sync += operand.eq(value)
                    operands.append((value, enable, operand))

        products = Signal(data.ArrayLayout(signed(PRODUCT_WIDTH), n))
        product_ends = Signal(n, reset_less=True)
        product_lane_of = Signal(data.ArrayLayout(lane_of_layout(lanes), n), reset_less=True)
        product_select = Signal(data.ArrayLayout(select_layout(n), lanes), reset_less=True)
        product_valid = Signal()
        fired = Signal()          # the cycle after a step's last beat: its operands are all captured
        dn_levels = self.dn_depth
        fire_line = fire
        for k in range(dn_levels + 1):
            stage = Signal(name=f"fire_d{k + 1}")
            m.d.sync += stage.eq(fire_line)
            fire_line = stage
        m.d.comb += fired.eq(fire_line)
        m.d.sync += product_valid.eq(fired)
        if follows:
            # the tree delays the operands: the step's configuration (weights and map) follows them down as
            # many levels, so the next fold's may load meanwhile

            def follow(value, name, levels=dn_levels):
                for k in range(levels):
                    stage = Signal(len(value), name=f"{name}_d{k + 1}", reset_less=True)
                    m.d.sync += stage.eq(value)
                    value = stage
                return value

            # (the weight registers are written a cycle after their beat: one stage fewer)
            weight_line = follow(Cat(*weights), "step_weights", dn_levels - 1)
            weights = [weight_line[8 * i:8 * i + 8].as_signed() for i in range(n)]
            ends = follow(ends, "step_ends")
            select_line = follow(Cat(Cat(index, level) for index, level in select), "step_select")
            select = [(select_line[16 * j:16 * j + 8], select_line[16 * j + 8:16 * j + 16]) for j in range(lanes)]
            if self.rn == "seq":
                lane_line = follow(Cat(*lane_of), "step_lane_of")
                lane_of = [lane_line[8 * i:8 * i + 8] for i in range(n)]
            if self.rn == "art":
                node_line = follow(Cat(*node_cfg), "step_nodes")
                node_cfg = [node_line[8 * i:8 * i + 8] for i in range(n - 1)]
        # each multiplier switch's product, registered every cycle (the reduction network takes it in the cycle
        # `product_valid` marks, the one after the step has fired; the registers load every cycle there too, so
        # `fired` reaches no multiplier's enable): on the ECP5 a MULT18X18D with
        # its own input and output registers (hw/dsp.py), so the operand's capture register is the block's
        # A register and the product leaves from its output register (operand -> block -> product register
        # through the fabric bounded a 16-multiplier design at 88.3 MHz: 4.5 ns in the block, 6.9 ns of
        # routing). The weight goes in through the B register: with the crossbar that register is the
        # weight's only copy, written from its load beat (the fold's first step may follow the last weight
        # beat at once, so the register must hold the weight by the step's fire); behind the tree it loads
        # every cycle from the weights following the operands down: a fold's weights never change between a
        # step's last beat and the cycle after, when the product is taken.
        for i, (value, take, operand) in enumerate(operands):
            weight = Signal(signed(8), name=f"weight{i}", reset_less=True)
            if weights is None:
                b = load_beat.word_select(i % (width // 8), 8).as_signed()
                b_enable = weight_we[8 * i // width]
            else:
                b, b_enable = weights[i], 1
            with m.If(b_enable):
                m.d.sync += weight.eq(b)
            product = registered_product(m, platform, f"switch{i}", a=value, b=b, a_held=operand,
                                         b_held=weight, a_enable=take, b_enable=b_enable)
            m.d.comb += products[i].eq(product)
        lane_bits = max(1, (lanes - 1).bit_length())
        index_bits = max(1, (n - 1).bit_length())
        # the step's map beside its products: taken when the step has fired where it follows the operands down
        # the tree; otherwise every cycle, as a map loaded after a fold's last step is filed a cycle after
        # the products are taken at the soonest (its header, its first beat, the filing)
        step_map = fired if follows else Const(1, 1)
        with m.If(step_map):
            m.d.sync += product_ends.eq(ends)
            for i in range(n):
                m.d.sync += [product_lane_of[i].lane.eq(lane_of[i][:lane_bits]),
                             product_lane_of[i].enable.eq(lane_of[i][7])]
            for j in range(lanes):
                index, level = select[j]
                m.d.sync += [product_select[j].index.eq(index[:index_bits]),
                             product_select[j].level.eq(level[:len(product_select[j].level)]),
                             product_select[j].enable.eq(level[7])]

        network_class = {"fan": ForwardingAdderNetwork, "seq": SegmentedSum, "art": AugmentedReductionTree}[self.rn]
        m.submodules.reduction = network = (network_class(n=n, lanes=lanes, reach=self.reach) if self.reach
                                            else network_class(n=n, lanes=lanes))
        # one register level between the multiplier blocks and the network, the step's markings beside it:
        # a block's output register into the first level's adder bounded a 16-multiplier design at 93.7 MHz
        # on the ECP5 (2.2 ns of logic, 8.5 ns of routing from the block's site), and a register in the fabric
        # lets the placer put the adders' inputs next to them (+1 cycle per tile's drain: `write_delay`)

        def staged(value, name, reset_less=True):
            held = Signal.like(value, name=name, reset_less=reset_less)
            m.d.sync += held.eq(value)
            return held
        m.d.comb += [network.valid.eq(staged(product_valid, "network_valid", reset_less=False)),
                     network.products.eq(staged(products, "network_products")),
                     network.ends.eq(staged(product_ends, "network_ends")),
                     network.select.eq(staged(product_select, "network_select")),
                     network.lane_of.eq(staged(product_lane_of, "network_lane_of"))]
        if self.rn == "art":
            product_nodes = Signal(data.ArrayLayout(8, n - 1), reset_less=True)
            with m.If(step_map):
                m.d.sync += product_nodes.eq(Cat(*node_cfg))
            m.d.comb += network.nodes.eq(staged(product_nodes, "network_nodes"))

        # step tags (accumulation address, first) travel alongside: a delay line from the fire cycle
        bank_bits = (self.acc_depth - 1).bit_length()
        tag_layout = data.StructLayout({"valid": 1, "first": 1, "addr": bank_bits + 1})
        tags = [Signal(tag_layout, name="tag0")]
        m.d.comb += [tags[0].valid.eq(fire), tags[0].first.eq(first),
                     tags[0].addr.eq(Cat(step[:bank_bits], bank))]
        for k in range(1, write_delay(n, dn_levels) + 1):
            tag = Signal(tag_layout, name=f"tag{k}")
            m.d.sync += tag.eq(tags[-1])
            tags.append(tag)
        # the engine's bank is still being written while a step of it is in flight
        m.d.comb += in_flight.eq(Cat(t.valid & (t.addr[bank_bits] == engine_bank) for t in tags[1:]).any())

        # ---- accumulation buffer, two banks: read a cycle before the network's output, the word registered
        # (nothing between the block RAM and that register: the read data comes 5.8 ns after the clock on
        # the ECP5), added (or not) and written a cycle later; the readout engine reads the other
        # bank through a port of its own ----
        # ``no_rw_check``: a word the step reads in the cycle it is written is taken from the last-write register,
        # never from the read port, and the readout reads only the bank no step writes, so no read's result on
        # a collision is ever used; without it Yosys builds a compare and a multiplexer after the block RAM on
        # every bit (docs/toolchain-notes.md), and that read path bounded the 16-multiplier design at 96.6 MHz
        m.submodules.acc = acc = Memory(shape=unsigned(LANE_WIDTH * lanes), depth=2 * self.acc_depth, init=[],
                                        attrs={"no_rw_check": 1})
        acc_wr, acc_rd, out_rd = acc.write_port(), acc.read_port(transparent_for=()), acc.read_port(transparent_for=())
        wd = write_delay(n, dn_levels)
        early_tag, read_tag, write_tag = tags[wd - 2], tags[wd - 1], tags[wd]
        sums = Signal(LANE_WIDTH * lanes, reset_less=True)
        # a step that writes the word in the cycle it is read (two cycles ahead: a fold of one one-beat step
        # followed by a bare STEPS header, no weights between) is not in the read data: the word written then
        # is kept and taken instead (the compiler always sends weights between folds; other streams may not)
        last_data = Signal(LANE_WIDTH * lanes, reset_less=True)
        updated = Signal(LANE_WIDTH * lanes)
        m.d.sync += last_data.eq(updated)
        # whether the word comes from that register is decided a cycle ahead (the write then against the read
        # coming): the compare in front of the word's select bounded a 16-multiplier design at 95.9 MHz
        bypass = Signal()
        m.d.sync += bypass.eq(write_tag.valid & (write_tag.addr == early_tag.addr))
        # the read word goes straight into a register of its own, every cycle, and the choice between it, the
        # last write and zero (a fold's first step) is made in front of the adder, from registered flags: the
        # block RAM through that choice into one register bounded the 16-multiplier design at 96.6 MHz
        # (5.8 ns from the clock to the read data, a LUT, two hops of routing)
        from_ram = Signal(LANE_WIDTH * lanes, reset_less=True)
        from_last = Signal(LANE_WIDTH * lanes, reset_less=True)
        take_zero, take_last = Signal(), Signal()
        m.d.sync += [from_ram.eq(acc_rd.data), from_last.eq(last_data),
                     take_zero.eq(read_tag.first), take_last.eq(bypass)]
        with m.If(read_tag.valid):
            m.d.sync += sums.eq(network.sums.as_value())
        held = Signal(LANE_WIDTH * lanes)
        m.d.comb += held.eq(Mux(take_zero, 0, Mux(take_last, from_last, from_ram)))
        m.d.comb += updated.eq(Cat((held[LANE_WIDTH * j:LANE_WIDTH * (j + 1)] + sums[LANE_WIDTH * j:LANE_WIDTH * (j + 1)])
                                   [:LANE_WIDTH] for j in range(lanes)))
        m.d.comb += [acc_wr.addr.eq(write_tag.addr), acc_wr.data.eq(updated), acc_wr.en.eq(write_tag.valid)]

        # ---- readout: issue (word, lane group) reads, one a cycle (credits keep the FIFO from overflowing);
        # each group of ``per_beat`` lanes goes through the requantizers with its own parameters, which
        # follow the data down their pipelines, and becomes one output beat ----
        depth = fifo_depth()
        issue = Signal()
        m.d.comb += issue.eq(engine_busy & ~in_flight & (issued != engine_count) & (outstanding < depth))
        m.d.comb += [acc_rd.addr.eq(early_tag.addr), out_rd.addr.eq(Cat(issued[:bank_bits], engine_bank))]
        read_valid, requant_valid = Signal(), Signal()
        m.d.sync += [read_valid.eq(issue), requant_valid.eq(read_valid)]
        # the group advances one a read and restarts at a word's end or a new tile; the readout keeps copies of
        # it two cycles behind, with the word (below), which follow these two events registered
        group_restart, word_restart = Signal(), Signal()
        m.d.sync += [group_restart.eq(fsm.ongoing("READOUT") & ~engine_busy), word_restart.eq(group_restart)]
        with m.If(issue):
            m.d.sync += group.eq(group + 1)
            with m.If(group + 1 == engine_beats):
                m.d.sync += [group.eq(0), issued.eq(issued + 1), group_restart.eq(1)]

        per_beat, groups = self.per_beat, self.groups
        # the word is registered as it leaves the block RAM (5.8 ns from the clock to its data on the ECP5), and
        # its lane group chosen a cycle later: the read data through the group choice into a requantizer bounded
        # a 16-multiplier design at 94.2 MHz (+1 cycle per tile's readout: `readout_delay`)
        word_read = Signal(LANE_WIDTH * lanes, reset_less=True)
        m.d.sync += word_read.eq(out_rd.data)
        padded_acc = Cat(word_read, Const(0, LANE_WIDTH * (groups * per_beat - lanes)))
        lane_bits = 8 * PARAM_BYTES_PER_LANE
        padded_params = Cat(param_active[:lane_bits * lanes], Const(0, lane_bits * (groups * per_beat - lanes)))

        def lane_group(name):
            """A copy of the lane group of the word in ``word_read`` (``group`` two cycles late), as a counter
            of its own.

            Each choice of a lane group below reads a copy of its own, next to it: one register chose every
            requantizer's word, bias and parameters (a fan-out of hundreds), and that net bounded a
            16-multiplier design at 93.2 MHz (76.6 with the bias choice registered as well). Copies that
            each count for themselves are not merged by synthesis, as copies of one register would be."""
            copy = Signal(range(groups), name=name)
            with m.If(word_restart):
                m.d.sync += copy.eq(0)
            with m.Elif(requant_valid):
                m.d.sync += copy.eq(copy + 1)
            return copy

        def choose(name, value, bits, offset, width):
            """Bits ``offset .. offset + width`` of lane group ``g`` of ``value`` (``bits`` a group), chosen
            by lane-group copies of their own, one per 32 bits."""
            if groups == 1:
                return value[offset:offset + width]
            chunks = []
            for start in range(offset, offset + width, 32):
                size = min(32, offset + width - start)
                words = Array(value[g * bits + start:g * bits + start + size] for g in range(groups))
                chunks.append(words[lane_group(f"{name}_group{start - offset}")])
            return Cat(*chunks)

        out_bytes = []
        for j in range(per_beat):
            # the rounding masks decoded a stage early: stage 12 holds one compare (it bounded a
            # 16-multiplier design at 78.2 MHz on the ECP5, the shift register into `round_up`)
            unit = requant.LaneRequantizer(follow_params=groups > 1, registered_masks=True,
                                           registered_shift=True)
            m.submodules[f"requant{j}"] = unit
            group_bits = lane_bits * per_beat
            lane = lane_bits * j

            def param(name, offset, width):
                return choose(f"requant{j}_{name}", padded_params, group_bits, lane + offset, width)
            shifts = param("shifts", 86, 10)
            # the requantizer adds the bias a cycle after it takes the accumulator: the lane group's bias is
            # chosen with the accumulator and registered, so the add starts from two registers
            bias = Signal(signed(32), name=f"bias{j}", reset_less=True)
            with m.If(requant_valid):
                m.d.sync += bias.eq(param("bias", 0, 32))
            m.d.comb += [unit.valid.eq(requant_valid),
                         unit.acc.eq(choose(f"requant{j}_acc", padded_acc, LANE_WIDTH * per_beat, LANE_WIDTH * j,
                                            LANE_WIDTH)),
                         unit.bias.eq(bias),
                         unit.multiplier.eq(param("multiplier", 32, 54)),
                         # left (double rounding) and the exponent (float) at bits 0.., right at bits 8..
                         unit.shifts.eq(Cat(shifts[:7], Const(0, 1), shifts[5:10])),
                         unit.float_mode.eq(cfg.requant_mode),
                         unit.zero_point.eq(cfg.output_zero_point), unit.act_min.eq(cfg.act_min),
                         unit.act_max.eq(cfg.act_max)]
            out_bytes.append(unit.value)
            ready = unit.out_valid

        m.submodules.out_fifo = fifo = SyncFIFO(width=8 * per_beat, depth=depth)
        m.d.comb += [fifo.w_data.eq(Cat(*out_bytes)), fifo.w_en.eq(ready)]
        # the sender: one FIFO entry is one output beat
        word = Signal(width, reset_less=True)
        word_valid, word_final = Signal(), Signal()
        sent = self.output.valid & self.output.ready
        m.d.comb += [self.output.valid.eq(word_valid), self.output.payload.data.eq(word),
                     self.output.payload.last.eq(word_final), self.done.eq(sent & word_final)]
        with m.If(sent):
            m.d.sync += word_valid.eq(0)
        m.d.comb += [pop.eq(fifo.r_rdy & (~word_valid | sent)), fifo.r_en.eq(pop)]
        m.d.sync += outstanding.eq(outstanding + issue - pop)
        final_item = (popped + 1 == engine_count) & (popped_group + 1 == engine_beats)
        with m.If(pop):
            m.d.sync += [word.eq(Cat(fifo.r_data, Const(0, width - 8 * per_beat))), word_valid.eq(1),
                         word_final.eq(engine_last & final_item), popped_group.eq(popped_group + 1)]
            with m.If(popped_group + 1 == engine_beats):
                m.d.sync += [popped_group.eq(0), popped.eq(popped + 1)]
            with m.If(final_item):
                m.d.sync += engine_busy.eq(0)

        with m.If(self.start):
            m.d.sync += [word_valid.eq(0), outstanding.eq(0), engine_busy.eq(0), bank.eq(0)]

        # the shell's counters read these a cycle late, from registers: `fire` (after the handshake) through
        # the shell's 64-bit MAC adder bounded a 16-multiplier design at 84.8 MHz. All three move together, and
        # the first running cycle (IDLE) and the last (DRAIN or IDLE) are neither busy nor waiting, so every
        # count over a job is what it was
        busy, macs, input_wait = Signal(), Signal(len(self.macs)), Signal()
        m.d.sync += [busy.eq(fire), macs.eq(Mux(fire, used_count, 0)),
                     input_wait.eq((fsm.ongoing("STEPS") | fsm.ongoing("LOAD") | fsm.ongoing("HEADER"))
                                   & ~self.input.valid)]
        m.d.comb += [self.busy.eq(busy), self.macs.eq(macs), self.input_wait.eq(input_wait)]
        return m
