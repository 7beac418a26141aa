"""One accelerator design's hardware figures on one FPGA part: resources, logic depth, Fmax and fit.

Xilinx parts get Yosys ``synth_xilinx`` figures (no place and route exists for
them here); the ECP5-85F gets nextpnr-ecp5's placed-and-routed utilisation and
Fmax. The ECP5 Fmax is the one measured clock accelkit has, so it is shown for
the Xilinx parts too, labelled as a cautious stand-in (a Zynq fabric is usually
faster than an ECP5 for the same logic), and only when it is already cached:
:func:`measured_clock` never starts a place-and-route run.
"""

from __future__ import annotations

from ...hw.dsp import ECP5_TIMING
from ...sim.verilator import cached_verilog, convert_verilog
from ..execution.devices import design_key
from .devices import RESOURCES, FpgaPart, get_part
from .synthesis import estimate_resources
from .timing import TIMING_SOURCE, cached_timing, ecp5_timing

__all__ = ["design_verilog", "ecp5_verilog", "cached_ecp5_verilog", "design_figures", "measured_clock",
           "STAND_IN_NOTE"]

#: What a report says beside an ECP5 Fmax used for a Zynq.
STAND_IN_NOTE = ("the one measured clock (ECP5-85F place and route, worst placer seed); "
                 "a cautious stand-in for a Zynq, not a Zynq timing report")


def design_verilog(accelerator, progress=None) -> str:
    """The accelerator's top-level Verilog (cached by its design key)."""
    return convert_verilog(accelerator.shell(), accelerator.top_name, design_key(accelerator), progress)


def ecp5_verilog(accelerator, progress=None) -> str:
    """The top-level Verilog the ECP5 timing flow places and routes (cached by design key).

    It is elaborated for the ECP5 family, so registered products become MULT18X18D
    blocks with their own input and output registers (``hw/dsp.py``); the
    simulators and the Xilinx figures use :func:`design_verilog`, the plain form
    with the same cycle-by-cycle behaviour.
    """
    return convert_verilog(accelerator.shell(), accelerator.top_name, design_key(accelerator) + "-ecp5", progress,
                           platform=ECP5_TIMING)


def cached_ecp5_verilog(accelerator) -> str | None:
    """:func:`ecp5_verilog` if already converted, else None (never elaborates)."""
    return cached_verilog(design_key(accelerator) + "-ecp5")


def measured_clock(accelerator, progress=None):
    """(MHz, source) of the design's cached ECP5-85F place-and-route Fmax, or None; never runs a tool.

    A design that was placed and routed here was converted to Verilog through the
    cache, so when no Verilog is cached for its design key there is no Fmax to
    find either; the lookup then costs nothing (a report on the model backend
    need not elaborate the gateware).
    """
    verilog = cached_ecp5_verilog(accelerator)
    if verilog is None:
        return None
    result = cached_timing(verilog, accelerator.top_name)
    return None if result is None else (float(result.fmax_mhz), TIMING_SOURCE)


def _timing_dict(result):
    return {"fmax_mhz": result.fmax_mhz, "source": result.source, "target_mhz": result.target_mhz,
            "per_seed": dict(result.per_seed), "critical_path": {
                "from": result.path_from, "to": result.path_to, "cells": result.path_cells,
                "logic_ns": result.path_logic_ns, "routing_ns": result.path_routing_ns},
            "seconds": result.seconds, "available": dict(result.available or {})}


def design_figures(accelerator, part: FpgaPart | str, *, progress=None) -> dict:
    """Resources, logic depth, Fmax and fit of ``accelerator`` on ``part`` (a name or :class:`FpgaPart`).

    On a Xilinx part this runs Yosys (cached) and looks the ECP5 Fmax up in the
    cache; on the ECP5-85F it runs the place-and-route flow (cached by design
    hash). The result is JSON-able: ``part``, ``flow``, ``usage`` (over
    :data:`RESOURCES`, LUT RAM included in ``lut``), ``lut_logic``,
    ``lut_ram`` (in ``lut_ram_unit``), ``logic_depth``, ``timing`` (None when not measured),
    ``shares``, ``fits`` and ``notes``.
    """
    part = get_part(part) if isinstance(part, str) else part
    top = accelerator.top_name
    notes = []
    if part.flow == "yosys-xilinx":
        verilog = design_verilog(accelerator, progress)
        estimate = estimate_resources(verilog, top, family=part.yosys_family, progress=progress)
        usage = {"lut": estimate.lut_total, "ff": estimate.ff, "dsp": estimate.dsp, "bram": estimate.bram36}
        lut_logic, lut_ram, depth = estimate.lut, estimate.lut_ram, estimate.logic_depth
        ram_unit = "LUT6 (RAM32M/RAM64M/SRL...)"
        ecp5 = cached_ecp5_verilog(accelerator)
        timing = None if ecp5 is None else cached_timing(ecp5, top)
        if timing is None:
            notes.append("Fmax not measured: no ECP5-85F place-and-route result of this design is cached "
                         "(`accelkit resources --target ecp5-85f` runs it)")
        else:
            notes.append(f"Fmax is {STAND_IN_NOTE}")
        flow = f"Yosys synth_xilinx -family {part.yosys_family} (not placed or routed)"
    else:
        timing = ecp5_timing(ecp5_verilog(accelerator, progress), top, progress=progress)
        used = timing.utilisation
        usage = {"lut": used.get("TRELLIS_COMB", 0), "ff": used.get("TRELLIS_FF", 0),
                 "dsp": used.get("MULT18X18D", 0), "bram": used.get("DP16KD", 0)}
        cells = timing.cells
        # Before packing, from synth_ecp5: logic LUT4s, and distributed RAM as 16x4 RAM cells (how many
        # LUT4 halves nextpnr gives each is its business; TRELLIS_COMB above counts them all).
        lut_logic = None if cells is None else cells.get("LUT4", 0)
        lut_ram = None if cells is None else cells.get("TRELLIS_DPR16X4", 0)
        ram_unit = "TRELLIS_DPR16X4 (16x4 RAM)"
        depth = timing.logic_depth
        notes.append("LUT is nextpnr's TRELLIS_COMB after place and route (logic, carry and RAM LUT4s); "
                     "logic LUT4s and RAM cells are Yosys synth_ecp5's counts")
        flow = "Yosys synth_ecp5 + nextpnr-ecp5 (out of context)"
    shares = part.shares(usage)
    return {"part": part.name, "title": part.title, "flow": flow, "usage": usage, "units": dict(part.units),
            "capacity": dict(part.capacity), "lut_logic": lut_logic, "lut_ram": lut_ram, "lut_ram_unit": ram_unit,
            "logic_depth": depth,
            "timing": None if timing is None else _timing_dict(timing), "shares": shares,
            "fits": all(share <= 1.0 for share in shares.values()), "notes": notes}


assert RESOURCES == ("lut", "ff", "dsp", "bram")     # the usage dicts above are spelt out for these
