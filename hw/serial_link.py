"""The shell behind a UART: a framed register and burst protocol instead of AXI4-Lite and two DMA channels.

:class:`SerialShellTop` wraps an :class:`~accelkit.hw.shell.AcceleratorShell`
for a board whose only host link is a serial port (the ULX3S's FT231X). The
host side is :class:`accelkit.driver.serial_device.SerialDevice`; the protocol
is stated once here (:data:`PROTOCOL`) and both sides follow it.

Host to board (little-endian fields):

* ``W addr:u16 data:u32``: an AXI4-Lite write of the shell; answered ``w``
  once the write response came back.
* ``R addr:u16``: an AXI4-Lite read; answered ``r data:u32``.
* ``S flags:u8 count:u16`` followed by ``count`` stream beats (``count`` times
  the beat's bytes, little-endian): beats for the shell's input stream; flag
  bit 0 puts TLAST on the last of them. ``count`` is at most the chunk size
  (:attr:`SerialShellTop.chunk_beats`, written to the build's ``ecp5-build.json``);
  the beats wait in a FIFO of that depth, and ``k`` answers when all of them have entered the
  shell. The host sends the next chunk only after the ``k`` of the previous
  one (a credit of one chunk), because a UART has no backpressure.
* ``X``: drop the beats still waiting in the FIFO (after an abort); answered ``x``.

Board to host: ``w``, ``r data:u32``, ``k``, ``x``, and every beat of the
shell's output stream as ``d`` (or ``D`` when TLAST is set) followed by the
beat's bytes, sent as soon as the shell presents it: output never waits for
a command, so a core that must emit results before taking more input cannot
deadlock the link. The host answers only what it asked for and files the
output beats into the receive buffers it queued.

The link has no checksum: a USB UART does not lose bytes, and a framing loss
shows on the host as an unexpected tag, which it reports.
"""

from amaranth import Module, Signal, Cat, Const, Mux, ResetInserter
from amaranth.lib import wiring, stream
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError
from .shell import AcceleratorShell
from .serial_protocol import PROTOCOL, DEFAULT_CHUNK_BEATS
from .uart import UartReceiver, UartTransmitter, check_divisor

__all__ = ["SerialShellTop", "PROTOCOL", "DEFAULT_CHUNK_BEATS", "MIN_BYTE_GAP"]

#: Fewest cycles between received bytes the parser handles (it decodes a command in the cycle after
#: its last byte); a UART's bytes are ten bit times apart.
MIN_BYTE_GAP = 4



class SerialShellTop(wiring.Component):
    """``shell`` with a UART on ``rx``/``tx`` at ``divisor`` clock cycles per bit.

    ``chunk_beats`` is the depth of the input FIFO, the largest burst the host
    may send before its credit comes back. ``synchronize`` adds the receive
    pin's synchronizer (off in simulation, where ``rx`` is driven on the clock).
    ``uart=False`` leaves the UART out and exposes its byte streams instead
    (``rx_bytes``: one byte a cycle when valid, no backpressure; ``tx_bytes``),
    so a simulation can exercise the protocol without ten bit times per byte;
    bytes must then come at least :data:`MIN_BYTE_GAP` cycles apart, as a UART's
    always do.
    """

    def __init__(self, shell: AcceleratorShell, *, divisor, chunk_beats=DEFAULT_CHUNK_BEATS, synchronize=True,
                 uart=True):
        if not isinstance(shell, AcceleratorShell):
            raise ParameterError(f"SerialShellTop wraps an AcceleratorShell, not {type(shell).__name__}")
        check_divisor(divisor)
        if isinstance(chunk_beats, bool) or not isinstance(chunk_beats, int) or not 1 <= chunk_beats <= 4096:
            raise ParameterError(f"chunk_beats must be an integer in 1..4096, not {chunk_beats!r}")
        self.shell = shell
        self.divisor = divisor
        self.chunk_beats = chunk_beats
        self.synchronize = synchronize
        self.beat_bytes = shell.data_width // 8
        self.uart = bool(uart)
        if self.uart:
            super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})
        else:
            super().__init__({"rx_bytes": In(stream.Signature(8, always_ready=True)),
                              "tx_bytes": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        shell = self.shell
        m.submodules.shell = shell
        if self.uart:
            m.submodules.receiver = receiver = UartReceiver(divisor=self.divisor, synchronize=self.synchronize)
            m.submodules.transmitter = transmitter = UartTransmitter(divisor=self.divisor)
            m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(transmitter.tx)]
            received, transmitting = receiver.output, transmitter.input
        else:
            received, transmitting = self.rx_bytes, self.tx_bytes
        width = shell.data_width
        clear = Signal()
        fifo = ResetInserter(clear)(SyncFIFOBuffered(width=width + 1, depth=self.chunk_beats))
        m.submodules.fifo = fifo

        byte = received.payload
        got = received.valid

        # -- command parser: always takes a byte (a UART cannot wait) --
        command = Signal(8)
        args = Signal(48)                       # up to six argument bytes, shifted in from the top
        needed = Signal(range(7))
        send_last = Signal()
        send_left = Signal(16)                  # beats of the chunk still to arrive
        beat = Signal(width)
        beat_left = Signal(range(self.beat_bytes + 1))
        credit_owed = Signal()                  # the chunk has arrived; answer once the FIFO is empty
        axi_address = Signal(16)
        axi_data = Signal(32)

        # -- answers waiting for the transmitter --
        answer_pending = Signal()
        answer = Signal(40)                     # tag and up to four bytes
        answer_bytes = Signal(range(6))
        credit_pending = Signal()
        cleared_pending = Signal()

        m.d.comb += [
            fifo.w_data.eq(Cat(Cat(beat[8:], byte) if width > 8 else byte,
                               send_last & (send_left == 1))),
            fifo.w_en.eq(0),
            shell.s_axis_tdata.eq(fifo.r_data[:width]),
            shell.s_axis_tlast.eq(fifo.r_data[width]),
            shell.s_axis_tvalid.eq(fifo.r_rdy),
            fifo.r_en.eq(shell.s_axis_tready),
        ]
        with m.If(credit_owed & ~fifo.r_rdy & (fifo.level == 0)):
            m.d.sync += [credit_owed.eq(0), credit_pending.eq(1)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(got):
                    m.d.sync += command.eq(byte)
                    with m.Switch(byte):
                        with m.Case(PROTOCOL["write"]):
                            m.d.sync += needed.eq(6)
                            m.next = "ARGS"
                        with m.Case(PROTOCOL["read"]):
                            m.d.sync += needed.eq(2)
                            m.next = "ARGS"
                        with m.Case(PROTOCOL["send"]):
                            m.d.sync += needed.eq(3)
                            m.next = "ARGS"
                        with m.Case(PROTOCOL["clear"]):
                            m.d.comb += clear.eq(1)
                            m.d.sync += [credit_owed.eq(0), credit_pending.eq(0), cleared_pending.eq(1)]
                        # Any other byte is ignored: the host sees no answer and reports it.
            with m.State("ARGS"):
                with m.If(got):
                    m.d.sync += [args.eq(Cat(args[8:], byte)), needed.eq(needed - 1)]
                    with m.If(needed == 1):
                        m.next = "DECODE"
            with m.State("DECODE"):
                # ``args`` holds the arguments in its top bytes, the first one lowest.
                with m.Switch(command):
                    with m.Case(PROTOCOL["write"]):
                        m.d.sync += [axi_address.eq(args[0:16]), axi_data.eq(args[16:48])]
                        m.next = "WRITE"
                    with m.Case(PROTOCOL["read"]):
                        m.d.sync += axi_address.eq(args[32:48])
                        m.next = "READ"
                    with m.Default():
                        m.d.sync += [send_last.eq(args[24]), send_left.eq(args[32:48]),
                                     beat_left.eq(self.beat_bytes)]
                        m.next = "BEATS"
            with m.State("WRITE"):
                m.d.comb += [shell.s_axi_awaddr.eq(axi_address), shell.s_axi_wdata.eq(axi_data),
                             shell.s_axi_wstrb.eq(0xF), shell.s_axi_awvalid.eq(1), shell.s_axi_wvalid.eq(1)]
                with m.If(shell.s_axi_awready & shell.s_axi_wready):
                    m.next = "WRITE_RESPONSE"
            with m.State("WRITE_RESPONSE"):
                m.d.comb += shell.s_axi_bready.eq(1)
                with m.If(shell.s_axi_bvalid):
                    m.d.sync += [answer_pending.eq(1), answer.eq(PROTOCOL["written"]), answer_bytes.eq(1)]
                    m.next = "IDLE"
            with m.State("READ"):
                m.d.comb += [shell.s_axi_araddr.eq(axi_address), shell.s_axi_arvalid.eq(1)]
                with m.If(shell.s_axi_arready):
                    m.next = "READ_DATA"
            with m.State("READ_DATA"):
                m.d.comb += shell.s_axi_rready.eq(1)
                with m.If(shell.s_axi_rvalid):
                    m.d.sync += [answer_pending.eq(1), answer.eq(Cat(Const(PROTOCOL["read_data"], 8),
                                                                     shell.s_axi_rdata)),
                                 answer_bytes.eq(5)]
                    m.next = "IDLE"
            with m.State("BEATS"):
                with m.If(send_left == 0):
                    m.next = "IDLE"
                with m.Elif(got):
                    m.d.sync += beat.eq(Cat(beat[8:], byte) if width > 8 else byte)
                    with m.If(beat_left == 1):
                        m.d.comb += fifo.w_en.eq(1)
                        m.d.sync += [beat_left.eq(self.beat_bytes), send_left.eq(send_left - 1)]
                        with m.If(send_left == 1):
                            m.d.sync += credit_owed.eq(1)
                            m.next = "IDLE"
                    with m.Else():
                        m.d.sync += beat_left.eq(beat_left - 1)

        # -- transmitter: one frame at a time; answers first, then output beats --
        frame = Signal(8 * (1 + max(4, self.beat_bytes)))
        frame_left = Signal(range(2 + max(4, self.beat_bytes)))
        m.d.comb += [transmitting.payload.eq(frame[:8]), transmitting.valid.eq(frame_left != 0),
                     shell.m_axis_tready.eq(0)]
        with m.If(transmitting.valid & transmitting.ready):
            m.d.sync += [frame.eq(frame[8:]), frame_left.eq(frame_left - 1)]
        with m.Elif(frame_left == 0):
            with m.If(answer_pending):
                m.d.sync += [frame.eq(answer), frame_left.eq(answer_bytes), answer_pending.eq(0)]
            with m.Elif(cleared_pending):
                m.d.sync += [frame.eq(PROTOCOL["cleared"]), frame_left.eq(1), cleared_pending.eq(0)]
            with m.Elif(credit_pending):
                m.d.sync += [frame.eq(PROTOCOL["credit"]), frame_left.eq(1), credit_pending.eq(0)]
            with m.Elif(shell.m_axis_tvalid):
                m.d.comb += shell.m_axis_tready.eq(1)
                tag = Mux(shell.m_axis_tlast, Const(PROTOCOL["last_beat"], 8), Const(PROTOCOL["beat"], 8))
                m.d.sync += [frame.eq(Cat(tag, shell.m_axis_tdata)), frame_left.eq(1 + self.beat_bytes)]
        return m
