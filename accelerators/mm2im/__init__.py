"""The MM2IM transposed-convolution accelerator plug-in: MatMul + on-chip col2IM for int8 TRANSPOSE_CONV."""

from ...errors import ParameterError, UnsupportedLayer
from ...driver.quant import ACTIVATIONS
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
    offload_ops = ("tconv",)

    def core(self):
        return Mm2imCore(**self.params)

    @property
    def pes(self):
        return self.params["rows"] * self.params["cols"]

    # GEMM entry points: this design runs no plain GEMM
    def check_shape(self, m, n, k):
        raise UnsupportedLayer("mm2im runs TRANSPOSE_CONV layers only, not plain GEMMs")

    def estimate_cycles(self, gemm_shape, dma):
        raise UnsupportedLayer("mm2im runs TRANSPOSE_CONV layers only, not plain GEMMs")

    def estimate_stats(self, gemm_shape, dma, op="gemm", shape=None):
        raise UnsupportedLayer("mm2im runs TRANSPOSE_CONV layers only, not plain GEMMs")

    def run_gemm(self, device, gemm, cycle_budget=None, op="gemm", shape=None):
        raise UnsupportedLayer("mm2im runs TRANSPOSE_CONV layers only, not plain GEMMs")

    def golden(self, layer, x=None):
        """The int8 output this design must produce for ``layer`` on ``x`` (TFLite-exact, numpy)."""
        if x is None:
            raise UnsupportedLayer("mm2im runs TRANSPOSE_CONV layers only, not plain GEMMs (its golden model takes a "
                                   "TransposeConv2D and its input)")
        return layer.reference(x)

    # TRANSPOSE_CONV layers
    def check_layer(self, layer, input_shape):
        if layer.op not in self.offload_ops:
            raise UnsupportedLayer(f"{self.name} does not run {layer.op} layers")
        if getattr(layer, "activation", "NONE") not in ACTIVATIONS:
            raise UnsupportedLayer(f"fused activation {layer.activation} is not supported")
        try:
            layer.check_input(tuple(input_shape))
        except ParameterError as error:
            raise UnsupportedLayer(str(error)) from None
        driver.check_layer(layer, tuple(input_shape), self.params)

    def job_cycles(self, layer, job, dma):
        chunks = -(-layer.filters.shape[3] // self.params["rows"])
        kh, kw = layer.kernel
        return cost.job_cycles(self.params, chunks, kh * kw, job.in_w * chunks, job.steps_per_row,
                               job.out_h * layer.output_shape[2], dma)

    def layer_cycles(self, layer, input_shape, dma):
        """Closed-form cycles of a whole layer (the sum of its jobs)."""
        return sum(self.job_cycles(layer, job, dma) for job in driver.plan_layer(layer, tuple(input_shape), self.params))

    def run_layer(self, device, layer, x, cycle_budget=None):
        return driver.run_layer(self, device, layer, x, cycle_budget)

    def model_layer(self, layer, x, dma):
        """Golden output and cost-model LayerStats, without simulating (the `model` backend)."""
        self.check_layer(layer, x.shape)
        return layer.reference(x), driver.estimate_layer(self, layer, tuple(x.shape), dma)
