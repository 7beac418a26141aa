"""The int8 systolic GEMM accelerator plug-in."""

import numpy as np

from ...driver.layers import QuantizedGemm
from ...errors import ParameterError, UnsupportedLayer
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

    small_params = {"rows": 4, "cols": 4, "data_width": 32, "k_max": 64, "a_depth": 256}

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

    # the plan contract
    kinds = ("gemm", "conv2d", "fc")

    def check_shape(self, m, n, k):
        """Raise :class:`UnsupportedLayer` when this design cannot run an (M, N, K) GEMM."""
        if min(m, n, k) < 1:
            raise UnsupportedLayer(f"empty GEMM {m}x{n}x{k}")
        if k > self.params["k_max"]:
            raise UnsupportedLayer(f"reduction depth K={k} exceeds k_max={self.params['k_max']}")

    def place_columns(self, weights):
        """Array column slot of each output channel (``-1``: unused), or None for channel i on column i."""
        return None

    def make_plan(self, layer, input_shape):
        m, n, k = layer.gemm_shape(input_shape)
        self.check_shape(m, n, k)
        placement = self.place_columns(layer.gemm_weights())
        columns = n if placement is None else int(placement.size)
        rows, cols = self.params["rows"], self.params["cols"]
        jobs = cost.plan_jobs(m, k, rows, self.params["a_depth"])
        schedule = {"gemm": [m, n, k], "array_columns": columns, "row_tiles": -(-m // rows),
                    "column_tiles": -(-columns // cols), "jobs": [list(job) for job in jobs]}
        if placement is not None:
            schedule["placement"] = placement.tolist()
        return self.new_plan(layer, (input_shape,), schedule)

    def _described(self, plan):
        m, n, k = plan.schedule["gemm"]
        described = {"input": list(plan.input_shape), "output": list(plan.output_shape), "m": m, "n": n, "k": k}
        if plan.schedule["array_columns"] != n:
            # the array runs the placed GEMM: its column count is what the cost model needs
            described.update(channels=n, n=plan.schedule["array_columns"])
        return described

    def _arrange(self, gemm, plan):
        """The GEMM with its output channels moved to the array columns the plan placed them on."""
        if "placement" not in plan.schedule:
            return gemm
        placement = np.asarray(plan.schedule["placement"])
        used = placement >= 0
        b = np.zeros((gemm.b.shape[0], placement.size), dtype=np.int8)
        b[:, used] = gemm.b[:, placement[used]]
        bias = np.zeros(placement.size, dtype=np.int64)
        bias[used] = gemm.bias[placement[used]]
        scale = np.full(placement.size, 0.5)
        scale[used] = gemm.scale[placement[used]]
        return QuantizedGemm(a=gemm.a, b=b, bias=bias, scale=scale, rounding=gemm.rounding,
                             output_zero_point=gemm.output_zero_point, act_min=gemm.act_min, act_max=gemm.act_max,
                             row_offset=gemm.row_offset)

    def _lowered(self, plan, x):
        gemm, out_shape = plan.layer.lower(x)
        if list(gemm.shape) != plan.schedule["gemm"]:
            raise ParameterError(f"an input of shape {list(x.shape)} gives a {gemm.shape} GEMM, but the plan was "
                                 f"made for {tuple(plan.schedule['gemm'])}")
        return gemm, self._arrange(gemm, plan), out_shape

    @staticmethod
    def _unarrange(out, gemm, placed, plan):
        if placed is gemm:
            return out
        placement = np.asarray(plan.schedule["placement"])
        used = placement >= 0
        result = np.zeros((gemm.shape[0], gemm.shape[1]), dtype=np.int8)
        result[:, placement[used]] = out[:, used]
        return result

    def golden(self, plan, x):
        """What the array computes: the lowered (and placed) GEMM's TFLite-exact result, in layer order."""
        gemm, placed, out_shape = self._lowered(plan, x)
        return self._unarrange(placed.reference(), gemm, placed, plan).reshape(out_shape)

    def run(self, plan, device, x, cycle_budget=None):
        gemm, placed, out_shape = self._lowered(plan, x)
        out, stats = driver.run_gemm(self, device, placed, cycle_budget, op=plan.kind, shape=self._described(plan),
                                     jobs=[tuple(job) for job in plan.schedule["jobs"]])
        stats.macs = plan.macs
        return self._unarrange(out, gemm, placed, plan).reshape(out_shape), stats

    def estimate(self, plan, dma):
        m, _, k = plan.schedule["gemm"]
        stats = driver.estimate_gemm(self, (m, plan.schedule["array_columns"], k), dma, plan.kind,
                                     self._described(plan), jobs=[tuple(job) for job in plan.schedule["jobs"]])
        stats.macs = plan.macs
        return stats
