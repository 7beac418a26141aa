"""The device interface every simulator and board implements.

A driver programs an accelerator only through this interface: registers by
name, one memory-to-stream and one stream-to-memory DMA channel, start, and a
wait bounded by a cycle budget. The same driver code therefore runs on the
Verilator, Amaranth and cocotb simulators and on a PYNQ board.

Timing contract shared by the simulators (so that all of them report the same
cycle count for the same program): the DMA channels are armed by the register
write that starts the job, at the clock edge where that write is accepted.
Counting cycles ``n = 0, 1, ...`` after that edge, memory-to-stream beat ``k``
may be presented from cycle ``latency + floor(k * beat_bytes / bytes_per_cycle)``
and stream-to-memory beat ``j`` is accepted from cycle
``floor(j * beat_bytes / bytes_per_cycle)``. A write of CTRL's abort bit, and a
job that runs out of its cycle budget, drop whatever the channels still hold.

Job control (the shell's ``ap_ctrl_hs``-style registers): :meth:`Device.start`
refuses to start over a running job, enables the done interrupt and starts;
:meth:`Device.wait` acknowledges the interrupt, raises :class:`DeviceError`
when the shell flagged the input stream, and on a timeout aborts the job so
that the same device runs the next one.
"""

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, asdict

import numpy as np

from ..errors import DeviceError, SimulationTimeout
from ..hw.registers import (RegisterMap, CTRL_START, CTRL_ABORT, STATUS_BUSY, STATUS_INPUT_SHORT,
                            STATUS_INPUT_LONG, INTERRUPT_DONE)

__all__ = ["DmaTiming", "Counters", "Device", "COUNTER_NAMES", "MAX_DMA_BYTES_PER_CYCLE", "MAX_DMA_LATENCY"]

COUNTER_NAMES = ("CYCLES", "BUSY_CYCLES", "IN_STALL_CYCLES", "OUT_STALL_CYCLES")

#: Widest DMA channel modelled (bytes per cycle): far beyond any AXI port, and every
#: stream beat is narrower, so a wider channel changes no cycle count.
MAX_DMA_BYTES_PER_CYCLE = 4096
#: Longest DMA latency modelled (cycles): well past any memory system's, and short
#: enough that a run's cycle budget stays within what a simulation can finish.
MAX_DMA_LATENCY = 65536


@dataclass(frozen=True)
class DmaTiming:
    """Bandwidth and latency of the simulated DMA channels."""

    bytes_per_cycle: int = 8
    latency: int = 0

    def __post_init__(self):
        if (isinstance(self.bytes_per_cycle, bool) or not isinstance(self.bytes_per_cycle, int)
                or not 1 <= self.bytes_per_cycle <= MAX_DMA_BYTES_PER_CYCLE):
            raise DeviceError(f"DMA bytes_per_cycle must be an integer in 1..{MAX_DMA_BYTES_PER_CYCLE}, "
                              f"not {self.bytes_per_cycle!r}")
        if (isinstance(self.latency, bool) or not isinstance(self.latency, int)
                or not 0 <= self.latency <= MAX_DMA_LATENCY):
            raise DeviceError(f"DMA latency must be an integer in 0..{MAX_DMA_LATENCY} cycles, not {self.latency!r}")

    def send_cycle(self, beat: int, beat_bytes: int) -> int:
        """First cycle after arming in which memory-to-stream beat ``beat`` can be presented."""
        return self.latency + beat * beat_bytes // self.bytes_per_cycle

    def receive_cycle(self, beat: int, beat_bytes: int) -> int:
        """First cycle after arming in which stream-to-memory beat ``beat`` can be accepted."""
        return beat * beat_bytes // self.bytes_per_cycle

    def as_dict(self):
        return asdict(self)


def beats_done(first_beat, count, ready_from, beat_bytes, bytes_per_cycle, latency):
    """Cycle in which the last of ``count`` consecutive stream beats is transferred (for cost models).

    Beat ``k`` is available at ``latency + k * beat_bytes // bytes_per_cycle``
    (the timing contract above) and the consumer takes at most one beat per
    cycle from ``ready_from`` on. When beats arrive no faster than one per cycle,
    the arrival of the last beat or the consumer's pace binds; when they arrive
    faster, only the first arrival matters.
    """
    def arrival(k):
        return latency + k * beat_bytes // bytes_per_cycle

    last = first_beat + count - 1
    if beat_bytes >= bytes_per_cycle:
        return max(arrival(last), ready_from + count - 1)
    return max(arrival(first_beat), ready_from) + count - 1


@dataclass(frozen=True)
class Counters:
    """Hardware performance counters of one job."""

    cycles: int
    busy_cycles: int
    in_stall_cycles: int
    out_stall_cycles: int
    macs: int

    def __add__(self, other):
        return Counters(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self):
        return (self.cycles, self.busy_cycles, self.in_stall_cycles, self.out_stall_cycles, self.macs)

    def as_dict(self):
        return asdict(self)


def _shown(status):
    return ", ".join(f"{k}={v:#x}" if k in ("STATUS", "ID") else f"{k}={v}" for k, v in status.items())


class Device(ABC):
    """Abstract accelerator device.

    Subclasses implement the five primitives (``read_register``,
    ``write_register``, ``dma_send``, ``dma_receive``, ``_run``); everything else
    is shared. ``register_map`` comes from the gateware's declaration.
    """

    #: name used by ``--backend``
    backend = "abstract"

    def __init__(self, register_map: RegisterMap, data_width: int, dma: DmaTiming | None = None):
        #: wall-clock seconds spent waiting for jobs (simulation time, for reports)
        self.run_seconds = 0.0
        self.register_map = register_map
        self.data_width = data_width
        self.beat_bytes = data_width // 8
        self.dma = dma or DmaTiming()
        self._interrupt_enabled = False

    # -- primitives --
    @abstractmethod
    def read_register(self, offset: int) -> int:
        """Read the 32-bit word at byte ``offset`` of the register block."""

    @abstractmethod
    def write_register(self, offset: int, word: int) -> None:
        """Write a 32-bit word at byte ``offset``; a start write arms the DMA channels."""

    @abstractmethod
    def dma_send(self, data) -> None:
        """Queue ``data`` (bytes or a numpy array, whole beats) on the memory-to-stream channel."""

    @abstractmethod
    def dma_receive(self, nbytes: int) -> np.ndarray:
        """Queue a receive of ``nbytes`` (whole beats); returns the uint8 buffer filled by ``wait``."""

    @abstractmethod
    def _run(self, cycle_budget: int) -> tuple[bool, int]:
        """Clock until ``interrupt`` or ``cycle_budget`` cycles; return (finished, cycles run)."""

    def close(self) -> None:
        """Release the simulator or board (flushes a waveform)."""

    # -- shared behaviour --
    def read(self, name: str) -> int:
        reg = self.register_map[name]
        return reg.decode(self.read_register(reg.offset))

    def write(self, name: str, value: int) -> None:
        reg = self.register_map[name]
        try:
            word = reg.encode(int(value))
        except ValueError as error:
            raise DeviceError(str(error)) from None
        self.write_register(reg.offset, word)

    def configure(self, **values) -> None:
        """Write several registers by name: ``device.configure(K=64, N_TILES=2)``."""
        for name, value in values.items():
            self.write(name, value)

    def start(self) -> None:
        """Start the job programmed so far; raises :class:`DeviceError` while a job is still running."""
        status = self.read("STATUS")
        if status & STATUS_BUSY:
            raise DeviceError(f"{self.backend}: cannot start a job while the previous one is running "
                              f"(STATUS={status:#x}); wait for it or abort it (device.abort())")
        if not self._interrupt_enabled:
            self.write("IER", INTERRUPT_DONE)
            self.write("GIE", 1)
            self._interrupt_enabled = True
        self.write("CTRL", CTRL_START)

    def abort(self) -> None:
        """Abort the running job: the core and its streams are reset, the DMA channels dropped."""
        self.write("CTRL", CTRL_ABORT)

    def status(self) -> dict:
        """All readable registers by name, for error reports."""
        return {reg.name: self.read(reg.name) for reg in self.register_map if reg.access != "wo"}

    def wait(self, cycle_budget: int) -> int:
        """Clock until the job is done; raise :class:`SimulationTimeout` after ``cycle_budget`` cycles."""
        started = time.perf_counter()
        finished, cycles = self._run(int(cycle_budget))
        self.run_seconds += time.perf_counter() - started
        if not finished:
            status = self.status()
            self.abort()
            raise SimulationTimeout(
                f"{self.backend}: the accelerator did not raise done within its cycle budget of "
                f"{cycle_budget} cycles (pass a larger budget if the job is legitimately longer); the job was "
                f"aborted; registers: {_shown(status)}", budget=cycle_budget, status=status)
        self.write("ISR", INTERRUPT_DONE)
        status = self.read("STATUS")
        if status & (STATUS_INPUT_SHORT | STATUS_INPUT_LONG):
            expected = self.read("IN_BEATS")
            what = ("ended (TLAST) before" if status & STATUS_INPUT_SHORT else
                    "did not end (TLAST) on the last of, or was not wholly taken in")
            raise DeviceError(f"{self.backend}: the job's input stream {what} the IN_BEATS={expected} beats the "
                              f"job was programmed for; the shell ended the job and reset the core "
                              f"(STATUS={status:#x})")
        return cycles

    def counters(self) -> Counters:
        values = [self.read(name) for name in COUNTER_NAMES]
        macs = self.read("MACS_LO") | (self.read("MACS_HI") << 32)
        return Counters(*values, macs)

    def run(self, cycle_budget: int) -> Counters:
        """Start the job, wait for done, and return the hardware counters."""
        self.start()
        self.wait(cycle_budget)
        return self.counters()

    def _check_beats(self, nbytes, what):
        if nbytes <= 0 or nbytes % self.beat_bytes:
            raise DeviceError(f"{what} of {nbytes} bytes is not a positive whole number of "
                              f"{self.beat_bytes}-byte beats")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
