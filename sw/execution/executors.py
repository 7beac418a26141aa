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

    def run_gemm(self, gemm, cycle_budget=None, op="gemm", shape=None):
        return self.accelerator.run_gemm(self.device, gemm, cycle_budget, op=op, shape=shape)

    def run_layer(self, layer, x, cycle_budget=None):
        return self.accelerator.run_layer(self.device, layer, x, cycle_budget)

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

    def run_gemm(self, gemm, cycle_budget=None, op="gemm", shape=None):
        started = time.perf_counter()
        self.accelerator.check(gemm)
        out = self.accelerator.golden(gemm)
        stats = self.accelerator.estimate(gemm, self.dma, op, shape)
        self._seconds += time.perf_counter() - started
        return out, stats

    def run_layer(self, layer, x, cycle_budget=None):
        if hasattr(self.accelerator, "model_layer"):   # a layer that is not one GEMM (e.g. mm2im's TRANSPOSE_CONV)
            started = time.perf_counter()
            result = self.accelerator.model_layer(layer, x, self.dma)
            self._seconds += time.perf_counter() - started
            return result
        gemm, out_shape = layer.lower(x)
        described = {"input": list(x.shape), "output": list(out_shape), "m": gemm.shape[0], "n": gemm.shape[1],
                     "k": gemm.shape[2]}
        out, stats = self.run_gemm(gemm, op=layer.op, shape=described)
        return out.reshape(out_shape), stats

    def close(self):
        pass


def open_executor(accelerator, backend="verilator", dma: DmaTiming | None = None, trace=None, progress=None):
    """An executor for ``backend`` (one of ``BACKENDS``)."""
    dma = dma or DmaTiming()
    if backend == "model":
        return ModelExecutor(accelerator, dma)
    return DeviceExecutor(accelerator, open_device(accelerator, backend, dma, trace, progress))
