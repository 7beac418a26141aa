"""Recording a run's device transactions and replaying them on another device.

:class:`RecordingDevice` wraps any :class:`~accelkit.driver.device.Device`
and writes down what the driver did through the interface: register writes
and reads (with the values read), the bytes of every DMA send, every DMA
receive (filled in with the bytes that came back when the job ended) and
every job's wait (its budget and the cycles it took). The trace is plain data
(:class:`DeviceTrace`, saved as JSON lines plus an ``.npz`` of the payloads).

:func:`replay` plays a trace on another device, with no driver, no model and
no accelerator code: the same writes and sends, the same receives and waits,
and checks what comes back. Received bytes and the registers that do not
depend on timing must be equal; cycle counters are compared and reported,
not required to be equal (a board's DMA and memory differ from the
simulator's timing model). That is how a board is brought up from a simulator
trace: record a layer on Verilator, replay it on the board's device.

:class:`TraceDevice` turns the roles round: it *is* the recorded device, for
code that drives it. Every transaction must be the trace's next one, and reads
and receives answer what the recorded gateware answered. A program that runs
on it to the end has made, byte for byte, the transactions the recorded run
made: that is how the board-side bundle's own driver code is checked here
against a simulator run, without a board.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DeviceError
from ..hw.registers import STATUS_DONE, Register, RegisterMap
from .device import Device, DmaTiming

__all__ = ["DeviceTrace", "RecordingDevice", "TraceDevice", "replay", "ReplayReport", "TIMING_REGISTERS"]

#: Registers whose values depend on timing (the DMA, the memory system, the link), not on the data.
TIMING_REGISTERS = frozenset({"CYCLES", "BUSY_CYCLES", "IN_STALL_CYCLES", "OUT_STALL_CYCLES"})
_FORMAT = 1


@dataclass
class DeviceTrace:
    """Transactions in order: each entry a dict with ``op`` in write, read, send, receive, run.

    ``write``/``read``: ``offset``, ``register`` (its name), ``value``;
    ``send``/``receive``: ``nbytes``, ``sha256``, ``payload`` (an index into
    :attr:`payloads`); ``run``: ``budget``, ``finished``, ``cycles`` (what the
    device's wait reported: informative only, each device counts its own way;
    the CYCLES register read after the job is what replays compare).
    ``device`` describes the device it was recorded on.
    """

    entries: list = field(default_factory=list)
    payloads: list = field(default_factory=list)
    device: dict = field(default_factory=dict)

    def add_payload(self, op, data):
        data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1).copy()
        self.payloads.append(data)
        entry = {"op": op, "nbytes": int(data.size), "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
                 "payload": len(self.payloads) - 1}
        self.entries.append(entry)
        return entry

    def register_map(self) -> RegisterMap:
        """The register map of the design the trace was recorded on (what a board-side device needs)."""
        try:
            return RegisterMap(tuple(Register(**reg) for reg in self.device["registers"]))
        except (KeyError, TypeError, ValueError) as error:
            raise DeviceError(f"the trace carries no usable register map ({error})") from None

    def count(self, op):
        return sum(1 for entry in self.entries if entry["op"] == op)

    def save(self, path):
        """Write ``PATH.jsonl`` (a header line, then one entry a line) and ``PATH.npz`` (the payloads)."""
        path = Path(path)
        with open(path.with_suffix(".jsonl"), "w") as out:
            out.write(json.dumps({"format": _FORMAT, "device": self.device}) + "\n")
            for entry in self.entries:
                out.write(json.dumps(entry) + "\n")
        np.savez_compressed(path.with_suffix(".npz"), *self.payloads)

    @classmethod
    def load(cls, path):
        """Read a trace written by :meth:`save`; :class:`DeviceError` when it is not one."""
        path = Path(path)
        try:
            lines = path.with_suffix(".jsonl").read_text().splitlines()
            header = json.loads(lines[0])
            entries = [json.loads(line) for line in lines[1:]]
            with np.load(path.with_suffix(".npz")) as archive:
                payloads = [archive[f"arr_{i}"] for i in range(len(archive.files))]
        except (OSError, ValueError, IndexError) as error:
            raise DeviceError(f"{path} is not a readable device trace (.jsonl and .npz): {error}") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise DeviceError(f"{path.with_suffix('.jsonl')}: not a device trace of format {_FORMAT} "
                              f"(its first line is {lines[0][:80]!r})")
        for index, entry in enumerate(entries):
            payload = entry.get("payload")
            if payload is not None and not (isinstance(payload, int) and 0 <= payload < len(payloads)):
                raise DeviceError(f"{path}: entry {index} names payload {payload!r}, but the .npz holds "
                                  f"{len(payloads)}")
        return cls(entries, payloads, header.get("device", {}))


class RecordingDevice(Device):
    """``device`` with every transaction the driver makes written to :attr:`trace`."""

    def __init__(self, device: Device):
        self.device = device
        self.backend = device.backend
        self.trace = DeviceTrace(device={"backend": device.backend, "data_width": device.data_width,
                                         "dma": device.dma.as_dict(),
                                         "registers": [asdict(reg) for reg in device.register_map]})
        self._names = {reg.offset: reg.name for reg in device.register_map}
        self._pending = []
        super().__init__(device.register_map, device.data_width, device.dma)
        # The trace must enable the interrupt itself, so it replays on a fresh device.
        self._interrupt_enabled = False

    def read_register(self, offset):
        value = self.device.read_register(offset)
        self.trace.entries.append({"op": "read", "offset": offset, "register": self._names.get(offset),
                                   "value": int(value)})
        return value

    def write_register(self, offset, word):
        self.trace.entries.append({"op": "write", "offset": offset, "register": self._names.get(offset),
                                   "value": int(word)})
        self.device.write_register(offset, word)

    def dma_send(self, data):
        self.device.dma_send(data)
        self.trace.add_payload("send", np.ascontiguousarray(data).view(np.uint8))

    def dma_receive(self, nbytes):
        buffer = self.device.dma_receive(nbytes)
        entry = {"op": "receive", "nbytes": int(nbytes)}
        self.trace.entries.append(entry)
        self._pending.append((entry, buffer))
        return buffer

    def _run(self, cycle_budget):
        finished, cycles = self.device._run(cycle_budget)
        self.trace.entries.append({"op": "run", "budget": int(cycle_budget), "finished": bool(finished),
                                   "cycles": int(cycles)})
        # The job's receives are filled now: keep what came back.
        for entry, buffer in self._pending:
            data = np.ascontiguousarray(buffer, dtype=np.uint8).reshape(-1).copy()
            self.trace.payloads.append(data)
            entry.update(sha256=hashlib.sha256(data.tobytes()).hexdigest(), payload=len(self.trace.payloads) - 1)
        self._pending = []
        return finished, cycles

    def close(self):
        self.device.close()


class TraceDevice(Device):
    """A device whose answers are a recorded trace's; see the module docstring.

    A transaction that is not the trace's next one raises :class:`DeviceError`
    naming the entry and what differs; :attr:`remaining` counts the entries not
    yet played (a complete run leaves none).
    """

    def __init__(self, trace: DeviceTrace):
        self.trace = trace
        recorded = trace.device
        try:
            dma = DmaTiming(**recorded["dma"])
            super().__init__(trace.register_map(), int(recorded["data_width"]), dma)
        except (KeyError, TypeError, ValueError) as error:
            raise DeviceError(f"the trace does not describe the device it was recorded on ({error!r})") from None
        self.backend = f"trace of {recorded.get('backend', 'a device')}"
        self._at = 0
        self._pending = []

    @property
    def remaining(self):
        return len(self.trace.entries) - self._at

    def _next(self, op, **expected):
        if self._at >= len(self.trace.entries):
            raise DeviceError(f"the driver made a {op} after the trace's last transaction "
                              f"({len(self.trace.entries)} entries)")
        index, entry = self._at, self.trace.entries[self._at]
        differing = {key: (value, entry.get(key)) for key, value in expected.items() if entry.get(key) != value}
        if entry["op"] != op or differing:
            raise DeviceError(f"transaction {index}: the driver made a {op} {expected}, the trace has "
                              f"{json.dumps({k: v for k, v in entry.items() if k != 'sha256'})}")
        self._at += 1
        return entry

    def read_register(self, offset):
        return self._next("read", offset=offset)["value"]

    def write_register(self, offset, word):
        self._next("write", offset=offset, value=int(word))

    def dma_send(self, data):
        data = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        self._next("send", nbytes=int(data.size), sha256=hashlib.sha256(data.tobytes()).hexdigest())

    def dma_receive(self, nbytes):
        entry = self._next("receive", nbytes=int(nbytes))
        buffer = np.zeros(int(nbytes), dtype=np.uint8)
        self._pending.append((entry, buffer))
        return buffer

    def _run(self, cycle_budget):
        entry = self._next("run", budget=int(cycle_budget))
        for receive, buffer in self._pending:
            if "payload" in receive:
                buffer[:] = self.trace.payloads[receive["payload"]]
        self._pending = []
        return entry["finished"], entry["cycles"]


@dataclass
class ReplayReport:
    """What a replay found: counts, data mismatches (must be none) and timing differences (reported)."""

    writes: int = 0
    reads: int = 0
    sends: int = 0
    receives: int = 0
    jobs: int = 0
    mismatches: list = field(default_factory=list)
    timing: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.mismatches

    def as_dict(self):
        return {"ok": self.ok, "writes": self.writes, "reads": self.reads, "sends": self.sends,
                "receives": self.receives, "jobs": self.jobs, "mismatches": self.mismatches, "timing": self.timing}


def replay(trace: DeviceTrace, device: Device, *, budget_factor=1) -> ReplayReport:
    """Play ``trace`` on ``device`` and compare; see the module docstring.

    ``budget_factor`` stretches every job's cycle budget (a slower memory
    system). A job that does not finish on ``device`` is aborted and reported,
    and the replay goes on with the next transaction.
    """
    if not isinstance(budget_factor, (int, float)) or isinstance(budget_factor, bool) or budget_factor < 1:
        raise DeviceError(f"budget_factor must be a number >= 1, not {budget_factor!r}")
    width = trace.device.get("data_width")
    if width is not None and width != device.data_width:
        raise DeviceError(f"the trace was recorded on a {width}-bit stream; this device's is {device.data_width} "
                          "bits: its beats would not line up")
    report = ReplayReport()
    pending = []
    for index, entry in enumerate(trace.entries):
        op = entry["op"]
        if op == "write":
            device.write_register(entry["offset"], entry["value"])
            report.writes += 1
        elif op == "read":
            value = device.read_register(entry["offset"])
            report.reads += 1
            # STATUS's done bit before a start tells the device's history (a job ran before), not this run.
            history = STATUS_DONE if entry.get("register") == "STATUS" else 0
            if (value ^ entry["value"]) & ~history:
                record = {"entry": index, "register": entry.get("register") or hex(entry["offset"]),
                          "recorded": entry["value"], "replayed": int(value)}
                (report.timing if entry.get("register") in TIMING_REGISTERS else report.mismatches).append(record)
        elif op == "send":
            device.dma_send(trace.payloads[entry["payload"]])
            report.sends += 1
        elif op == "receive":
            pending.append((index, entry, device.dma_receive(entry["nbytes"])))
            report.receives += 1
        elif op == "run":
            finished, _ = device._run(int(entry["budget"] * budget_factor))
            report.jobs += 1
            if finished != entry["finished"]:
                report.mismatches.append({"entry": index, "job": report.jobs, "recorded_finished": entry["finished"],
                                          "replayed_finished": bool(finished)})
                if not finished:
                    device.abort()
            for receive_index, receive, buffer in pending:
                if "payload" not in receive:
                    continue
                expected = trace.payloads[receive["payload"]]
                got = np.asarray(buffer, dtype=np.uint8).reshape(-1)
                if not np.array_equal(got, expected):
                    differing = np.flatnonzero(got != expected)
                    report.mismatches.append({"entry": receive_index, "job": report.jobs, "receive_bytes": int(got.size),
                                              "differing_bytes": int(differing.size),
                                              "first_difference": int(differing[0])})
            pending = []
        else:
            raise DeviceError(f"trace entry {index} has op {op!r}; a trace holds write, read, send, receive and run")
    return report
