"""A serial port whose other end is the simulated gateware of a :class:`~accelkit.hw.serial_link.SerialShellTop`.

:class:`SimulatedSerialPort` has the part of pyserial's ``Serial`` that
:class:`~accelkit.driver.serial_device.SerialDevice` uses (``write``,
``read(n)`` returning fewer bytes on timeout, ``close``), and runs the whole
top in Amaranth's simulator: bytes written are driven onto ``rx`` bit by bit
at the UART's divisor, and ``tx`` is decoded bit by bit, so the UART, the
protocol bridge, the shell and the core are all the gateware a board runs.

A top built with ``uart=False`` is driven byte by byte instead
(:data:`~accelkit.hw.serial_link.MIN_BYTE_GAP` cycles apart): the same link,
shell and core, without the UART's ten bit times per byte.

``timeout_cycles`` is what pyserial's timeout is on a board: how long one
``read`` waits for bytes, in clock cycles.
"""

import socket
import threading
from collections import deque

from amaranth.sim import Simulator

from ..driver.serial_device import BITS_PER_BYTE
from ..hw.serial_link import MIN_BYTE_GAP

__all__ = ["SimulatedSerialPort"]

_PERIOD = 1e-8


async def _ticks(ctx, count):
    # A plain loop: ``tick().repeat()`` is an async generator, which warns when the simulator is dropped mid-wait.
    for _ in range(count):
        await ctx.tick()


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
        if top.uart:
            self.sim.add_testbench(self._drive_rx, background=True)
            self.sim.add_testbench(self._decode_tx, background=True)
            self._byte_cycles = BITS_PER_BYTE * self.divisor
        else:
            self.sim.add_testbench(self._exchange_bytes, background=True)
            self._byte_cycles = MIN_BYTE_GAP
        self._cycles = 0
        self._trace = None
        if trace is not None:
            self._trace = self.sim.write_vcd(str(trace))
            self._trace.__enter__()

    async def _drive_rx(self, ctx):
        top, divisor = self.top, self.divisor
        while True:
            if not self._to_board:
                await _ticks(ctx, divisor)
                continue
            byte = self._to_board.popleft()
            for bit in (0, *((byte >> i) & 1 for i in range(8)), 1):
                ctx.set(top.rx, bit)
                await _ticks(ctx, divisor)

    async def _decode_tx(self, ctx):
        top, divisor = self.top, self.divisor
        while True:
            await ctx.negedge(top.tx)
            # Sample each bit in its middle: half a bit after the start bit's edge, then one bit apart.
            await _ticks(ctx, divisor // 2)
            byte = 0
            for i in range(8):
                await _ticks(ctx, divisor)
                byte |= ctx.get(top.tx) << i
            await _ticks(ctx, divisor)
            self._from_board.append(byte)

    async def _exchange_bytes(self, ctx):
        top = self.top
        ctx.set(top.tx_bytes.ready, 1)
        gap = 0
        while True:
            if gap == 0 and self._to_board:
                ctx.set(top.rx_bytes.payload, self._to_board.popleft())
                ctx.set(top.rx_bytes.valid, 1)
                gap = MIN_BYTE_GAP
            _, _, valid, payload = await ctx.tick().sample(top.tx_bytes.valid, top.tx_bytes.payload)
            ctx.set(top.rx_bytes.valid, 0)
            gap = max(gap - 1, 0)
            if valid:
                self._from_board.append(payload)

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
        step = 64
        while len(self._from_board) < size and waited < self.timeout_cycles:
            self._advance(step)
            waited += step
        data = bytes(self._from_board[:size])
        del self._from_board[:size]
        self.bytes_read += len(data)
        return data

    def read_available(self, cycles=256):
        """Run ``cycles`` clock cycles and return every byte the board sent meanwhile."""
        self._advance(cycles)
        data = bytes(self._from_board)
        self._from_board.clear()
        self.bytes_read += len(data)
        return data

    def serve_tcp(self, *, host="127.0.0.1", port=0):
        """Serve this port to one TCP client (pyserial's ``socket://HOST:PORT``) from a thread.

        Returns (the bound port, the thread); the thread ends when the client disconnects.
        """
        listener = socket.create_server((host, port))
        bound = listener.getsockname()[1]

        def serve():
            with listener:
                connection, _ = listener.accept()
            with connection:
                connection.setblocking(False)
                while True:
                    try:
                        data = connection.recv(65536)
                        if not data:
                            return
                        self.write(data)
                    except BlockingIOError:
                        pass
                    except OSError:
                        return
                    answer = self.read_available()
                    if answer:
                        connection.setblocking(True)
                        connection.sendall(answer)
                        connection.setblocking(False)

        thread = threading.Thread(target=serve, name="simulated-serial-port", daemon=True)
        thread.start()
        return bound, thread

    def close(self):
        if self._trace is not None:
            self._trace.__exit__(None, None, None)
            self._trace = None
