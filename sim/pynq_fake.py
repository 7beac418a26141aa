"""A fake ``pynq.Device`` whose register and AXI DMA accesses drive an RTL simulation.

PYNQ's own tests replace the board by a ``pynq.Device`` subclass; this one
puts a simulator device (normally the native Verilator harness) behind it, so
PYNQ's unmodified ``Overlay``, ``MMIO``/``DefaultIP``, ``allocate`` and AXI DMA
driver run the same driver code a board runs. The address map comes from the
caller (the export's block design).

What it models:

* register reads and writes in the accelerator's window go to the simulated
  shell's AXI4-Lite port, one transaction each;
* the AXI DMA's simple-mode registers (per channel DMACR, DMASR, address,
  LENGTH, at PG021's offsets): writing a channel's LENGTH hands the buffer's
  bytes to the simulated memory-to-stream channel, or queues a receive into a
  buffer that is copied into the destination when the job ends;
* memory from :meth:`allocate`: ``pynq.PynqBuffer`` objects at made-up physical
  addresses, found again by address when the DMA is programmed.

Time: the simulation advances only when the host polls, i.e. reads the
accelerator's ``STATUS`` register or the status of a DMA channel with a
transfer in flight; it then runs until the accelerator's interrupt (or
``chunk_cycles``). A board runs concurrently with the host; here the host
sees the job end at its first poll, which changes no data.

Not modelled: DMA errors, interrupts, partial S2MM transfers (a transfer reports
the length it was given; the simulator's harness does not report TLAST).

The accelerator's side of every access is recorded by ``driver/trace.py``'s
:class:`~accelkit.driver.trace.RecordingDevice` around the simulator: its
register reads and writes, the bytes of every DMA transfer and every job, in
the trace format ``accelkit replay`` and ``accelkit-board replay`` play
(:attr:`trace`). The DMA engine's own registers are PYNQ's business, not the
accelerator's, and are not in it.
"""

from pathlib import Path

import numpy as np

from ..driver.trace import RecordingDevice
from ..errors import DeviceError

__all__ = ["simulated_pynq_device", "DMA_REGISTERS"]

#: AXI DMA simple-mode register offsets (PG021): channel base, then offsets within a channel.
DMA_REGISTERS = {"MM2S": 0x00, "S2MM": 0x30, "DMACR": 0x00, "DMASR": 0x04, "ADDRESS": 0x18,
                 "ADDRESS_MSB": 0x1C, "LENGTH": 0x28}
_HALTED, _IDLE, _IOC = 0x1, 0x2, 0x1000
_MEMORY_BASE = 0x1000_0000
_PAGE = 4096


class _Channel:
    def __init__(self, name):
        self.name = name
        self.control = 0
        self.address = 0
        self.length = 0
        self.in_flight = False
        self.interrupt = False
        self.receive = None     # (simulator buffer, destination address) of an S2MM transfer

    def status(self):
        running = self.control & 1
        return (0 if running else _HALTED) | (0 if self.in_flight or not running else _IDLE) | \
            (_IOC if self.interrupt else 0)


_CLASS = None


def _device_class():
    # Built on first use, so this module imports without pynq.
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import pynq
    from pynq.buffer import PynqBuffer
    from pynqmetadata.frontends import Metadata
    from pynqmetadata.views.runtime import RuntimeMetadataParser

    class SimulatedPynqDevice(pynq.Device):
        """A pynq.Device backed by a simulator device (see the module docstring)."""

        def __init__(self, simulator, *, accel_base, dma_base, window=0x1_0000, chunk_cycles=50_000_000,
                     record=True):
            super().__init__("accelkit-simulated")
            self.name = "accelkit-simulated"
            self.capabilities = {"REGISTER_RW": True}
            #: the simulator, behind a RecordingDevice when ``record`` (then :attr:`trace` is its trace)
            self.simulator = RecordingDevice(simulator) if record else simulator
            self.accel_base, self.dma_base, self.window = accel_base, dma_base, window
            self.chunk_cycles = chunk_cycles
            self._status = simulator.register_map["STATUS"].offset
            self._ctrl = simulator.register_map["CTRL"].offset
            self._channels = {"MM2S": _Channel("MM2S"), "S2MM": _Channel("S2MM")}
            self._buffers = {}
            self._next_address = _MEMORY_BASE
            self._job_running = False
            self.jobs = 0

        @property
        def trace(self):
            """The accelerator's transactions so far (a :class:`~accelkit.driver.trace.DeviceTrace`)."""
            if not isinstance(self.simulator, RecordingDevice):
                raise DeviceError("this simulated PYNQ device was opened with record=False")
            return self.simulator.trace

        # -- metadata: the .hwh beside the bitstream (synthetic in tests) --
        def get_bitfile_metadata(self, bitfile_name, partial=False):
            hwh = Path(bitfile_name).with_suffix(".hwh")
            if not hwh.exists():
                raise DeviceError(f"no hardware handoff {hwh} beside {bitfile_name}")
            return RuntimeMetadataParser(Metadata(input=hwh))

        def download(self, bitstream, parser=None):
            if isinstance(self.simulator, RecordingDevice):
                self.trace.device["bitstream"] = str(getattr(bitstream, "bitfile_name", bitstream))

        # -- memory --
        def allocate(self, shape, dtype, **kwargs):
            buffer = PynqBuffer(shape, dtype, device=self, device_address=self._next_address, coherent=False)
            self._buffers[self._next_address] = buffer
            self._next_address += -(-buffer.nbytes // _PAGE) * _PAGE
            return buffer

        def flush(self, bo, offset, ptr, size):
            pass    # host memory is the device memory here; a board flushes its caches

        def invalidate(self, bo, offset, ptr, size):
            pass

        def _memory(self, address, nbytes):
            for base, buffer in self._buffers.items():
                if base <= address and address + nbytes <= base + buffer.nbytes:
                    return buffer.view(np.uint8).reshape(-1)[address - base:address - base + nbytes]
            raise DeviceError(f"DMA access to {nbytes} bytes at {address:#x}, outside every buffer from allocate()")

        # -- registers --
        def read_registers(self, address, length):
            words = [self._read_word(address + 4 * i) for i in range((length + 3) // 4)]
            return b"".join(word.to_bytes(4, "little") for word in words)[:length]

        def write_registers(self, address, data):
            data = bytes(data)
            for i in range(0, len(data), 4):
                self._write_word(address + i, int.from_bytes(data[i:i + 4].ljust(4, b"\0"), "little"))

        def _where(self, address):
            if self.accel_base <= address < self.accel_base + self.window:
                return "accelerator", address - self.accel_base
            if self.dma_base <= address < self.dma_base + self.window:
                offset = address - self.dma_base
                channel = "S2MM" if offset >= DMA_REGISTERS["S2MM"] else "MM2S"
                return channel, offset - DMA_REGISTERS[channel]
            raise DeviceError(f"register access at {address:#x}: nothing is mapped there (accelerator at "
                              f"{self.accel_base:#x}, DMA at {self.dma_base:#x})")

        def _read_word(self, address):
            where, offset = self._where(address)
            if where == "accelerator":
                if offset == self._status:
                    self._advance()
                value = self.simulator.read_register(offset)
            else:
                channel = self._channels[where]
                if offset == DMA_REGISTERS["DMASR"]:
                    if channel.in_flight:
                        self._advance()
                    value = channel.status()
                elif offset == DMA_REGISTERS["DMACR"]:
                    value = channel.control
                elif offset == DMA_REGISTERS["ADDRESS"]:
                    value = channel.address & 0xFFFF_FFFF
                elif offset == DMA_REGISTERS["LENGTH"]:
                    value = channel.length
                else:
                    value = 0
            return value

        def _write_word(self, address, value):
            where, offset = self._where(address)
            if where == "accelerator":
                self.simulator.write_register(offset, value)
                if offset == self._ctrl and value & 1:
                    self._job_running = True
                return
            channel = self._channels[where]
            if offset == DMA_REGISTERS["DMACR"]:
                channel.control = value & ~0x4      # bit 2 is a self-clearing soft reset
                if value & 0x4:
                    channel.control, channel.in_flight, channel.interrupt = 0, False, False
            elif offset == DMA_REGISTERS["DMASR"]:
                if value & _IOC:
                    channel.interrupt = False
            elif offset == DMA_REGISTERS["ADDRESS"]:
                channel.address = (channel.address & ~0xFFFF_FFFF) | value
            elif offset == DMA_REGISTERS["ADDRESS_MSB"]:
                channel.address = (channel.address & 0xFFFF_FFFF) | (value << 32)
            elif offset == DMA_REGISTERS["LENGTH"]:
                self._start_transfer(channel, value)

        def _start_transfer(self, channel, nbytes):
            if not channel.control & 1:
                raise DeviceError(f"DMA {channel.name} LENGTH written while the channel is halted")
            channel.length, channel.in_flight = nbytes, True
            memory = self._memory(channel.address, nbytes)
            if channel.name == "MM2S":
                self.simulator.dma_send(memory.copy())
            else:
                channel.receive = (self.simulator.dma_receive(nbytes), channel.address)

        def _advance(self):
            if not self._job_running:
                return
            finished, _ = self.simulator._run(self.chunk_cycles)
            if not finished:
                return
            self._job_running = False
            self.jobs += 1
            for channel in self._channels.values():
                if channel.in_flight:
                    channel.in_flight, channel.interrupt = False, True
                    if channel.receive is not None:
                        received, address = channel.receive
                        self._memory(address, received.size)[:] = received
                        channel.receive = None

        def close(self):
            self.simulator.close()

    _CLASS = SimulatedPynqDevice
    return _CLASS


def simulated_pynq_device(simulator, *, accel_base, dma_base, **options):
    """A ``pynq.Device`` whose accelerator is ``simulator`` (a :class:`~accelkit.driver.device.Device`)."""
    return _device_class()(simulator, accel_base=accel_base, dma_base=dma_base, **options)
