"""A vector-MAC accelerator for accelkit, packaged outside it: the example of a third-party plug-in.

``lanes`` int8 multipliers reduce into one int32 dot product per ``ceil(K / lanes)``
cycles; a row of A stays on chip while the columns of B stream past it. It runs the
``fc``, ``gemm`` and ``conv2d`` layer kinds through their GEMM lowering
(``layer.lower(x)`` gives a :class:`~accelkit.driver.layers.QuantizedGemm`).

This is the teaching example, kept small on purpose: the core returns the int32
accumulators and the host requantizes them with ``accelkit.driver.quant.requantize``
(the built-in ``gemm`` accelerator does that on chip). The bias, the input zero
point (folded into the bias by the lowering), the per-channel scale and the fused
activation are therefore applied in numpy, exactly as LiteRT's reference kernels do.

The package registers itself with one entry-point line in its ``pyproject.toml``::

    [project.entry-points."accelkit.accelerators"]
    vecmac = "accelkit_vecmac:VecMacAccelerator"
"""

import numpy as np

from accelkit.accelerators.base import Accelerator, Param, ParamSpace
from accelkit.errors import ParameterError, UnsupportedLayer

from . import driver
from .gateware import VecMacCore

__all__ = ["VecMacAccelerator", "VecMacCore"]


class VecMacAccelerator(Accelerator):
    """``lanes`` int8 multipliers and an adder tree into one int32 accumulator; requantization on the host."""

    name = "vecmac"
    description = "int8 vector MAC (one dot product at a time), int32 results requantized on the host; example plug-in"
    core_class = VecMacCore
    kinds = ("fc", "gemm", "conv2d")
    space = ParamSpace(
        params=(
            Param("lanes", 8, 1, 64, "int8 multipliers (dot-product elements per cycle)", power_of_two=True),
            Param("data_width", 64, 32, 1024, "AXI4-Stream data width in bits (a result is one beat)",
                  multiple_of=8),
            Param("k_max", 2048, 16, 32768, "deepest reduction K (the on-chip row of A)", power_of_two=True),
        ),
        constraints=((lambda p: p["k_max"] >= p["lanes"], "k_max ({k_max}) must be at least lanes ({lanes})"),),
    )
    small_params = {"lanes": 4, "data_width": 32, "k_max": 64}

    def core(self):
        return VecMacCore(**self.params)

    @property
    def pes(self):
        return self.params["lanes"]

    # the plan contract
    def make_plan(self, layer, input_shape):
        m, n, k = layer.gemm_shape(input_shape)
        if min(m, n, k) < 1:
            raise UnsupportedLayer(f"empty GEMM {m}x{n}x{k}")
        if k > self.params["k_max"]:
            raise UnsupportedLayer(f"reduction depth K={k} exceeds k_max={self.params['k_max']}")
        if n > driver.MAX_ROWS:
            raise UnsupportedLayer(f"{n} output channels exceed the N register's {driver.MAX_ROWS}")
        schedule = {"gemm": [m, n, k], "words_per_vector": -(-k // self.params["lanes"]),
                    "jobs": [list(job) for job in driver.plan_jobs(self.params, m, n, k)]}
        return self.new_plan(layer, (input_shape,), schedule)

    def _lowered(self, plan, x):
        gemm, out_shape = plan.layer.lower(x)
        if list(gemm.shape) != plan.schedule["gemm"]:
            raise ParameterError(f"an input of shape {list(x.shape)} gives a {gemm.shape} GEMM, but the plan was "
                                 f"made for {tuple(plan.schedule['gemm'])}")
        return gemm, out_shape

    @staticmethod
    def _described(plan):
        m, n, k = plan.schedule["gemm"]
        return {"input": list(plan.input_shape), "output": list(plan.output_shape), "m": m, "n": n, "k": k}

    def golden(self, plan, x):
        """What the design computes: int32 dot products of the lowered GEMM, then the host's requantization."""
        gemm, out_shape = self._lowered(plan, x)
        acc = gemm.a.astype(np.int32) @ gemm.b.astype(np.int32)
        return driver.requantize_gemm(acc, gemm).reshape(out_shape)

    def run(self, plan, device, x, cycle_budget=None):
        gemm, out_shape = self._lowered(plan, x)
        out, stats = driver.run_gemm(self.params, device, gemm, [tuple(job) for job in plan.schedule["jobs"]],
                                     cycle_budget, plan.kind, self._described(plan))
        stats.macs = plan.macs
        return out.reshape(out_shape), stats

    def estimate(self, plan, dma):
        stats = driver.estimate_gemm(self.params, plan.schedule["gemm"], [tuple(job) for job in plan.schedule["jobs"]],
                                     dma, plan.kind, self._described(plan))
        stats.macs = plan.macs
        return stats
