"""Where layers are dispatched: to a device (a simulator or a board) or to the fast `model` backend.

The `model` backend runs each layer through the accelerator's golden numpy model
and takes its cycles from the closed-form cost model; simulators and
accelerators are unchanged. Everything that runs layers (`accelkit run`,
`accelkit layer`, benchmarks, the framework front ends) goes through an executor,
so `--backend model` works everywhere a backend is chosen.
"""

import time

from ...driver.device import DmaTiming
from .devices import BACKENDS as DEVICE_BACKENDS, open_device

__all__ = ["BACKENDS", "open_executor", "DeviceExecutor", "ModelExecutor"]

BACKENDS = DEVICE_BACKENDS + ("model",)


class DeviceExecutor:
    """Layers run by the accelerator's driver on a device."""

    def __init__(self, accelerator, device):
        self.accelerator, self.device, self.dma = accelerator, device, device.dma
        self.backend = device.backend

    @property
    def run_seconds(self):
        """Seconds spent waiting for the device (simulation time)."""
        return self.device.run_seconds

    def plan(self, layer, *input_shapes):
        """The accelerator's plan for ``layer`` (raises UnsupportedLayer with the reason)."""
        return self.accelerator.plan(layer, *input_shapes)

    def run(self, plan, *inputs, cycle_budget=None):
        """(output, LayerStats) of ``plan`` on these inputs."""
        return self.accelerator.run(plan, self.device, *inputs, cycle_budget=cycle_budget)

    def run_layer(self, layer, *inputs, cycle_budget=None):
        """Plan and run ``layer`` in one call."""
        return self.run(self.plan(layer, *(x.shape for x in inputs)), *inputs, cycle_budget=cycle_budget)

    def close(self):
        self.device.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ModelExecutor(DeviceExecutor):
    """Layers computed by the golden model, timed by the cost model: no simulation."""

    backend = "model"

    def __init__(self, accelerator, dma):
        self.accelerator, self.device, self.dma = accelerator, None, dma
        self._seconds = 0.0

    @property
    def run_seconds(self):
        return self._seconds

    def run(self, plan, *inputs, cycle_budget=None):
        started = time.perf_counter()
        out = self.accelerator.golden(plan, *inputs)
        stats = self.accelerator.estimate(plan, self.dma)
        self._seconds += time.perf_counter() - started
        return out, stats

    def close(self):
        pass


def open_executor(accelerator, backend="verilator", dma: DmaTiming | None = None, trace=None, progress=None):
    """An executor for ``backend`` (one of ``BACKENDS``)."""
    dma = dma or DmaTiming()
    if backend == "model":
        return ModelExecutor(accelerator, dma)
    return DeviceExecutor(accelerator, open_device(accelerator, backend, dma, trace, progress))
