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
from ...errors import ParameterError
from . import compiler, cost

__all__ = ["program_of", "remember_program", "run_plan", "estimate", "schedule_of", "batch_count"]

_PROGRAMS = OrderedDict()
_PROGRAM_CACHE = 64


def _key(accelerator, plan):
    return (id(plan.layer), json.dumps(sorted(accelerator.params.items())), json.dumps(plan.schedule["mapping"]),
            plan.input_shapes)


def batch_count(layer, input_shapes):
    """GEMMs (jobs) a plan runs: a batch_matmul's batch elements, 1 for the other kinds."""
    if layer.op != "batch_matmul":
        return 1
    batch, _, _, _ = layer.shapes(*input_shapes)
    return int(np.prod(batch, dtype=np.int64))


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
    structure = compiler.structure_of(plan.layer, *plan.input_shapes)
    program = compiler.compile_program(accelerator.design, structure, mapping)
    remember_program(accelerator, plan, program)
    return program


def schedule_of(mapping, program, count=1):
    """The JSON schedule a plan shows: the mapping and what it costs in configuration and data (summed over
    ``count`` GEMMs of this program's shape, one job each: a batch_matmul's batch elements)."""
    schedule = {"mapping": mapping.as_dict(), "tiles": count * len(program.tiles),
                "folds": count * sum(len(t.folds) for t in program.tiles), "commands": count * len(program.commands),
                "config_bytes": count * program.config_bytes, "data_bytes": count * program.data_bytes,
                "macs_issued": count * program.macs_issued}
    if count > 1:
        schedule["jobs"] = count
    return schedule


_COUNTERS = ("cycles", "busy_cycles", "in_stall_cycles", "out_stall_cycles", "macs")


def _stats(accelerator, plan, program, cycles, counters=None, count=1):
    """LayerStats of ``count`` jobs of ``program``: ``cycles`` and ``counters`` (read from the device; None:
    the cost model's figures) are their totals."""
    design = accelerator.design
    busy = sum(c.count for c in program.commands if c.op == "STEPS")   # steps issued (full programs)
    return LayerStats(
        op=plan.kind, shape={"input": [list(s) for s in plan.input_shapes] if count > 1 or len(plan.input_shapes) > 1
                             else list(plan.input_shape), "output": list(plan.output_shape)}, macs=plan.macs,
        cycles=cycles, pes=accelerator.pes,
        bytes_in=count * sum(run.beats for run in program.runs) * design.beat_bytes,
        bytes_out=count * compiler.output_bytes(design, program), jobs=count,
        busy_cycles=counters["busy_cycles"] if counters else count * busy,
        in_stall_cycles=counters["in_stall_cycles"] if counters else 0,
        out_stall_cycles=counters["out_stall_cycles"] if counters else 0,
        array_macs=counters["macs"] if counters else count * program.macs_issued,
        extra={"estimated": counters is None, "mapping": plan.schedule["mapping"],
               "config_bytes": count * program.config_bytes, "data_bytes": count * program.data_bytes})


def estimate(accelerator, plan, dma):
    """LayerStats of the plan from the closed-form cycle model (no simulation); a batch_matmul's jobs all
    have the plan's program's shape, so its cycles are that program's times the jobs."""
    program = program_of(accelerator, plan)
    count = batch_count(plan.layer, plan.input_shapes)
    return _stats(accelerator, plan, program, count * cost.program_cycles(accelerator.design, program, dma),
                  count=count)


def _run_job(design, device, program, gemm, source, cycle_budget):
    """One job: ``program`` on ``device`` with ``gemm``'s requantization and ``source``; (flat output, counters)."""
    stream = compiler.pack_stream(design, program, gemm, source)
    device.configure(OUTPUT_ZERO_POINT=gemm.output_zero_point, ACT_MIN=gemm.act_min, ACT_MAX=gemm.act_max,
                     REQUANT_MODE=int(gemm.rounding != DOUBLE))
    device.dma_send(stream)
    received = device.dma_receive(compiler.output_bytes(design, program))
    counters = device.run(cycle_budget or cost.cycle_bound(design, program, device.dma))
    return compiler.unpack_output(design, program, received), counters


def run_plan(accelerator, plan, device, *inputs, cycle_budget=None):
    """Run the plan on ``device`` (one job; a batch_matmul one per batch element); return (int8 output,
    LayerStats)."""
    design = accelerator.design
    program = program_of(accelerator, plan)
    if plan.kind != "batch_matmul":
        (x,) = inputs
        gemm, source = compiler.operands_of(plan.layer, x)
        out, counters = _run_job(design, device, program, gemm, source, cycle_budget)
        totals = {name: getattr(counters, name) for name in _COUNTERS}
        return out.reshape(plan.output_shape), _stats(accelerator, plan, program, counters.cycles, totals)
    layer = plan.layer
    parts, shape = compiler.batch_matmul_operands(layer, *inputs)
    if tuple(shape) != tuple(plan.output_shape):
        raise ParameterError(f"inputs of shapes {[list(x.shape) for x in inputs]} give a {list(shape)} output, "
                             f"but the plan was made for {list(plan.output_shape)}")
    mapping = compiler.Mapping.from_dict(plan.schedule["mapping"])
    outs, totals = [], dict.fromkeys(_COUNTERS, 0)
    for gemm, source, rhs in parts:
        # the same mapping and layout; only the stationary operand (this element's rhs) differs
        structure = compiler.structure_of(layer, *plan.input_shapes, rhs=rhs)
        element = compiler.compile_program(design, structure, mapping)
        out, counters = _run_job(design, device, element, gemm, source, cycle_budget)
        outs.append(out)
        for name in _COUNTERS:
            totals[name] += getattr(counters, name)
    stats = _stats(accelerator, plan, program, totals["cycles"], totals, count=len(parts))
    return np.stack(outs).reshape(plan.output_shape), stats
