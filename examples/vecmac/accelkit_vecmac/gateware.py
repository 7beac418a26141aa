"""The vector-MAC core: ``lanes`` int8 multipliers reducing into one int32 dot product.

Job protocol (one DMA transfer in, one out), for the int32 products
C[M x N] = A[M x K] . B[K x N], with ``V = ceil(K / lanes)`` words per vector:

* input stream: for each of the ``M`` rows, the row of A as ``V`` words, then
  for each of the ``N`` columns, the column of B as ``V`` words. A word is
  ``lanes`` int8 values (zero-padded past K), starts on a beat boundary and is
  zero-padded to whole beats.
* output stream: ``M * N`` beats, row-major, each carrying one int32 dot product
  in its low 32 bits; TLAST on the last one.

The row of A is kept in a small memory while the columns of B stream past it; each
B word meets the A word of the same index. The pipeline (memory read, registered
products, registered adder-tree sum, accumulate) never stalls: results enter a
short FIFO in front of the output stream, and the input is accepted only while the
FIFO has room for every result that could still be in flight. So the input stream
is taken at one word per cycle whenever it can deliver it, which is what makes the
cycle count a closed form (``driver.job_cycles``).
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory

from accelkit.errors import ParameterError
from accelkit.hw.registers import CONFIG_BASE, Register
from accelkit.hw.shell import CoreBase, word_beats
from accelkit.hw.words import WordGatherer

__all__ = ["VecMacCore", "VECMAC_REGISTERS", "PIPELINE_LATENCY"]

VECMAC_REGISTERS = (
    Register("K", CONFIG_BASE + 0x00, "rw", 16, doc="reduction depth, 1..k_max"),
    Register("N", CONFIG_BASE + 0x04, "rw", 16, doc="columns of B streamed past each row of A"),
    Register("M", CONFIG_BASE + 0x08, "rw", 16, doc="rows of A in this job"),
)

#: Cycles from accepting a column's last input beat to its result leaving on the output stream.
PIPELINE_LATENCY = 4
#: Results the output FIFO holds; the input waits while fewer than the in-flight maximum are free.
FIFO_DEPTH = 8
#: Results that can be in flight behind the FIFO's level: three pipeline stages and the word being accepted.
IN_FLIGHT = 4


def _check(name, value, minimum, maximum, power_of_two=False):
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ParameterError(f"{name} must be an integer in {minimum}..{maximum}, not {value!r}")
    if power_of_two and value & (value - 1):
        raise ParameterError(f"{name} must be a power of two, not {value}")


class VecMacCore(CoreBase):
    """The vector-MAC core; :class:`~accelkit.hw.shell.AcceleratorShell` wraps it.

    Keyword-only parameters: ``lanes`` multipliers (a power of two, 1..64), stream
    ``data_width`` in bits (32..1024, a multiple of 8: a result is one beat), and
    ``k_max`` (a power of two, at least ``lanes``), the deepest K the A memory holds.
    Raises :class:`~accelkit.errors.ParameterError`.
    """

    config_registers = VECMAC_REGISTERS

    def __init__(self, *, lanes=8, data_width=64, k_max=2048):
        _check("lanes", lanes, 1, 64, power_of_two=True)
        _check("data_width", data_width, 32, 1024)
        _check("k_max", k_max, lanes, 32768, power_of_two=True)
        self.lanes, self.k_max = lanes, k_max
        self.info = lanes
        super().__init__(data_width)

    def elaborate(self, platform):
        m = Module()
        L, W = self.lanes, self.data_width
        depth = self.k_max // L
        beats = word_beats(L, W)
        cfg = self.config

        words = Signal(range(depth + 1))          # words per vector: ceil(K / lanes)
        m.d.comb += words.eq((cfg.k + L - 1) >> (L.bit_length() - 1))

        m.submodules.a_mem = a_mem = Memory(shape=unsigned(8 * L), depth=depth, init=[])
        a_write, a_read = a_mem.write_port(), a_mem.read_port()
        m.submodules.results = results = SyncFIFO(width=33, depth=FIFO_DEPTH)

        # ---- loader: A words into the memory, B words into the pipeline ----
        m.submodules.gather = gather = WordGatherer(max_beats=beats, data_width=W)
        wiring.connect(m, wiring.flipped(self.input), gather.input)
        word = gather.word(beats, 8 * L)
        index = Signal(range(depth))              # word within the vector
        column, row = Signal(16), Signal(16)
        loading = Signal()
        issue = Signal()                          # a B word enters the pipeline this cycle
        vector_end = index + 1 == words
        m.d.comb += [gather.want.eq(beats), gather.words.ready.eq(1), gather.clear.eq(self.start),
                     gather.take.eq(loading & (results.level <= FIFO_DEPTH - IN_FLIGHT)),
                     self.input_wait.eq(loading & ~self.input.valid),
                     a_read.addr.eq(index)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "LOAD_A"
            with m.State("LOAD_A"):
                m.d.comb += [loading.eq(1), a_write.addr.eq(index), a_write.data.eq(word),
                             a_write.en.eq(gather.words.valid)]
                with m.If(gather.words.valid):
                    m.d.sync += index.eq(index + 1)
                    with m.If(vector_end):
                        m.d.sync += [index.eq(0), column.eq(0)]
                        m.next = "STREAM_B"
            with m.State("STREAM_B"):
                m.d.comb += [loading.eq(1), issue.eq(gather.words.valid)]
                with m.If(gather.words.valid):
                    m.d.sync += index.eq(index + 1)
                    with m.If(vector_end):
                        m.d.sync += [index.eq(0), column.eq(column + 1)]
                        with m.If(column + 1 == cfg.n):
                            m.d.sync += [column.eq(0), row.eq(row + 1)]
                            with m.If(row + 1 == cfg.m):
                                m.next = "IDLE"
                            with m.Else():
                                m.next = "LOAD_A"
        with m.If(self.start):
            m.d.sync += [index.eq(0), column.eq(0), row.eq(0)]

        # ---- pipeline: memory read | products | adder tree | accumulate ----
        # Stage 1: the A word is read (synchronous memory) while the B word waits in a register.
        s1_valid, s1_first, s1_last, s1_final = Signal(), Signal(), Signal(), Signal()
        s1_b = Signal(8 * L)
        m.d.sync += [s1_valid.eq(issue), s1_first.eq(index == 0), s1_last.eq(vector_end),
                     s1_final.eq(vector_end & (column + 1 == cfg.n) & (row + 1 == cfg.m)), s1_b.eq(word)]
        m.d.comb += [self.busy.eq(s1_valid), self.macs.eq(Mux(s1_valid, L, 0))]

        # Stage 2: every multiplier output is registered.
        s2_valid, s2_first, s2_last, s2_final = Signal(), Signal(), Signal(), Signal()
        products = [Signal(signed(16), name=f"product{i}") for i in range(L)]
        m.d.sync += [s2_valid.eq(s1_valid), s2_first.eq(s1_first), s2_last.eq(s1_last), s2_final.eq(s1_final)]
        for i, product in enumerate(products):
            a = a_read.data[8 * i:8 * i + 8].as_signed()
            b = s1_b[8 * i:8 * i + 8].as_signed()
            m.d.sync += product.eq(a * b)

        # Stage 3: a balanced adder tree, registered.
        s3_valid, s3_first, s3_last, s3_final = Signal(), Signal(), Signal(), Signal()
        total = Signal(signed(16 + (L - 1).bit_length()))
        m.d.sync += [s3_valid.eq(s2_valid), s3_first.eq(s2_first), s3_last.eq(s2_last), s3_final.eq(s2_final),
                     total.eq(_tree_sum(products))]

        # Stage 4: accumulate; a finished dot product goes to the FIFO (never full here, see above).
        accumulator = Signal(signed(32))
        running_sum = Signal(signed(32))
        m.d.comb += running_sum.eq(Mux(s3_first, 0, accumulator) + total)
        with m.If(s3_valid):
            m.d.sync += accumulator.eq(running_sum)
        m.d.comb += [results.w_data.eq(Cat(running_sum, s3_final)), results.w_en.eq(s3_valid & s3_last)]

        # ---- output: one result per beat ----
        sent = self.output.valid & self.output.ready
        m.d.comb += [self.output.valid.eq(results.r_rdy),
                     self.output.payload.data.eq(Cat(results.r_data[:32], Const(0, W - 32))),
                     self.output.payload.last.eq(results.r_data[32]),
                     results.r_en.eq(self.output.ready),
                     self.done.eq(sent & results.r_data[32])]
        return m


def _tree_sum(values):
    """The sum of ``values`` as a balanced tree of adders (depth log2 of their number)."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
    return values[0]
