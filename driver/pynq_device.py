"""The device interface on a PYNQ board: ``pynq.Overlay``, the accelerator's MMIO and PYNQ's AXI DMA driver.

The accelerator's drivers run on :class:`PynqDevice` unchanged: registers go
through the accelerator IP's PYNQ driver (``DefaultIP.read``/``write``, i.e.
``pynq.MMIO``), streams through ``pynq.lib.dma.DMA`` in simple mode with
buffers from ``pynq.allocate``. ``pynq`` is imported only when a device is
opened, so this module imports on any machine.

A job runs as on the simulators, in the order a board needs: the start write
first (the shell latches its configuration), then the receive channel, then
the send channel (the data waits in the DMA until the core takes it), then
polling of ``STATUS`` by name until done, then the two channels' ``wait``.
Everything a driver queued with :meth:`dma_send` goes out as one transfer
(TLAST on its last beat, as the simulators do); everything queued with
:meth:`dma_receive` comes back in one transfer and is split afterwards.
"""

import time

import numpy as np

from ..errors import DeviceError
from ..hw.registers import ID_MAGIC
from .device import Device, DmaTiming

__all__ = ["PynqDevice", "find_ips", "ACCEL_VLNV_PREFIX", "DMA_VLNV_PREFIX", "DMA_MAX_BYTES"]

ACCEL_VLNV_PREFIX = "accelkit:accelkit:"
DMA_VLNV_PREFIX = "xilinx.com:ip:axi_dma:"
#: The exported DMA's buffer-length register is 26 bits wide.
DMA_MAX_BYTES = (1 << 26) - 1
#: STATUS bit that says the job is done (hw/registers.py).
_DONE_BIT = 1 << 1


def find_ips(ip_dict) -> tuple[str, str]:
    """(accelerator, DMA) instance names in an overlay's ``ip_dict``, found by VLNV."""
    accelerators = [name for name, ip in ip_dict.items() if str(ip.get("type", "")).startswith(ACCEL_VLNV_PREFIX)]
    dmas = [name for name, ip in ip_dict.items() if str(ip.get("type", "")).startswith(DMA_VLNV_PREFIX)]
    if len(accelerators) != 1 or len(dmas) != 1:
        raise DeviceError(f"the overlay must hold one accelkit accelerator and one AXI DMA; found accelerators "
                          f"{accelerators or 'none'} and DMAs {dmas or 'none'} among {', '.join(ip_dict) or 'no IP'}")
    return accelerators[0], dmas[0]


class PynqDevice(Device):
    """An accelkit accelerator in a PYNQ overlay.

    ``overlay`` is a loaded ``pynq.Overlay`` holding one accelkit accelerator and
    one AXI DMA (found by VLNV); ``register_map`` is the accelerator's declaration
    (``accelerator.register_map()``). ``clock_mhz`` turns a wait's cycle budget
    into a time budget (the fabric clock of the export). The data width is read
    from the shell's INFO register, and its ID register is checked.
    """

    backend = "pynq"

    def __init__(self, overlay, register_map, *, clock_mhz=100.0, poll_seconds=0.0):
        if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) or not clock_mhz > 0:
            raise DeviceError(f"clock_mhz must be a positive number, not {clock_mhz!r}")
        self.overlay = overlay
        accel_name, dma_name = find_ips(overlay.ip_dict)
        self._ip = getattr(overlay, accel_name)
        self._dma = getattr(overlay, dma_name)
        self.clock_mhz = float(clock_mhz)
        self.poll_seconds = poll_seconds
        identity = self._ip.read(register_map["ID"].offset)
        if identity != ID_MAGIC:
            raise DeviceError(f"{accel_name} at {overlay.ip_dict[accel_name].get('phys_addr', 0):#x} is not an "
                              f"accelkit shell: its ID register reads {identity:#010x}, not {ID_MAGIC:#010x}")
        data_width = 8 * (register_map["INFO"].decode(self._ip.read(register_map["INFO"].offset)) & 0xFF)
        super().__init__(register_map, data_width, DmaTiming())
        self._ctrl = register_map["CTRL"].offset
        self._sends, self._receives = [], []
        self._send_buffer = self._receive_buffer = None
        self._job = None

    @classmethod
    def open(cls, bitfile, register_map, *, device=None, download=True, **options):
        """Load ``bitfile`` (its ``.hwh`` beside it) with ``pynq.Overlay`` and open the accelerator in it."""
        import pynq
        kwargs = {"download": download}
        if device is not None:
            kwargs["device"] = device
        return cls(pynq.Overlay(str(bitfile), **kwargs), register_map, **options)

    # -- primitives --
    def read_register(self, offset):
        return int(self._ip.read(offset)) & 0xFFFF_FFFF

    def write_register(self, offset, word):
        self._ip.write(offset, int(word) & 0xFFFF_FFFF)
        if offset == self._ctrl and word & 1:
            self._start_streams()

    def dma_send(self, data):
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        self._check_beats(raw.size, "a DMA send")
        self._sends.append(raw.copy())

    def dma_receive(self, nbytes):
        self._check_beats(nbytes, "a DMA receive")
        buffer = np.zeros(nbytes, dtype=np.uint8)
        self._receives.append(buffer)
        return buffer

    def _buffer(self, current, nbytes):
        import pynq
        if current is not None and current.nbytes >= nbytes:
            return current
        if current is not None:
            current.freebuffer()
        return pynq.allocate(shape=(max(nbytes, 4096),), dtype=np.uint8, target=self.overlay.device)

    def _start_streams(self):
        sends, receives = self._sends, self._receives
        self._sends, self._receives = [], []
        send_bytes = sum(part.size for part in sends)
        receive_bytes = sum(part.size for part in receives)
        for what, nbytes in (("send", send_bytes), ("receive", receive_bytes)):
            if nbytes > DMA_MAX_BYTES:
                raise DeviceError(f"a job's DMA {what} of {nbytes} bytes exceeds the DMA's {DMA_MAX_BYTES}-byte "
                                  "transfer limit; split the job")
        if receive_bytes:
            self._receive_buffer = self._buffer(self._receive_buffer, receive_bytes)
            self._dma.recvchannel.transfer(self._receive_buffer, nbytes=receive_bytes)
        if send_bytes:
            self._send_buffer = self._buffer(self._send_buffer, send_bytes)
            np.concatenate(sends, out=self._send_buffer[:send_bytes])
            self._dma.sendchannel.transfer(self._send_buffer, nbytes=send_bytes)
        self._job = (send_bytes, receives, receive_bytes)

    def _run(self, cycle_budget):
        if self._job is None:
            raise DeviceError("wait() without a started job (write CTRL first)")
        send_bytes, receives, receive_bytes = self._job
        deadline = time.monotonic() + cycle_budget / (self.clock_mhz * 1e6) + 1.0
        status = self.register_map["STATUS"].offset
        while not self.read_register(status) & _DONE_BIT:
            if time.monotonic() > deadline:
                self._job = None
                return False, cycle_budget
            if self.poll_seconds:
                time.sleep(self.poll_seconds)
        if send_bytes:
            self._dma.sendchannel.wait()
        if receive_bytes:
            self._dma.recvchannel.wait()
            offset = 0
            for part in receives:
                part[:] = self._receive_buffer[offset:offset + part.size]
                offset += part.size
        self._job = None
        return True, self.read("CYCLES")

    def close(self):
        for buffer in (self._send_buffer, self._receive_buffer):
            if buffer is not None:
                buffer.freebuffer()
        self._send_buffer = self._receive_buffer = None
