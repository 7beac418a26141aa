"""A serial port whose other end is the simulated gateware of a :class:`~accelkit.hw.serial_link.SerialShellTop`.

:class:`SimulatedSerialPort` has the part of pyserial's ``Serial`` that
:class:`~accelkit.driver.serial_device.SerialDevice` uses (``write``,
``read(n)`` returning fewer bytes on timeout, ``close``), and runs the whole
top in Amaranth's simulator: bytes written are driven onto ``rx`` bit by bit
at the UART's divisor, and ``tx`` is decoded bit by bit, so the UART, the
protocol bridge, the shell and the core are all the gateware a board runs.

``timeout_cycles`` is what pyserial's timeout is on a board: how long one
``read`` waits for bytes, in clock cycles.
"""

from collections import deque

from amaranth.sim import Simulator

__all__ = ["SimulatedSerialPort"]

_PERIOD = 1e-8


class SimulatedSerialPort:
    """The host end of a simulated UART to ``top`` (a :class:`SerialShellTop` built with ``synchronize=False``)."""

    name = "simulated serial port"

    def __init__(self, top, *, timeout_cycles=20_000, trace=None):
        self.top = top
        self.divisor = top.divisor
        self.timeout_cycles = int(timeout_cycles)
        self._to_board = deque()
        self._from_board = bytearray()
        self.bytes_written = self.bytes_read = 0
        self.sim = Simulator(top)
        self.sim.add_clock(_PERIOD)
        self.sim.add_testbench(self._drive_rx, background=True)
        self.sim.add_testbench(self._decode_tx, background=True)
        self._cycles = 0
        self._trace = None
        if trace is not None:
            self._trace = self.sim.write_vcd(str(trace))
            self._trace.__enter__()

    async def _drive_rx(self, ctx):
        top, divisor = self.top, self.divisor
        while True:
            if not self._to_board:
                await ctx.tick().repeat(divisor)
                continue
            byte = self._to_board.popleft()
            for bit in (0, *((byte >> i) & 1 for i in range(8)), 1):
                ctx.set(top.rx, bit)
                await ctx.tick().repeat(divisor)

    async def _decode_tx(self, ctx):
        top, divisor = self.top, self.divisor
        while True:
            await ctx.negedge(top.tx)
            # Sample each bit in its middle: half a bit after the start bit's edge, then one bit apart.
            await ctx.tick().repeat(divisor // 2)
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(divisor)
                byte |= ctx.get(top.tx) << i
            await ctx.tick().repeat(divisor)
            self._from_board.append(byte)

    @property
    def cycles(self):
        """Clock cycles simulated so far."""
        return self._cycles

    def _advance(self, cycles):
        self._cycles += cycles
        self.sim.run_until(self._cycles * _PERIOD)

    def write(self, data):
        self._to_board.extend(bytes(data))
        self.bytes_written += len(data)
        return len(data)

    def read(self, size=1):
        waited = 0
        step = 10 * self.divisor
        while len(self._from_board) < size and waited < self.timeout_cycles:
            self._advance(step)
            waited += step
        data = bytes(self._from_board[:size])
        del self._from_board[:size]
        self.bytes_read += len(data)
        return data

    def close(self):
        if self._trace is not None:
            self._trace.__exit__(None, None, None)
            self._trace = None
