"""The MM2IM transposed-convolution accelerator plug-in: MatMul + on-chip col2IM for int8 TRANSPOSE_CONV."""

import dataclasses

from ...errors import ParameterError, UnsupportedLayer
from ..base import Accelerator, Param, ParamSpace
from .gateware import Mm2imCore
from . import cost, driver

__all__ = ["Mm2imAccelerator", "Mm2imCore"]


class Mm2imAccelerator(Accelerator):
    """rows (input channels) x cols (output channels) MatMul array feeding an accumulation buffer (col2IM)."""

    name = "mm2im"
    core_class = Mm2imCore
    description = ("int8 TRANSPOSE_CONV as MatMul + on-chip col2IM; skips taps cropped from the output, "
                   "TFLite per-channel requantization on chip")
    space = ParamSpace(
        params=(
            Param("rows", 8, 1, 64, "input-channel lanes (dot-product length per step)"),
            Param("cols", 8, 1, 64, "output-channel lanes (output channels per job)"),
            Param("data_width", 64, 8, 1024, "AXI4-Stream data width in bits", multiple_of=8),
            Param("w_depth", 1024, 1, 1 << 16, "weight words (KH * KW * input-channel chunks)", power_of_two=True),
            Param("in_depth", 512, 1, 1 << 16, "input-row buffer half, in words (pixels x chunks)",
                  power_of_two=True),
            Param("acc_depth", 1024, 1, 1 << 20, "accumulation buffer words (output pixels per band)",
                  power_of_two=True),
        ),
    )
    kinds = ("tconv",)
    small_params = {"rows": 2, "cols": 3, "data_width": 32, "w_depth": 64, "in_depth": 16, "acc_depth": 32}

    def core(self):
        return Mm2imCore(**self.params)

    @property
    def pes(self):
        return self.params["rows"] * self.params["cols"]

    # the plan contract
    def make_plan(self, layer, input_shape):
        try:
            layer.check_input(tuple(input_shape))
        except ParameterError as error:
            raise UnsupportedLayer(str(error)) from None
        driver.check_layer(layer, tuple(input_shape), self.params)
        jobs = driver.plan_layer(layer, tuple(input_shape), self.params)
        return self.new_plan(layer, (input_shape,), {"jobs": [dataclasses.asdict(job) for job in jobs],
                                                     "channel_chunks": -(-layer.filters.shape[3] // self.params["rows"])})

    @staticmethod
    def _jobs(plan):
        return [driver.Job(**{**job, "steps_per_row": tuple(job["steps_per_row"])}) for job in plan.schedule["jobs"]]

    def job_cycles(self, layer, job, dma):
        chunks = -(-layer.filters.shape[3] // self.params["rows"])
        kh, kw = layer.kernel
        return cost.job_cycles(self.params, chunks, kh * kw, job.in_w * chunks, job.steps_per_row,
                               job.out_h * layer.output_shape[2], dma)

    def run(self, plan, device, x, cycle_budget=None):
        if tuple(x.shape) != plan.input_shape:
            raise ParameterError(f"input of shape {list(x.shape)} does not match the plan's {list(plan.input_shape)}")
        return driver.run_layer(self, device, plan.layer, x, self._jobs(plan), cycle_budget)

    def estimate(self, plan, dma):
        return driver.estimate_layer(self, plan.layer, plan.input_shape, self._jobs(plan), dma)
