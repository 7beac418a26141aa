"""`accelkit export`: everything a user needs to build an accelerator's bitstream with Vivado.

The output folder holds the Verilog top, the Vivado TCL (:mod:`.vivado_tcl`),
``build.sh``, ``deployment.json`` (board, clock and where it came from, the
address map, the register map, the IP's VLNV: what the board-side driver and
the synthetic handoff read) and a README for the user.
"""

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ....errors import ParameterError
from .block_design import ACCEL_CELL, DMA_CELL, BlockDesign, accelerator_vlnv, block_design
from .boards import SAFE_DEFAULT_MHZ, get_board
from .vivado_tcl import build_tcl

__all__ = ["ExportResult", "export_design", "default_clock", "deployment_record", "DEPLOYMENT_FILE"]

DEPLOYMENT_FILE = "deployment.json"
_FORMAT = 1


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_design` wrote and the clock it chose (``clock_source`` says why)."""

    out_dir: Path
    design: BlockDesign
    requested_mhz: float
    clock_source: str
    files: tuple


def default_clock(verilog: str | None, top: str) -> tuple[float, str]:
    """(MHz, where it came from): the cached ECP5 Fmax of ``verilog`` (the design as the ECP5 timing flow
    converts it; None when it was never converted), or :data:`SAFE_DEFAULT_MHZ`.

    Only a cached figure is used; this never starts place and route.
    """
    try:
        from ..timing import cached_timing      # the ECP5 timing flow (sw/hardware/timing.py)
    except ImportError:
        cached_timing = None
    result = cached_timing(verilog, top) if (cached_timing and verilog is not None) else None
    if result is None:
        return SAFE_DEFAULT_MHZ, (f"no measured Fmax of this design is cached (run the ECP5 timing flow first); "
                                  f"using the safe default of {SAFE_DEFAULT_MHZ:g} MHz")
    return float(result.fmax_mhz), f"measured ECP5-85F Fmax {result.fmax_mhz:.1f} MHz (worst placer seed)"


def deployment_record(design: BlockDesign, register_map, *, accelerator=None, params=None,
                      clock_source="", synthetic=False) -> dict:
    """The JSON-able description of an exported design (addresses, registers, clock)."""
    board = design.board
    return {
        "format": _FORMAT,
        "synthetic": bool(synthetic),
        "accelerator": accelerator,
        "params": dict(params or {}),
        "top": design.top,
        "vlnv": accelerator_vlnv(design.top),
        "board": board.name,
        "part": board.part,
        "ps": board.ps,
        "data_width": design.data_width,
        "clock_mhz": design.clock_mhz,
        "clock_divisors": list(design.clock_divisors),
        "clock_source": clock_source,
        "cells": {"accelerator": ACCEL_CELL, "dma": DMA_CELL, "ps": board.ps_cell},
        "address_map": [{"master": s.master, "slave": s.slave, "offset": s.offset, "range": s.range}
                        for s in design.addresses],
        "registers": [{"name": r.name, "offset": r.offset, "access": r.access, "width": r.width,
                       "signed": r.signed, "doc": r.doc} for r in register_map],
    }


_BUILD_SH = """#!/bin/sh
# Builds {top}.bit and {top}.hwh with Vivado ({vivado} or newer on PATH).
set -e
cd "$(dirname "$0")"
if ! command -v vivado >/dev/null 2>&1; then
    echo "build.sh: vivado is not on PATH (source <Vivado>/settings64.sh first)" >&2
    exit 1
fi
vivado -mode batch -nojournal -log build.log -source build.tcl
"""

_README = """# {top} for {board_title}

Exported by {generator} from accelerator `{accelerator}` with parameters `{params}`.

## Build the bitstream (needs Vivado {vivado} or newer, and the {board_title} board files)

    ./build.sh        # or: vivado -mode batch -source build.tcl

It packages `{top}.v` as an IP, builds the block design below, runs synthesis and
implementation, and writes `{top}.bit` and `{top}.hwh` here (PYNQ loads the pair by
base name). `timing_summary.txt` and `utilization.txt` come with them. The build
stops without a bitstream when timing is not met at the fabric clock; set
`ACCELKIT_ALLOW_TIMING_FAILURE=1` to keep it anyway. `ACCELKIT_JOBS` sets Vivado's
parallel jobs (4 by default).

The board files must be on Vivado's board repository path
(`set_param board.repoPaths ...` in your Vivado_init.tcl) for `{board_part}`.

## What the block design holds

- {ps_ip} (`{ps_cell}`) with its board preset; fabric clock {clock:g} MHz
  (IO PLL / {div0} / {div1}). {clock_source}.
- AXI DMA (`{dma}`) in simple mode (no scatter-gather, {dma_bits}-bit length: transfers up to
  64 MiB), memory side on `{slave}`, streams to and from the accelerator.
- The accelerator (`{accel}`, VLNV `{vlnv}`): AXI4-Lite registers, AXI4-Stream in and out, `irq`.
- SmartConnects for the control and memory paths, a reset block, an interrupt concat
  (DMA MM2S, DMA S2MM, accelerator) into `{irq}`.

## Address map (seen from `{ps_cell}`)

| slave | base | range |
|---|---|---|
{address_rows}

## Registers of the accelerator (offsets from its base)

| name | offset | access | doc |
|---|---|---|---|
{register_rows}

`deployment.json` holds the same in machine-readable form.

## What is and is not verified

accelkit has not run this TCL in Vivado. Its tests run it under `tclsh` with stub
Vivado commands that record the block design and check the cells, connections,
address map and clock above; they also run the accelerator's drivers through PYNQ's
own Overlay, DMA and MMIO classes against the RTL simulation of `{top}.v` with a
synthetic hardware handoff made from this address map. Vivado's IP packaging,
timing closure at {clock:g} MHz and the real AXI DMA are checked only by this build
and a board.
"""


def export_design(accelerator, board_name, out_dir, *, clock_mhz=None, verilog=None, generator="accelkit",
                  progress=None) -> ExportResult:
    """Write the Vivado project for ``accelerator`` on board ``board_name`` into ``out_dir``.

    ``clock_mhz`` is the fabric clock asked for (rounded down to one the PS makes);
    by default the design's cached ECP5 Fmax, else :data:`SAFE_DEFAULT_MHZ`.
    ``verilog`` is the top's text (converted from the accelerator's shell when None).
    """
    board = get_board(board_name)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"export folder {str(out)!r} exists and is not a folder")
    if verilog is None:
        from ....sim.verilator import convert_verilog
        from ...execution.devices import design_key
        verilog = convert_verilog(accelerator.shell(), accelerator.top_name, design_key(accelerator), progress)
    top = accelerator.top_name
    if clock_mhz is None:
        from ..figures import cached_ecp5_verilog
        requested, source = default_clock(cached_ecp5_verilog(accelerator), top)
    else:
        if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)) or not clock_mhz > 0:
            raise ParameterError(f"--clock-mhz must be a positive number, not {clock_mhz!r}")
        requested, source = float(clock_mhz), f"asked for {clock_mhz:g} MHz"
    data_width = accelerator.params.get("data_width", 64)
    design = block_design(board, top=top, data_width=data_width, clock_mhz=requested)
    if design.clock_mhz != requested:
        source += f"; the PS makes {design.clock_mhz:g} MHz at most below that"
    register_map = accelerator.register_map()
    record = deployment_record(design, register_map, accelerator=accelerator.name, params=accelerator.params,
                               clock_source=source)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        f"{top}.v": verilog,
        "build.tcl": build_tcl(design, generator=generator),
        "build.sh": _BUILD_SH.format(top=top, vivado=VIVADO_VERSION),
        DEPLOYMENT_FILE: json.dumps(record, indent=2) + "\n",
        "README.md": _readme(design, record, accelerator, generator),
    }
    for name, text in files.items():
        (out / name).write_text(text)
    script = out / "build.sh"
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if progress:
        progress(f"wrote {', '.join(files)} to {out}")
    return ExportResult(out_dir=out, design=design, requested_mhz=requested, clock_source=source,
                        files=tuple(out / name for name in files))


#: The Vivado release the TCL is written for (PYNQ 3.x images' release).
VIVADO_VERSION = "2022.1"

_BOARD_TITLES = {"pynq-z1": "PYNQ-Z1", "pynq-z2": "PYNQ-Z2", "kv260": "Kria KV260"}


def _readme(design, record, accelerator, generator):
    board = design.board
    address_rows = "\n".join(f"| `{entry['slave']}` | 0x{entry['offset']:08X} | 0x{entry['range']:X} |"
                             for entry in record["address_map"] if entry["master"].startswith(board.ps_cell))
    register_rows = "\n".join(f"| {r['name']} | 0x{r['offset']:02X} | {r['access']} | {r['doc']} |"
                              for r in record["registers"])
    params = ",".join(f"{k}={v}" for k, v in accelerator.params.items())
    return _README.format(
        top=design.top, board_title=_BOARD_TITLES.get(board.name, board.name), generator=generator,
        accelerator=accelerator.name, params=params, vivado=VIVADO_VERSION, board_part=board.board_part,
        ps_ip=board.ps_ip, ps_cell=board.ps_cell, clock=design.clock_mhz, div0=design.clock_divisors[0],
        div1=design.clock_divisors[1], clock_source=record["clock_source"][:1].upper() + record["clock_source"][1:],
        dma=DMA_CELL, dma_bits=26, slave=board.slave, accel=ACCEL_CELL, vlnv=record["vlnv"], irq=board.irq,
        address_rows=address_rows, register_rows=register_rows)
