"""Cycle model of the two DMA channels, shared by the Python-driven simulators.

The native harness implements the same rules in C++ (``native/harness.cpp``);
:class:`~accelkit.driver.device.DmaTiming` states them.
"""

import numpy as np

from ..driver.device import DmaTiming

__all__ = ["StreamModel"]


class StreamModel:
    def __init__(self, beat_bytes: int, timing: DmaTiming):
        self.beat_bytes = beat_bytes
        self.timing = timing
        self._send = bytearray()
        self._send_last = set()     # beat indices that end a transfer (TLAST)
        self._receive = []
        self.reset()

    def reset(self):
        self.armed = False
        self.cycle = 0
        self.sent = 0
        self.received = 0
        self._send.clear()
        self._send_last.clear()
        self._receive.clear()

    def queue_send(self, data: bytes):
        self._send += data
        self._send_last.add(len(self._send) // self.beat_bytes - 1)

    def queue_receive(self, nbytes: int) -> np.ndarray:
        buffer = np.zeros(nbytes, dtype=np.uint8)
        self._receive.append(buffer)
        return buffer

    @property
    def send_beats(self):
        return len(self._send) // self.beat_bytes

    @property
    def receive_beats(self):
        return sum(b.size for b in self._receive) // self.beat_bytes

    def drive(self):
        """Values to present this cycle: (s_tvalid, s_tdata, s_tlast, m_tready)."""
        timing, k, j = self.timing, self.sent, self.received
        valid = self.armed and k < self.send_beats and self.cycle >= timing.send_cycle(k, self.beat_bytes)
        data = int.from_bytes(self._send[k * self.beat_bytes:(k + 1) * self.beat_bytes], "little") if valid else 0
        ready = self.armed and j < self.receive_beats and self.cycle >= timing.receive_cycle(j, self.beat_bytes)
        return valid, data, valid and k in self._send_last, ready

    def edge(self, s_valid, s_ready, m_valid, m_ready, m_data, arm, abort=False):
        """Account for one clock edge given the handshake signals sampled just before it.

        ``arm`` and ``abort`` say a CTRL write with the start or abort bit is accepted at this edge.
        """
        if s_valid and s_ready:
            self.sent += 1
        if m_valid and m_ready:
            self._store(self.received, m_data)
            self.received += 1
        if self.armed:
            self.cycle += 1
        if abort:
            self.reset()       # the abort resets the DMA channels with the core
        elif arm:
            self.armed, self.cycle = True, 0

    def _store(self, beat, word):
        offset = beat * self.beat_bytes
        raw = int(word).to_bytes(self.beat_bytes, "little")
        for buffer in self._receive:
            if offset < buffer.size:
                buffer[offset:offset + self.beat_bytes] = np.frombuffer(raw, dtype=np.uint8)
                return
            offset -= buffer.size

    def finish(self):
        """Forget the transfers of the finished or timed-out job (the buffers stay with the caller)."""
        self.reset()
