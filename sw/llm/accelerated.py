"""The MatMul hook that sends quantized MatMuls to an accelerator through an executor (any backend).

A weight whose format the accelerator takes becomes a ``BlockMatMul`` layer,
planned per (weight, tokens) (plans are cached by signature) and run with ``executor.run``; any other
MatMul (a format the design does not take, a float weight) runs on the host with
ggml's semantics, and the record says so and why.
"""

import time
from dataclasses import dataclass

from ...driver.kinds.block_matmul import BlockMatMul
from ...errors import UnsupportedLayer
from .forward import HostMatMul

__all__ = ["MatMulRecord", "AcceleratorMatMul"]


@dataclass
class MatMulRecord:
    """One MatMul of a forward pass: where it ran and what it cost."""

    name: str
    kind: str
    fmt: str
    tokens: int
    rows: int
    columns: int
    where: str                   # the accelerator's name, or "host"
    reason: str = ""
    cycles: int = 0
    weight_bytes: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0

    def as_dict(self):
        return dict(self.__dict__)


class AcceleratorMatMul:
    """Hook for :class:`~.forward.Llama`: quantized MatMuls on ``executor`` (see ``sw.execution.executors``)."""

    def __init__(self, accelerator, executor, *, quantizer="ref"):
        self.accelerator, self.executor, self.quantizer = accelerator, executor, quantizer
        self.host = HostMatMul(quantizer=quantizer)
        self.records = []
        self._layers, self._declined = {}, {}

    def _plan(self, weight, x):
        if weight.name not in self._layers:
            self._layers[weight.name] = BlockMatMul(weight.spec.name, weight.data, weight.shape[1],
                                                    quantizer=self.quantizer, name=weight.name)
        return self.executor.plan(self._layers[weight.name], x.shape)

    def __call__(self, weight, x):
        started = time.perf_counter()
        record = MatMulRecord(weight.name, weight.kind, weight.type_name, x.shape[0], weight.shape[0],
                              weight.shape[1], "host")
        reason = self._declined.get(weight.name)
        if reason is None and weight.spec is None:
            reason = f"{weight.type_name} is not a block format accelkit describes"
        plan = None
        if reason is None:
            try:
                plan = self._plan(weight, x)
            except UnsupportedLayer as error:
                reason = str(error)
        if plan is None:
            self._declined[weight.name] = reason
            record.reason = reason
            out = self.host(weight, x)
        else:
            out, stats = self.executor.run(plan, x)
            record.where = self.accelerator.name
            record.cycles, record.bytes_in, record.bytes_out = stats.cycles, stats.bytes_in, stats.bytes_out
            record.weight_bytes = stats.extra.get("weight_bytes", 0)
        record.seconds = time.perf_counter() - started
        self.records.append(record)
        return out
