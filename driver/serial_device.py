"""The device interface over a serial port: an accelerator behind :class:`~accelkit.hw.serial_link.SerialShellTop`.

:class:`SerialDevice` speaks the framed protocol of ``hw/serial_link.py`` on
any object with pyserial's ``read(n)``/``write(data)`` (a ``serial.Serial``
opened by :meth:`SerialDevice.open`, or the simulated port of
``sim/serial_sim.py``), so the accelerator drivers run on an ECP5 board
unchanged.

A job runs as the DMA channels run it on the simulators: the start write
first, then the queued send data in chunks of the link's FIFO depth (each
after the previous chunk's credit), with the output beats filed into the
queued receive buffers as they arrive, then ``STATUS`` is polled until done.

Cycle budgets: the shell counts every cycle of a job, including those spent
waiting for bytes at the UART's pace, so the budget a driver computes for a
DMA is extended by the cycles the link needs to carry the job's bytes (with a
margin of :data:`LINK_MARGIN`). Counters such as ``CYCLES`` and the stall
counts therefore measure the link, not the accelerator; outputs and ``MACS``
are the same as on any other device.
"""

import numpy as np

from ..errors import DeviceError
from ..hw.registers import ID_MAGIC
from ..hw.serial_protocol import PROTOCOL, DEFAULT_CHUNK_BEATS
from .device import Device, DmaTiming

__all__ = ["SerialDevice", "LINK_MARGIN", "BITS_PER_BYTE"]

#: A UART frame per byte: start bit, eight data bits, stop bit.
BITS_PER_BYTE = 10
#: Factor on the link's byte time in a job's cycle budget (answers, credits and polls come on top of the data).
LINK_MARGIN = 4
_STATUS_DONE = 1 << 1


class SerialDevice(Device):
    """An accelkit shell on a board reached through a UART.

    ``port`` has pyserial's ``read(n)`` (returning fewer bytes on its timeout)
    and ``write(data)``; ``register_map`` is the accelerator's declaration;
    ``divisor`` is the board's clock cycles per UART bit (clock / baud), used to
    extend cycle budgets by the link's time; ``chunk_beats`` the link's input
    FIFO depth; ``idle_reads`` how many empty reads in a row mean the board
    stopped answering. The ID register is checked and the data width read from INFO.
    """

    backend = "serial"

    def __init__(self, port, register_map, *, divisor, chunk_beats=DEFAULT_CHUNK_BEATS, idle_reads=3):
        self.port = port
        self.divisor = int(divisor)
        self.chunk_beats = int(chunk_beats)
        self.idle_reads = int(idle_reads)
        self.register_map = register_map
        self._receives = []        # (buffer, filled bytes) of the job's queued receives
        self._sends = []
        self._unclaimed = 0        # output bytes that arrived with no receive queued
        self._job = None
        identity = self.read_register(register_map["ID"].offset)
        if identity != ID_MAGIC:
            raise DeviceError(f"the board on {self._port_name()} answered ID={identity:#010x}, not an accelkit "
                              f"shell's {ID_MAGIC:#010x}")
        data_width = 8 * (register_map["INFO"].decode(self.read_register(register_map["INFO"].offset)) & 0xFF)
        super().__init__(register_map, data_width, DmaTiming())
        self._ctrl = register_map["CTRL"].offset

    @classmethod
    def open(cls, url, register_map, *, baud, divisor, timeout=1.0, **options):
        """Open ``url`` (a device path or any pyserial URL) at ``baud`` and the accelerator behind it."""
        try:
            import serial
        except ImportError:
            raise DeviceError("pyserial is not installed; `pip install pyserial` brings the serial link") from None
        try:
            port = serial.serial_for_url(url, baudrate=baud, timeout=timeout)
        except (serial.SerialException, ValueError) as error:
            raise DeviceError(f"cannot open serial port {url!r} at {baud} baud: {error}") from None
        return cls(port, register_map, divisor=divisor, **options)

    def _port_name(self):
        return getattr(self.port, "name", None) or getattr(self.port, "port", None) or "the serial port"

    # -- framing --
    def _read_exact(self, nbytes, waiting_for):
        data = bytearray()
        empty = 0
        while len(data) < nbytes:
            chunk = self.port.read(nbytes - len(data))
            if chunk:
                data += chunk
                empty = 0
                continue
            empty += 1
            if empty >= self.idle_reads:
                raise DeviceError(f"serial link: no answer from the board on {self._port_name()} while waiting "
                                  f"for {waiting_for} ({len(data)} of {nbytes} bytes came)")
        return bytes(data)

    def _frame(self, waiting_for):
        """Read one frame; output beats are filed away; returns (tag, payload) of any other frame."""
        while True:
            tag = self._read_exact(1, waiting_for)[0]
            if tag in (PROTOCOL["beat"], PROTOCOL["last_beat"]):
                self._file_beat(self._read_exact(self.beat_bytes, "an output beat"))
                continue
            if tag == PROTOCOL["read_data"]:
                return tag, self._read_exact(4, "a register value")
            if tag in (PROTOCOL["written"], PROTOCOL["credit"], PROTOCOL["cleared"]):
                return tag, b""
            raise DeviceError(f"serial link lost its framing: byte {tag:#04x} where a frame tag "
                              f"({', '.join(chr(PROTOCOL[k]) for k in ('written', 'read_data', 'credit', 'cleared', 'beat', 'last_beat'))}) "
                              f"was expected while waiting for {waiting_for}")

    def _expect(self, wanted, waiting_for):
        tag, payload = self._frame(waiting_for)
        if tag != PROTOCOL[wanted]:
            raise DeviceError(f"serial link: got frame {chr(tag)!r} while waiting for {waiting_for} "
                              f"({chr(PROTOCOL[wanted])!r})")
        return payload

    def _file_beat(self, raw):
        for index, (buffer, filled) in enumerate(self._receives):
            if filled < buffer.size:
                buffer[filled:filled + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
                self._receives[index] = (buffer, filled + len(raw))
                return
        self._unclaimed += len(raw)

    # -- primitives --
    def read_register(self, offset):
        self.port.write(bytes([PROTOCOL["read"]]) + int(offset).to_bytes(2, "little"))
        return int.from_bytes(self._expect("read_data", f"register {offset:#x}"), "little")

    def write_register(self, offset, word):
        self.port.write(bytes([PROTOCOL["write"]]) + int(offset).to_bytes(2, "little")
                        + (int(word) & 0xFFFF_FFFF).to_bytes(4, "little"))
        self._expect("written", f"the write of register {offset:#x}")
        if offset == self._ctrl:
            if word & 2:
                self._clear()
            elif word & 1:
                self._job = (b"".join(self._sends), self._receives)
                self._sends = []

    def _clear(self):
        """After an abort: drop the beats the link still holds and the job's queues."""
        self.port.write(bytes([PROTOCOL["clear"]]))
        while self._frame("the link to drop its input")[0] != PROTOCOL["cleared"]:
            pass
        self._sends, self._receives, self._job = [], [], None

    def dma_send(self, data):
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        self._check_beats(raw.size, "a DMA send")
        self._sends.append(raw.tobytes())

    def dma_receive(self, nbytes):
        self._check_beats(nbytes, "a DMA receive")
        buffer = np.zeros(nbytes, dtype=np.uint8)
        self._receives.append((buffer, 0))
        return buffer

    def link_cycles(self, nbytes):
        """Clock cycles the UART needs for ``nbytes`` bytes."""
        return nbytes * BITS_PER_BYTE * self.divisor

    def _run(self, cycle_budget):
        if self._job is None:
            raise DeviceError("wait() without a started job (write CTRL first)")
        data, receives = self._job
        expected = sum(buffer.size for buffer, _ in receives)
        beats = len(data) // self.beat_bytes
        chunk_bytes = self.chunk_beats * self.beat_bytes
        # Frames carry a tag byte per beat out, three bytes of header per chunk in.
        moved = len(data) + 4 * -(-beats // self.chunk_beats) + expected * (1 + self.beat_bytes) // self.beat_bytes
        budget = cycle_budget + LINK_MARGIN * self.link_cycles(moved + 64)
        for start in range(0, len(data), chunk_bytes):
            chunk = data[start:start + chunk_bytes]
            last = start + chunk_bytes >= len(data)
            self.port.write(bytes([PROTOCOL["send"], int(last)]) + (len(chunk) // self.beat_bytes).to_bytes(2, "little")
                            + chunk)
            while True:
                tag, _ = self._frame(f"the credit of input chunk {start // chunk_bytes}")
                if tag == PROTOCOL["credit"]:
                    break
                raise DeviceError(f"serial link: unexpected frame {chr(tag)!r} while sending input")
            if self._cycles_past(budget):
                return self._give_up(budget)
        status = self.register_map["STATUS"].offset
        while not self.read_register(status) & _STATUS_DONE:
            if self._cycles_past(budget):
                return self._give_up(budget)
        # The last output beats may still be on the wire after done.
        while sum(filled for _, filled in self._receives) < expected:
            self._frame("the job's last output beats")
        self._job = None
        if self._unclaimed:
            unclaimed, self._unclaimed = self._unclaimed, 0
            raise DeviceError(f"the board sent {unclaimed} output bytes beyond the {expected} the job queued")
        self._receives = []
        return True, self.read("CYCLES")

    def _cycles_past(self, budget):
        return self.read("CYCLES") >= budget

    def _give_up(self, budget):
        self._job = None
        return False, budget

    def close(self):
        close = getattr(self.port, "close", None)
        if close is not None:
            close()
