"""The accelerator shell: the contract between an accelerator core and a PYNQ-style system.

The exported top has Vivado-inferable ports: an AXI4-Lite slave ``s_axi_*`` for
registers, an AXI4-Stream slave ``s_axis_*`` fed by a DMA memory-to-stream
channel, an AXI4-Stream master ``m_axis_*`` drained by a stream-to-memory
channel, and ``irq`` (``ap_ctrl_hs`` style: GIE, IER, ISR).

A core is a :class:`amaranth.lib.wiring.Component` with the signature made by
:func:`core_signature`; the shell adds the register block and the hardware
performance counters, so every accelerator reports cycles the same way.

Control recovers from a job that goes wrong: CTRL's abort bit soft-resets the
core and its streams; configuration registers are held from start to done (the
host may program the next job during this one); IN_BEATS states the job's input
length and the shell checks TLAST against it, ending the job with an error bit
in STATUS on a short or long stream and dropping the rest of a long transfer
instead of passing it to the next job; writes honour WSTRB; the interrupt
follows Vivado HLS's ``ap_ctrl_hs`` (GIE, IER, ISR with acknowledge).
"""

from amaranth import Module, Signal, Cat, Const, ResetInserter, Mux
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError
from .constants import word_beats
from .registers import SHELL_REGISTERS, RegisterMap, ID_MAGIC

__all__ = ["beat_layout", "core_signature", "CoreBase", "AcceleratorShell", "check_data_width", "word_beats"]


def check_data_width(data_width):
    if not isinstance(data_width, int) or data_width < 8 or data_width % 8 or data_width > 1024:
        raise ParameterError(f"data width must be a multiple of 8 bits between 8 and 1024, not {data_width!r}")


def beat_layout(data_width):
    """Payload of one stream beat: ``data`` plus ``last`` (AXI4-Stream TLAST)."""
    return data.StructLayout({"data": data_width, "last": 1})


def _fields_layout(registers, default_name):
    fields = {reg.name.lower(): (data.signed(reg.width) if reg.signed else data.unsigned(reg.width))
              for reg in registers}
    return data.StructLayout(fields or {default_name: 1})


def core_signature(data_width, config_registers=(), status_registers=()):
    """Signature every accelerator core implements.

    ``start`` pulses for one cycle when the host writes CTRL; the core raises
    ``done`` (for at least one cycle) when its job is complete, including its
    last output beat. ``busy`` marks cycles where the array did useful work,
    ``input_wait`` cycles where it is idle because the data it needs next has
    not arrived yet (it is still streaming in), and ``macs`` how many
    multiply-accumulates it issued that cycle; they feed the shell's counters. ``config`` carries the core's read-write registers and
    ``status`` its read-only ones, in declaration order.
    """
    return wiring.Signature({
        "start": In(1),
        "done": Out(1),
        "busy": Out(1),
        "input_wait": Out(1),
        "macs": Out(32),
        "config": In(_fields_layout(config_registers, "unused")),
        "status": Out(_fields_layout(status_registers, "unused")),
        "input": In(stream.Signature(beat_layout(data_width))),
        "output": Out(stream.Signature(beat_layout(data_width))),
    })


class CoreBase(wiring.Component):
    """Base of accelerator cores: declares registers and builds the matching signature.

    Subclasses set ``config_registers``/``status_registers`` (tuples of
    :class:`Register` with offsets from ``CONFIG_BASE``) before calling
    ``super().__init__(data_width)``.
    """

    config_registers = ()
    status_registers = ()
    info = 0  # accelerator-defined bits 8-31 of the INFO register

    def __init__(self, data_width):
        check_data_width(data_width)
        self.data_width = data_width
        super().__init__(core_signature(data_width, self.config_registers, self.status_registers))

    @classmethod
    def register_map(cls) -> RegisterMap:
        return SHELL_REGISTERS.extend(*cls.config_registers, *cls.status_registers)


class AcceleratorShell(wiring.Component):
    """Wraps a core with the AXI4-Lite register block, stream ports and counters.

    Its ports are flat and named as Vivado expects, so ``verilog.convert(shell,
    name=...)`` gives a top that packages as an IP without a wrapper.
    """

    def __init__(self, core: CoreBase):
        self.core = core
        self.data_width = core.data_width
        self.register_map = core.register_map()
        self.address_width = max(self.register_map.address_width, 8)
        width = self.data_width
        super().__init__({
            "s_axi_awaddr": In(self.address_width), "s_axi_awvalid": In(1), "s_axi_awready": Out(1),
            "s_axi_wdata": In(32), "s_axi_wstrb": In(4), "s_axi_wvalid": In(1), "s_axi_wready": Out(1),
            "s_axi_bresp": Out(2), "s_axi_bvalid": Out(1), "s_axi_bready": In(1),
            "s_axi_araddr": In(self.address_width), "s_axi_arvalid": In(1), "s_axi_arready": Out(1),
            "s_axi_rdata": Out(32), "s_axi_rresp": Out(2), "s_axi_rvalid": Out(1), "s_axi_rready": In(1),
            "s_axis_tdata": In(width), "s_axis_tvalid": In(1), "s_axis_tready": Out(1), "s_axis_tlast": In(1),
            "m_axis_tdata": Out(width), "m_axis_tvalid": Out(1), "m_axis_tready": In(1), "m_axis_tlast": Out(1),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        core = self.core
        # Abort and a stream error reset the core (not its memories) through a
        # registered pulse, so the reset net starts at one flop.
        soft_reset = Signal()
        m.submodules.core = ResetInserter(soft_reset)(core)
        regs = self.register_map

        running = Signal()
        done = Signal()
        input_short, input_long = Signal(), Signal()
        interrupt_status = Signal()
        cycles, busy_cycles = Signal(32), Signal(32)
        in_stall, out_stall = Signal(32), Signal(32)
        macs = Signal(64)
        storage = {reg.name: Signal(reg.width, name=f"reg_{reg.name.lower()}")
                   for reg in (*(r for r in regs if r.name in ("IN_BEATS", "GIE", "IER")), *core.config_registers)}
        readable = {
            "STATUS": Cat(running, done, input_short, input_long), "ID": Const(ID_MAGIC, 32),
            "INFO": Const((self.data_width // 8) | (core.info << 8), 32),
            "CYCLES": cycles, "BUSY_CYCLES": busy_cycles,
            "IN_STALL_CYCLES": in_stall, "OUT_STALL_CYCLES": out_stall,
            "MACS_LO": macs[:32], "MACS_HI": macs[32:], "ISR": interrupt_status,
            **storage,
        }
        for reg in core.status_registers:
            readable[reg.name] = getattr(core.status, reg.name.lower())

        # AXI4-Lite slave, one transaction of each kind at a time. A write is
        # accepted when address and data are both present, which keeps the
        # "start" edge well defined for the simulators' DMA arming rule.
        start, abort = Signal(), Signal()
        acknowledge = Signal()
        write_accept = Signal()
        m.d.comb += [
            write_accept.eq(self.s_axi_awvalid & self.s_axi_wvalid & ~self.s_axi_bvalid),
            self.s_axi_awready.eq(write_accept),
            self.s_axi_wready.eq(write_accept),
            self.s_axi_bresp.eq(0),
            self.s_axi_rresp.eq(0),
        ]
        with m.If(self.s_axi_bvalid & self.s_axi_bready):
            m.d.sync += self.s_axi_bvalid.eq(0)
        with m.If(write_accept):
            m.d.sync += self.s_axi_bvalid.eq(1)
            low_byte = self.s_axi_wdata[:8] & self.s_axi_wstrb[0].replicate(8)
            with m.Switch(self.s_axi_awaddr):
                with m.Case(regs["CTRL"].offset):
                    m.d.comb += [start.eq(low_byte[0] & ~running), abort.eq(low_byte[1])]
                with m.Case(regs["ISR"].offset):
                    m.d.comb += acknowledge.eq(low_byte[0])
                for name, bits in storage.items():
                    with m.Case(regs[name].offset):
                        # Byte lanes without their WSTRB bit keep their value.
                        for lane in range(0, len(bits), 8):
                            with m.If(self.s_axi_wstrb[lane // 8]):
                                m.d.sync += bits[lane:lane + 8].eq(self.s_axi_wdata[lane:lane + 8])

        m.d.comb += self.s_axi_arready.eq(~self.s_axi_rvalid)
        with m.If(self.s_axi_rvalid & self.s_axi_rready):
            m.d.sync += self.s_axi_rvalid.eq(0)
        with m.If(self.s_axi_arvalid & self.s_axi_arready):
            m.d.sync += [self.s_axi_rvalid.eq(1), self.s_axi_rdata.eq(0)]
            with m.Switch(self.s_axi_araddr):
                for name, value in readable.items():
                    with m.Case(regs[name].offset):
                        m.d.sync += self.s_axi_rdata.eq(value)

        # Configuration is copied while no job runs and held while one does, so the
        # host may program the next job during this one. The core sees flops only:
        # a start-cycle bypass (the written value in the cycle of the start write)
        # put the AXI write decode in front of every configuration-dependent path.
        # A write reaches the copy two cycles after it is accepted, and the CTRL
        # write that starts a job is accepted two cycles after the previous write
        # at the earliest (one write at a time, with its B handshake between).
        # The latch enable is a register of its own (not running's output, which fans out
        # to the whole control path): ``config_open`` always equals ``~running``.
        config_open = Signal(init=1)
        for reg in core.config_registers:
            field = getattr(core.config, reg.name.lower())
            latched = Signal(reg.width, name=f"job_{reg.name.lower()}")
            with m.If(config_open):
                m.d.sync += latched.eq(storage[reg.name])
            m.d.comb += field.eq(latched)

        # Input stream check: the job takes IN_BEATS beats and TLAST must come on
        # the last one. Beats past IN_BEATS never reach the core; after an error
        # the rest of the transfer (up to its TLAST) is drained and dropped, so
        # it cannot become the next job's data. Flags are registered so that
        # tready depends on flops only.
        checked = Signal()                    # IN_BEATS was not 0 at start
        remaining = Signal(32)                # beats still expected
        open_ = Signal()                      # remaining != 0
        final = Signal()                      # remaining == 1: the next beat must carry TLAST
        draining = Signal()
        # ``taking`` (the core may take beats) is ``running & (open_ | ~checked) & ~soft_reset``,
        # held in a register of its own computed from those registers' next values, so the
        # stream handshake into the core starts at one flop.
        taking = Signal()
        beat = self.s_axis_tvalid & self.s_axis_tready
        m.d.comb += [
            core.input.payload.data.eq(self.s_axis_tdata),
            core.input.payload.last.eq(self.s_axis_tlast),
            core.input.valid.eq(self.s_axis_tvalid & taking),
            self.s_axis_tready.eq((core.input.ready & taking) | draining),
            self.m_axis_tdata.eq(core.output.payload.data),
            self.m_axis_tlast.eq(core.output.payload.last),
            self.m_axis_tvalid.eq(core.output.valid & ~soft_reset),
            core.output.ready.eq(self.m_axis_tready & ~soft_reset),
        ]
        short = Signal()
        long_ = Signal()
        left_over = Signal()
        m.d.comb += [
            short.eq(beat & taking & checked & self.s_axis_tlast & ~final),
            long_.eq(beat & taking & checked & ~self.s_axis_tlast & final),
            left_over.eq(running & core.done & checked & open_),
        ]
        with m.If(beat & taking & checked):
            m.d.sync += [remaining.eq(remaining - 1), open_.eq(~final), final.eq(remaining == 2)]
        with m.If(draining & beat & self.s_axis_tlast):
            m.d.sync += draining.eq(0)

        # Counters cover the cycles after the start write up to and including
        # the cycle the core raises done.
        m.d.comb += [
            core.start.eq(start),
            self.irq.eq(storage["GIE"][0] & storage["IER"][0] & interrupt_status),
        ]
        m.d.sync += soft_reset.eq(0)
        with m.If(acknowledge):
            m.d.sync += interrupt_status.eq(0)
        in_beats = storage["IN_BEATS"]
        with m.If(start):
            m.d.sync += [running.eq(1), done.eq(0), input_short.eq(0), input_long.eq(0), draining.eq(0),
                         cycles.eq(0), busy_cycles.eq(0), in_stall.eq(0), out_stall.eq(0), macs.eq(0),
                         checked.eq(in_beats != 0), remaining.eq(in_beats), open_.eq(in_beats != 0),
                         final.eq(in_beats == 1)]
        with m.Elif(running):
            m.d.sync += [
                cycles.eq(cycles + 1),
                busy_cycles.eq(busy_cycles + core.busy),
                in_stall.eq(in_stall + (~core.busy & core.input_wait)),
                out_stall.eq(out_stall + (core.output.valid & ~core.output.ready)),
                macs.eq(macs + core.macs),
            ]
            with m.If(short | long_ | left_over):
                # The job ends in error: done and the interrupt tell the host, the core starts afresh.
                m.d.sync += [running.eq(0), done.eq(1), interrupt_status.eq(1), soft_reset.eq(1),
                             input_short.eq(short), input_long.eq(long_ | left_over),
                             draining.eq(long_ | left_over)]
            with m.Elif(core.done):
                m.d.sync += [running.eq(0), done.eq(1), interrupt_status.eq(1)]
        with m.If(abort):
            m.d.sync += [running.eq(0), done.eq(0), draining.eq(0), soft_reset.eq(1)]

        # The next values of running, soft_reset, checked and open_, as the updates above set them.
        failing = running & (short | long_ | left_over)
        running_next = ~abort & (start | (running & ~failing & ~core.done))
        soft_reset_next = abort | failing
        checked_next = Mux(start, in_beats != 0, checked)
        open_next = Mux(start, in_beats != 0, Mux(beat & taking & checked, ~final, open_))
        m.d.sync += [taking.eq(running_next & (open_next | ~checked_next) & ~soft_reset_next),
                     config_open.eq(~running_next)]
        return m
