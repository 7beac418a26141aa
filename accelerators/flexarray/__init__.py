"""The flexarray accelerator plug-in: MAERI/SIGMA-style flexible dataflow with a mapping compiler."""

from ...errors import UnsupportedLayer
from ...driver.quant import ACTIVATIONS
from ..base import Accelerator, Param, ParamSpace
from .gateware import FlexArrayCore, REDUCTION_NETWORKS
from . import compiler, cost, driver, search

__all__ = ["FlexArrayAccelerator", "FlexArrayCore"]


class FlexArrayAccelerator(Accelerator):
    """N int8 multiplier switches, a crossbar distribution network, a forwarding adder network (or the
    segmented-sum reference), an accumulation buffer and TFLite requantization; mappings from a compiler."""

    name = "flexarray"
    core_class = FlexArrayCore
    description = ("int8 MAERI/SIGMA-style flexible array: virtual neurons of any size, dense and bitmap-sparse "
                   "mappings chosen per layer by a cycle model")
    space = ParamSpace(
        params=(
            Param("multipliers", 64, 4, 128, "multiplier switches (N)", power_of_two=True),
            Param("dn_bw", 8, 4, 128, "distribution bandwidth: int8 values per cycle (the stream is 8*dn_bw bits)",
                  power_of_two=True),
            Param("rn_bw", 8, 1, 128, "reduction output lanes: VN sums collected per step"),
            Param("rn", 0, 0, len(REDUCTION_NETWORKS) - 1,
                  "reduction network: " + ", ".join(f"{i} {name}" for i, name in enumerate(REDUCTION_NETWORKS))),
            Param("acc_depth", 512, 2, 1 << 16, "accumulation buffer words (steps per tile)", power_of_two=True),
        ),
        constraints=((lambda p: p["rn_bw"] <= p["multipliers"], "rn_bw ({rn_bw}) must not exceed multipliers "
                      "({multipliers})"),),
    )
    offload_ops = ("conv2d", "fc", "depthwise_conv2d")

    def core(self):
        p = self.params
        return FlexArrayCore(multipliers=p["multipliers"], dn_bw=p["dn_bw"], rn_bw=p["rn_bw"],
                             rn=REDUCTION_NETWORKS[p["rn"]], acc_depth=p["acc_depth"])

    @property
    def design(self):
        return compiler.Design.from_params(self.params)

    @property
    def pes(self):
        return self.params["multipliers"]

    # ---- the plan-based contract ----
    def plan(self, layer, input_shape, mapping=None):
        """The layer's plan: ``mapping`` if given (checked), else the one the cycle model finds best."""
        if getattr(layer, "activation", "NONE") not in ACTIVATIONS:
            raise UnsupportedLayer(f"fused activation {layer.activation} is not supported")
        if mapping is None:
            return search.best_plan(self, layer, tuple(input_shape))
        return driver.make_plan(self, layer, input_shape, mapping)

    def run(self, plan, device, x=None, cycle_budget=None):
        return driver.run_plan(self, plan, device, x, cycle_budget)

    def golden_plan(self, plan, x=None):
        return driver.golden(plan, x)

    def estimate_plan(self, plan, dma):
        return driver.estimate(self, plan, dma)

    # ---- the current (GEMM-shaped) contract, through plans ----
    def check_shape(self, m, n, k):
        if min(m, n, k) < 1:
            raise UnsupportedLayer(f"empty GEMM {m}x{n}x{k}")

    def check(self, gemm):
        self.plan(gemm, gemm.a.shape)

    def check_layer(self, layer, input_shape):
        if layer.op not in self.offload_ops:
            raise UnsupportedLayer(f"{self.name} does not run {layer.op} layers")
        self.plan(layer, input_shape)

    def golden(self, gemm):
        return gemm.reference()

    def estimate_cycles(self, gemm_shape, dma):
        from ...driver.layers import QuantizedGemm
        import numpy as np
        m, n, k = gemm_shape
        gemm = QuantizedGemm(np.zeros((m, k), np.int8), np.ones((k, n), np.int8), 0, 1.0)
        return self.estimate_plan(self.plan(gemm, (m, k)), dma).cycles

    def estimate_stats(self, gemm_shape, dma, op="gemm", shape=None):
        from ...driver.layers import QuantizedGemm
        import numpy as np
        m, n, k = gemm_shape
        gemm = QuantizedGemm(np.zeros((m, k), np.int8), np.ones((k, n), np.int8), 0, 1.0)
        return self.estimate_plan(self.plan(gemm, (m, k)), dma)

    def estimate(self, gemm, dma, op="gemm", shape=None):
        return self.estimate_plan(self.plan(gemm, gemm.a.shape), dma)

    def run_gemm(self, device, gemm, cycle_budget=None, op="gemm", shape=None):
        return self.run(self.plan(gemm, gemm.a.shape), device, None, cycle_budget)

    def run_layer(self, device, layer, x, cycle_budget=None):
        return self.run(self.plan(layer, x.shape), device, x, cycle_budget)

    def model_layer(self, layer, x, dma):
        """Golden output and cost-model LayerStats, without simulating (the `model` backend)."""
        plan = self.plan(layer, x.shape)
        return self.golden_plan(plan, x), self.estimate_plan(plan, dma)
