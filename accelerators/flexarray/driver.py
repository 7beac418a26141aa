"""Host side of flexarray: a plan's program, running it on a device, and its cost-model statistics.

A plan's schedule holds the mapping (JSON); the compiler rebuilds the program
(folds, configuration, command skeleton) from the plan's layer and the mapping,
and a small cache keeps the last programs so a plan is compiled once.
"""

import json
from collections import OrderedDict

import numpy as np

from ...driver.layers import LayerStats
from ...driver.quant import DOUBLE
from . import compiler, cost

__all__ = ["program_of", "remember_program", "run_plan", "estimate", "schedule_of"]

_PROGRAMS = OrderedDict()
_PROGRAM_CACHE = 64


def _key(accelerator, plan):
    return (id(plan.layer), json.dumps(sorted(accelerator.params.items())), json.dumps(plan.schedule["mapping"]),
            plan.input_shape)


def remember_program(accelerator, plan, program):
    """Keep ``program`` as the compiled form of ``plan`` (the plan maker compiled it already)."""
    _PROGRAMS[_key(accelerator, plan)] = (plan.layer, program)
    if len(_PROGRAMS) > _PROGRAM_CACHE:
        _PROGRAMS.popitem(last=False)


def program_of(accelerator, plan):
    """The compiled program of ``plan`` on ``accelerator`` (cached per layer object and mapping)."""
    mapping = compiler.Mapping.from_dict(plan.schedule["mapping"])
    key = _key(accelerator, plan)
    hit = _PROGRAMS.get(key)
    if hit is not None and hit[0] is plan.layer:
        _PROGRAMS.move_to_end(key)
        return hit[1]
    structure = compiler.structure_of(plan.layer, plan.input_shape)
    program = compiler.compile_program(accelerator.design, structure, mapping)
    remember_program(accelerator, plan, program)
    return program


def schedule_of(mapping, program):
    """The JSON schedule a plan shows: the mapping and what it costs in configuration and data."""
    return {"mapping": mapping.as_dict(), "tiles": len(program.tiles),
            "folds": sum(len(t.folds) for t in program.tiles), "commands": len(program.commands),
            "config_bytes": program.config_bytes, "data_bytes": program.data_bytes,
            "macs_issued": program.macs_issued}


def _stats(accelerator, plan, program, cycles, counters=None):
    design = accelerator.design
    busy = sum(c.count for c in program.commands if c.op == "STEPS")   # steps issued (full programs)
    return LayerStats(
        op=plan.kind, shape={"input": list(plan.input_shape), "output": list(plan.output_shape)}, macs=plan.macs,
        cycles=cycles, pes=accelerator.pes,
        bytes_in=sum(run.beats for run in program.runs) * design.beat_bytes,
        bytes_out=compiler.output_bytes(design, program), jobs=1,
        busy_cycles=counters.busy_cycles if counters else busy,
        in_stall_cycles=counters.in_stall_cycles if counters else 0,
        out_stall_cycles=counters.out_stall_cycles if counters else 0,
        array_macs=counters.macs if counters else program.macs_issued,
        extra={"estimated": counters is None, "mapping": plan.schedule["mapping"],
               "config_bytes": program.config_bytes, "data_bytes": program.data_bytes})


def estimate(accelerator, plan, dma):
    """LayerStats of the plan from the closed-form cycle model (no simulation)."""
    program = program_of(accelerator, plan)
    return _stats(accelerator, plan, program, cost.program_cycles(accelerator.design, program, dma))


def run_plan(accelerator, plan, device, x, cycle_budget=None):
    """Run the plan on ``device`` in one job; return (int8 output, LayerStats)."""
    design = accelerator.design
    program = program_of(accelerator, plan)
    gemm, source = compiler.operands_of(plan.layer, x)
    stream = compiler.pack_stream(design, program, gemm, source)
    device.configure(OUTPUT_ZERO_POINT=gemm.output_zero_point, ACT_MIN=gemm.act_min, ACT_MAX=gemm.act_max,
                     REQUANT_MODE=int(gemm.rounding != DOUBLE))
    device.dma_send(stream)
    received = device.dma_receive(compiler.output_bytes(design, program))
    counters = device.run(cycle_budget or cost.cycle_bound(design, program, device.dma))
    out = compiler.unpack_output(design, program, received).reshape(plan.output_shape)
    return out, _stats(accelerator, plan, program, counters.cycles, counters)
