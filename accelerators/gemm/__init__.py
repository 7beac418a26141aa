"""The int8 systolic GEMM accelerator plug-in."""

from ...errors import UnsupportedLayer
from ..base import Accelerator, Param, ParamSpace
from .gateware import GemmCore
from .pe import PEArray, WeightLayout
from . import cost, driver

__all__ = ["GemmAccelerator", "GemmCore"]


class GemmAccelerator(Accelerator):
    """rows x cols int8 output-stationary systolic array with on-chip TFLite requantization."""

    name = "gemm"
    core_class = GemmCore
    description = "int8 output-stationary systolic GEMM, TFLite per-channel requantization on chip"
    space = ParamSpace(
        params=(
            Param("rows", 8, 1, 64, "PE rows (output rows per tile)"),
            Param("cols", 8, 1, 64, "PE columns (output channels per tile)"),
            Param("data_width", 64, 8, 1024, "AXI4-Stream data width in bits", multiple_of=8),
            Param("k_max", 2048, 16, 32768, "largest reduction depth K (B buffer half depth)", power_of_two=True),
            Param("a_depth", 4096, 16, 1 << 20, "A buffer depth in words of `rows` bytes", power_of_two=True),
        ),
        constraints=((lambda p: p["a_depth"] >= p["k_max"],
                      "a_depth ({a_depth}) must be at least k_max ({k_max}) so one row tile of the deepest K fits"),),
    )

    def core(self):
        return GemmCore(**self.params)

    @property
    def layout(self):
        """How weights stream in (every column multiplies int8 here)."""
        return WeightLayout.from_params(self.params)

    def pe_array(self):
        """The PE grid alone, as its own component (to synthesize it apart from buffers and requantizer)."""
        return PEArray(self.params["rows"], self.layout)

    @property
    def pes(self):
        return self.params["rows"] * self.params["cols"]

    def check_shape(self, m, n, k):
        if k > self.params["k_max"]:
            raise UnsupportedLayer(f"reduction depth K={k} exceeds k_max={self.params['k_max']}")
        if min(m, n, k) < 1:
            raise UnsupportedLayer(f"empty GEMM {m}x{n}x{k}")

    def golden(self, gemm):
        return gemm.reference()

    def job_cycles(self, m_tiles, n_tiles, k, dma):
        return cost.job_cycles(self.params, m_tiles, n_tiles, k, dma)

    def estimate_cycles(self, gemm_shape, dma):
        return cost.gemm_cycles(self.params, gemm_shape, dma)

    def estimate_stats(self, gemm_shape, dma, op="gemm", shape=None):
        return driver.estimate_gemm(self, gemm_shape, dma, op, shape)

    def run_gemm(self, device, gemm, cycle_budget=None, op="gemm", shape=None):
        return driver.run_gemm(self, device, gemm, cycle_budget, op=op, shape=shape)
