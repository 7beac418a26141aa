"""An 8N1 UART: a receiver and a transmitter with byte streams, for the serial host link.

Written here because no maintained Amaranth UART is installable from PyPI
(``amaranth-stdio`` is an empty placeholder there). Both sides count
``divisor`` clock cycles per bit (clock frequency / baud rate); the receiver
resynchronises on every start bit and samples each bit in its middle, so a
baud error of a few percent is tolerated.
"""

from amaranth import Module, Signal, Cat
from amaranth.lib import wiring, stream
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError

__all__ = ["UartReceiver", "UartTransmitter", "check_divisor", "MIN_DIVISOR"]

#: Fewest clock cycles per bit: the receiver needs a middle to sample at.
MIN_DIVISOR = 4


def check_divisor(divisor):
    """Raise :class:`ParameterError` unless ``divisor`` (clock cycles per bit) is usable."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or not MIN_DIVISOR <= divisor <= 1 << 20:
        raise ParameterError(f"UART divisor (clock cycles per bit) must be an integer in {MIN_DIVISOR}..{1 << 20}, "
                             f"not {divisor!r}")


class UartReceiver(wiring.Component):
    """Turns the ``rx`` line into a stream of bytes (``valid`` for one cycle per byte, no backpressure).

    ``synchronize`` puts a two-flop synchronizer on ``rx`` (the pin is asynchronous to the clock);
    a byte whose stop bit is not high is dropped and counted in ``framing_errors``.
    """

    def __init__(self, *, divisor, synchronize=True):
        check_divisor(divisor)
        self.divisor = divisor
        self.synchronize = synchronize
        super().__init__({"rx": In(1, init=1), "output": Out(stream.Signature(8, always_ready=True)),
                          "framing_errors": Out(16)})

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        if self.synchronize:
            m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        else:
            m.d.comb += line.eq(self.rx)
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(8)
        count = Signal(range(9))
        m.d.sync += self.output.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    # First sample lands in the middle of bit 0: one and a half bits after the edge.
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), count.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(count == 8):
                    with m.If(line):
                        m.d.sync += [self.output.payload.eq(bits), self.output.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += [bits.eq(Cat(bits[1:], line)), count.eq(count + 1), timer.eq(self.divisor - 1)]
            with m.State("BREAK"):
                # A low stop bit: wait for the line to return high before looking for a start bit.
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTransmitter(wiring.Component):
    """Sends a stream of bytes on ``tx`` (one start bit, eight data bits LSB first, one stop bit)."""

    def __init__(self, *, divisor):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__({"tx": Out(1, init=1), "input": In(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)      # stop bit, data, start bit: shifted out from bit 0
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(frame[0]), self.input.ready.eq(left == 0)]
        with m.If(self.input.valid & self.input.ready):
            m.d.sync += [frame.eq(Cat(0, self.input.payload, 1)), left.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), left.eq(left - 1), timer.eq(self.divisor - 1)]
        return m
