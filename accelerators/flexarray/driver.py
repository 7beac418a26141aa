"""Host side of flexarray: plans (a layer's chosen mapping), running them on a device, golden and cost model.

A :class:`FlexPlan` is what the plan-based accelerator contract calls a plan:
a plain value naming the layer kind, its signature and shapes, and a schedule
(the mapping, JSON-able) from which the compiler rebuilds the program. The
mapping is chosen by the cycle model (``search.py``).
"""

from dataclasses import dataclass, field

import numpy as np

from ...driver.layers import LayerStats
from ...driver.quant import DOUBLE
from ...errors import UnsupportedLayer
from . import compiler, cost

__all__ = ["FlexPlan", "make_plan", "run_plan", "golden", "estimate", "signature"]


def signature(layer, input_shape):
    """A string that names everything about a layer a mapping depends on (shapes, options, weight sparsity)."""
    structure = compiler.structure_of(layer, input_shape)
    extra = ""
    if structure.kind != "gemm":
        extra = f":s{tuple(layer.stride)}d{tuple(layer.dilation)}{layer.padding}"
    nonzero = int(np.count_nonzero(structure.weights))
    digest = hash(np.packbits(structure.weights != 0).tobytes()) & 0xFFFFFFFF
    return (f"{structure.kind}:{tuple(input_shape)}:{structure.weights.shape}{extra}:"
            f"nz{nonzero}:{digest:08x}")


@dataclass
class FlexPlan:
    """A layer's mapping on one flexarray design (the contract's Plan, until it lands on main)."""

    kind: str
    accelerator: str
    signature: str
    input_shape: tuple
    output_shape: tuple
    macs: int
    schedule: dict
    layer: object = field(repr=False, default=None)
    program: object = field(repr=False, default=None)

    @property
    def mapping(self):
        return compiler.Mapping.from_dict(self.schedule["mapping"])


def make_plan(accelerator, layer, input_shape, mapping):
    """Plan ``layer`` on ``input_shape`` with ``mapping`` (raises :class:`UnsupportedLayer` with the reason)."""
    design = compiler.Design.from_params(accelerator.params)
    structure = compiler.structure_of(layer, tuple(input_shape))
    program = compiler.compile_program(design, structure, mapping)
    macs = structure.m * structure.n * structure.k if not mapping.sparse else int(
        structure.m * np.count_nonzero(structure.weights))
    kind = getattr(layer, "op", "gemm")
    schedule = {"mapping": mapping.as_dict(), "commands": len(program.commands), "tiles": len(program.tiles),
                "config_bytes": program.config_bytes, "data_bytes": program.data_bytes,
                "macs_issued": program.macs_issued}
    return FlexPlan(kind, accelerator.name, signature(layer, input_shape), tuple(input_shape),
                    tuple(structure.out_shape), structure.m * structure.n * structure.k, schedule, layer, program)


def golden(plan, x=None):
    """The TFLite-exact int8 output of the plan's layer on ``x`` (numpy)."""
    gemm, _ = compiler.operands_of(plan.layer, x)
    return gemm.reference().reshape(plan.output_shape)


def _stats(accelerator, plan, cycles, counters=None, estimated=False):
    design = compiler.Design.from_params(accelerator.params)
    program = plan.program
    busy = sum(c.count for c in program.commands if c.op == "STEPS")
    return LayerStats(
        op=plan.kind, shape={"input": list(plan.input_shape), "output": list(plan.output_shape)}, macs=plan.macs,
        cycles=cycles, pes=accelerator.pes,
        bytes_in=sum(1 + c.beats for c in program.commands) * design.beat_bytes,
        bytes_out=compiler.output_bytes(design, program), jobs=1,
        busy_cycles=counters.busy_cycles if counters else busy,
        in_stall_cycles=counters.in_stall_cycles if counters else 0,
        out_stall_cycles=counters.out_stall_cycles if counters else 0,
        array_macs=counters.macs if counters else program.macs_issued,
        extra={"estimated": estimated, "mapping": plan.schedule["mapping"],
               "config_bytes": program.config_bytes, "data_bytes": program.data_bytes})


def estimate(accelerator, plan, dma):
    """LayerStats of the plan from the closed-form cycle model (no simulation)."""
    design = compiler.Design.from_params(accelerator.params)
    return _stats(accelerator, plan, cost.program_cycles(design, plan.program, dma), estimated=True)


def run_plan(accelerator, plan, device, x=None, cycle_budget=None):
    """Run the plan on ``device`` in one job; return (int8 output, LayerStats)."""
    design = compiler.Design.from_params(accelerator.params)
    gemm, source = compiler.operands_of(plan.layer, x)
    stream = compiler.pack_stream(design, plan.program, gemm, source)
    device.configure(OUTPUT_ZERO_POINT=gemm.output_zero_point, ACT_MIN=gemm.act_min, ACT_MAX=gemm.act_max,
                     REQUANT_MODE=int(gemm.rounding != DOUBLE))
    device.dma_send(stream)
    received = device.dma_receive(compiler.output_bytes(design, plan.program))
    budget = cycle_budget or cost.cycle_bound(design, plan.program, device.dma)
    counters = device.run(budget)
    out = compiler.unpack_output(design, plan.program, received)
    return out, _stats(accelerator, plan, counters.cycles, counters)
