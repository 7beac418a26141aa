"""The accelerator shell: the contract between an accelerator core and a PYNQ-style system.

The exported top has Vivado-inferable ports: an AXI4-Lite slave ``s_axi_*`` for
registers, an AXI4-Stream slave ``s_axis_*`` fed by a DMA memory-to-stream
channel, an AXI4-Stream master ``m_axis_*`` drained by a stream-to-memory
channel, and ``irq`` (high while ``done``).

A core is a :class:`amaranth.lib.wiring.Component` with the signature made by
:func:`core_signature`; the shell adds the register block and the hardware
performance counters, so every accelerator reports cycles the same way.
"""

from amaranth import Module, Signal, Cat, Const
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError
from .registers import SHELL_REGISTERS, RegisterMap, ID_MAGIC

__all__ = ["beat_layout", "core_signature", "CoreBase", "AcceleratorShell", "check_data_width", "word_beats"]


def check_data_width(data_width):
    if not isinstance(data_width, int) or data_width < 8 or data_width % 8 or data_width > 1024:
        raise ParameterError(f"data width must be a multiple of 8 bits between 8 and 1024, not {data_width!r}")


def word_beats(nbytes, data_width):
    """Beats one word of ``nbytes`` bytes occupies on a ``data_width``-bit stream (words start on a beat)."""
    return -(-nbytes // (data_width // 8))


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
        m.submodules.core = core = self.core

        # Streams: the flat AXI4-Stream ports are the core's lib.stream ports.
        m.d.comb += [
            core.input.payload.data.eq(self.s_axis_tdata),
            core.input.payload.last.eq(self.s_axis_tlast),
            core.input.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(core.input.ready),
            self.m_axis_tdata.eq(core.output.payload.data),
            self.m_axis_tlast.eq(core.output.payload.last),
            self.m_axis_tvalid.eq(core.output.valid),
            core.output.ready.eq(self.m_axis_tready),
        ]

        running = Signal()
        done = Signal()
        cycles, busy_cycles = Signal(32), Signal(32)
        in_stall, out_stall = Signal(32), Signal(32)
        macs = Signal(64)
        readable = {
            "STATUS": Cat(running, done), "ID": Const(ID_MAGIC, 32),
            "INFO": Const((self.data_width // 8) | (core.info << 8), 32),
            "CYCLES": cycles, "BUSY_CYCLES": busy_cycles,
            "IN_STALL_CYCLES": in_stall, "OUT_STALL_CYCLES": out_stall,
            "MACS_LO": macs[:32], "MACS_HI": macs[32:],
        }
        writable = {}
        for reg in core.config_registers:
            field = getattr(core.config, reg.name.lower())
            storage = Signal(field.shape(), name=f"reg_{reg.name.lower()}")
            m.d.comb += field.eq(storage)
            readable[reg.name] = storage
            writable[reg.name] = storage
        for reg in core.status_registers:
            readable[reg.name] = getattr(core.status, reg.name.lower())

        # AXI4-Lite slave, one transaction of each kind at a time. A write is
        # accepted when address and data are both present, which keeps the
        # "start" edge well defined for the simulators' DMA arming rule.
        start = Signal()
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
            with m.Switch(self.s_axi_awaddr):
                with m.Case(self.register_map["CTRL"].offset):
                    m.d.comb += start.eq(self.s_axi_wdata[0] & ~running)
                for name, storage in writable.items():
                    with m.Case(self.register_map[name].offset):
                        m.d.sync += storage.eq(self.s_axi_wdata[:len(storage)])

        m.d.comb += self.s_axi_arready.eq(~self.s_axi_rvalid)
        with m.If(self.s_axi_rvalid & self.s_axi_rready):
            m.d.sync += self.s_axi_rvalid.eq(0)
        with m.If(self.s_axi_arvalid & self.s_axi_arready):
            m.d.sync += [self.s_axi_rvalid.eq(1), self.s_axi_rdata.eq(0)]
            with m.Switch(self.s_axi_araddr):
                for name, value in readable.items():
                    with m.Case(self.register_map[name].offset):
                        m.d.sync += self.s_axi_rdata.eq(value)

        # Counters cover the cycles after the start write up to and including
        # the cycle the core raises done.
        m.d.comb += [core.start.eq(start), self.irq.eq(done)]
        with m.If(start):
            m.d.sync += [running.eq(1), done.eq(0), cycles.eq(0), busy_cycles.eq(0),
                         in_stall.eq(0), out_stall.eq(0), macs.eq(0)]
        with m.Elif(running):
            m.d.sync += [
                cycles.eq(cycles + 1),
                busy_cycles.eq(busy_cycles + core.busy),
                in_stall.eq(in_stall + (~core.busy & core.input_wait)),
                out_stall.eq(out_stall + (core.output.valid & ~core.output.ready)),
                macs.eq(macs + core.macs),
            ]
            with m.If(core.done):
                m.d.sync += [running.eq(0), done.eq(1)]
        return m
