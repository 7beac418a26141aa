"""The int8 systolic GEMM accelerator plug-in.

The gateware (``gateware.py``, ``pe.py``) is imported only when a core is
built: planning, driving a device and the cost model need numpy alone, so this
class runs on a board's own Python too (``sw/hardware/deploy/bundle.py``).
"""

import numpy as np

from ...driver.device import DmaTiming
from ...driver.layers import LayerStats, QuantizedGemm
from ...errors import ParameterError, UnsupportedLayer
from ...hw.registers import SHELL_REGISTERS
from ..base import Accelerator, Param, ParamSpace
from .layout import GEMM_CONFIG_REGISTERS, WeightLayout
from . import cost, driver, faults

__all__ = ["GemmAccelerator", "GemmCore"]


def __getattr__(name):
    # ``GemmCore`` stays importable from here without making Amaranth a dependency of the driver
    if name == "GemmCore":
        from .gateware import GemmCore
        return GemmCore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class GemmAccelerator(Accelerator):
    """rows x cols int8 output-stationary systolic array with on-chip TFLite requantization."""

    name = "gemm"
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
    faults_available = faults.FAULTS
    gateware_faults = faults.GATEWARE_FAULTS

    @property
    def core_class(self):
        from .gateware import GemmCore
        return GemmCore

    def core(self):
        return self.core_class(**self.params, **faults.core_faults(self.faults, self.params))

    def register_map(self):
        # the core's declaration, read without building (or importing) the gateware
        return SHELL_REGISTERS.extend(*GEMM_CONFIG_REGISTERS)

    @property
    def layout(self):
        """How weights stream in (every column multiplies int8 here)."""
        return WeightLayout.from_params(self.params)

    def pe_array(self):
        """The PE grid alone, as its own component (to synthesize it apart from buffers and requantizer)."""
        from .pe import PEArray
        return PEArray(self.params["rows"], self.layout)

    @property
    def pes(self):
        return self.params["rows"] * self.params["cols"]

    # the plan contract
    kinds = ("gemm", "conv2d", "fc", "depthwise_conv2d", "batch_matmul")
    #: kinds that lower to several GEMMs (see :meth:`_multi_plan`), the rest to one
    multi_gemm_kinds = ("depthwise_conv2d", "batch_matmul")

    def check_shape(self, m, n, k):
        """Raise :class:`UnsupportedLayer` when this design cannot run an (M, N, K) GEMM."""
        if min(m, n, k) < 1:
            raise UnsupportedLayer(f"empty GEMM {m}x{n}x{k}")
        if k > self.params["k_max"]:
            raise UnsupportedLayer(f"reduction depth K={k} exceeds k_max={self.params['k_max']}")

    def place_columns(self, weights):
        """Array column slot of each output channel (``-1``: unused), or None for channel i on column i."""
        return None

    def make_plan(self, layer, *input_shapes):
        if layer.op in self.multi_gemm_kinds:
            return self._multi_plan(layer, input_shapes)
        (input_shape,) = input_shapes
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
        if "placement" not in plan.schedule:
            return out
        placement = np.asarray(plan.schedule["placement"])
        used = placement >= 0
        result = np.zeros((gemm.shape[0], gemm.shape[1]), dtype=np.int8)
        result[:, placement[used]] = out[:, used]
        return result

    def golden(self, plan, *inputs):
        """What the array computes: the lowered (and placed) GEMMs' TFLite-exact results, in layer order."""
        if plan.kind in self.multi_gemm_kinds:
            return self._multi_assemble(plan, [gemm.reference() for gemm in self._multi_lowered(plan, inputs)[0]])
        (x,) = inputs
        gemm, placed, out_shape = self._lowered(plan, x)
        return self._unarrange(placed.reference(), gemm, placed, plan).reshape(out_shape)

    def run(self, plan, device, *inputs, cycle_budget=None):
        if plan.kind in self.multi_gemm_kinds:
            gemms, _ = self._multi_lowered(plan, inputs)
            results = [driver.run_gemm(self, device, gemm, cycle_budget, op=plan.kind, jobs=[tuple(j) for j in jobs])
                       for gemm, jobs in zip(gemms, plan.schedule["jobs"])]
            out = self._multi_assemble(plan, [out for out, _ in results])
            return out, self._multi_stats(plan, [stats for _, stats in results])
        (x,) = inputs
        gemm, placed, out_shape = self._lowered(plan, x)
        if self.faults:
            placed = faults.faulty_gemm(placed, self.faults, plan.layer)
            device = faults.FaultyDevice(device) if "dma_beat_dropped" in self.faults else device
        out, stats = driver.run_gemm(self, device, placed, cycle_budget, op=plan.kind, shape=self._described(plan),
                                     jobs=[tuple(job) for job in plan.schedule["jobs"]])
        if self.faults:
            out = faults.faulty_output(out, self.faults, self.params["cols"])
        stats.macs = plan.macs
        return self._unarrange(out, gemm, placed, plan).reshape(out_shape), stats

    def estimate(self, plan, dma):
        if plan.kind in self.multi_gemm_kinds:
            # the GEMMs of one plan repeat a few shapes: estimate each once (the sums only read the stats)
            distinct = {}
            for shape, jobs in zip(plan.schedule["gemms"], plan.schedule["jobs"]):
                key = (tuple(shape), tuple(tuple(j) for j in jobs))
                if key not in distinct:
                    distinct[key] = driver.estimate_gemm(self, key[0], dma, plan.kind, jobs=list(key[1]))
            return self._multi_stats(plan, [distinct[(tuple(shape), tuple(tuple(j) for j in jobs))]
                                            for shape, jobs in zip(plan.schedule["gemms"], plan.schedule["jobs"])])
        m, _, k = plan.schedule["gemm"]
        jobs = [tuple(job) for job in plan.schedule["jobs"]]
        stats = driver.estimate_gemm(self, (m, plan.schedule["array_columns"], k), dma, plan.kind,
                                     self._described(plan), jobs=jobs)
        stats.macs = plan.macs
        if "cost_term_removed" in self.faults:
            stats.cycles -= len(jobs) * (self.params["rows"] + self.params["cols"])
        return stats

    # -- kinds that lower to several GEMMs: depthwise_conv2d (one per channel group), batch_matmul (one per
    # batch element)

    #: the DMA timing a plan's choices are compared at (the default channels)
    planning_dma = DmaTiming(8, 0)

    def _gemm_cycles(self, shapes):
        return sum(cost.gemm_cycles(self.params, tuple(shape), self.planning_dma) for shape in shapes)

    def _multi_plan(self, layer, input_shapes):
        rows, a_depth = self.params["rows"], self.params["a_depth"]
        try:
            if layer.op == "depthwise_conv2d":
                (input_shape,) = input_shapes
                schedule = self._depthwise_schedule(layer, input_shape)
            else:
                batch, m, n, k = layer.shapes(*input_shapes)
                self.check_shape(m, n, k)
                count = int(np.prod(batch, dtype=np.int64))
                schedule = {"lowering": "one GEMM per batch element, per-row zero-point term in the core",
                            "gemms": [[m, n, k]] * count}
        except ParameterError as error:
            raise UnsupportedLayer(str(error)) from None
        schedule["jobs"] = [[list(job) for job in cost.plan_jobs(m, k, rows, a_depth)]
                            for m, _, k in schedule["gemms"]]
        return self.new_plan(layer, input_shapes, schedule)

    def _depthwise_schedule(self, layer, input_shape):
        """Channel groups of the depthwise lowering: the group size whose GEMMs the cost model finds quickest.

        A group of g input channels is one GEMM with K = KH*KW*g and a
        block-diagonal B of g*multiplier columns; larger groups fill more array
        columns but multiply their K (only one in g products is useful), so the
        compute is about the same and the choice is between per-GEMM overheads
        and column tiles: powers of two from 1 (one GEMM per channel) up to the
        largest group one column tile holds (within k_max) are compared.
        """
        kh, kw = layer.kernel
        cols, k_max = self.params["cols"], self.params["k_max"]
        if kh * kw > k_max:
            raise UnsupportedLayer(f"a {kh}x{kw} kernel needs K={kh * kw}, above k_max={k_max}")
        largest = max(1, min(cols // layer.multiplier, k_max // (kh * kw), layer.in_channels))
        candidates = {largest} | {1 << e for e in range(largest.bit_length()) if 1 << e <= largest}
        best = None
        channels = layer.in_channels
        for group in sorted(candidates):
            # the groups are all of one size but the last: cost each size once
            sizes = {group: channels // group}
            if channels % group:
                sizes[channels % group] = 1
            cycles = sum(times * self._gemm_cycles([layer.group_gemm_shape(input_shape, count)])
                         for count, times in sizes.items())
            if best is None or cycles < best[0]:
                best = (cycles, group)
        _, group = best
        groups = layer.groups(group)
        distinct = {count: list(layer.group_gemm_shape(input_shape, count)) for count in {c for _, c in groups}}
        shapes = [list(distinct[count]) for _, count in groups]
        return {"lowering": "channel groups as GEMMs with block-diagonal weights", "group_channels": group,
                "groups": [list(g) for g in groups], "gemms": shapes}

    def _multi_lowered(self, plan, inputs):
        layer = plan.layer
        if plan.kind == "depthwise_conv2d":
            (x,) = inputs
            placed, shape = layer.lower(x, plan.schedule["group_channels"])
            gemms = [gemm for _, gemm in placed]
        else:
            gemms, shape = layer.lower(*inputs)
        got = [list(gemm.shape) for gemm in gemms]
        if got != plan.schedule["gemms"]:
            raise ParameterError(f"inputs of shapes {[list(x.shape) for x in inputs]} give GEMMs {got[:4]}..., "
                                 f"but the plan was made for {plan.schedule['gemms'][:4]}...")
        return gemms, shape

    def _multi_assemble(self, plan, outputs):
        """The layer's output from its GEMMs' [M, N] results."""
        shape = plan.output_shape
        if plan.kind == "batch_matmul":
            return np.stack(outputs).reshape(shape)
        out = np.empty((int(np.prod(shape[:-1])), shape[-1]), dtype=np.int8)
        at = 0
        for result in outputs:
            out[:, at:at + result.shape[1]] = result
            at += result.shape[1]
        return out.reshape(shape)

    def _multi_stats(self, plan, parts):
        """One LayerStats for the GEMMs of a plan: counters summed, MACs the layer's useful ones."""
        total = LayerStats(op=plan.kind, shape={"input": [list(s) for s in plan.input_shapes],
                                                "output": list(plan.output_shape), "gemms": len(parts),
                                                "m": plan.schedule["gemms"][0][0], "n": plan.schedule["gemms"][0][1],
                                                "k": plan.schedule["gemms"][0][2]},
                           macs=plan.macs, cycles=0, pes=self.pes, bytes_in=0, bytes_out=0, jobs=0,
                           extra={"weight_bytes": 0})
        for part in parts:
            for name in ("cycles", "bytes_in", "bytes_out", "jobs", "busy_cycles", "in_stall_cycles",
                         "out_stall_cycles", "array_macs"):
                setattr(total, name, getattr(total, name) + getattr(part, name))
            total.extra["weight_bytes"] += part.extra.get("weight_bytes", 0)
            if part.extra.get("estimated"):
                total.extra["estimated"] = True
        total.extra["gemm_macs"] = sum(m * n * k for m, n, k in plan.schedule["gemms"])
        return total
