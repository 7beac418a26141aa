"""`accelkit bench timing`: every registered accelerator at its defaults on the PYNQ-Z1's part and the ECP5-85F.

One row per design: LUT (logic and RAM apart), FF, DSP and BRAM36 from Yosys
``synth_xilinx`` on the xc7z020 with its fit, and the placed-and-routed Fmax on
the ECP5-85F (worst of the fixed placer seeds) with the critical path's first
and last cell. Place and route of an 8x8 GEMM takes about ten minutes here, so
this is a benchmark; results are cached by design hash, so a second run only
reads them.
"""

from ...accelerators.base import get_accelerator, parse_params, registry
from ...errors import ParameterError
from ..hardware.figures import design_figures
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["timing_bench"]


def _designs(args):
    """(name, accelerator) pairs: ``--only`` names (default: every registered accelerator), ``--params`` to all."""
    names = sorted(registry())
    if getattr(args, "only", None):
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in names]
        if unknown or not wanted:
            raise ParameterError(f"--only names {', '.join(unknown) or 'no accelerator'}; registered: "
                                 f"{', '.join(names)}")
        names = wanted
    params = parse_params(args.params)
    return [(name, get_accelerator(name, params)) for name in names]


def timing_bench(args):
    """Resources on the xc7z020 and Fmax on the ECP5-85F of each design, measured (cached) in one run."""
    progress = progress_printer()
    designs = _designs(args)
    results = []
    for index, (name, accelerator) in enumerate(designs, 1):
        progress(f"[{index}/{len(designs)}] {accelerator!r}: Yosys synth_xilinx on the xc7z020")
        zynq = design_figures(accelerator, "xc7z020", progress=progress)
        progress(f"[{index}/{len(designs)}] {accelerator!r}: place and route on the ECP5-85F")
        ecp5 = design_figures(accelerator, "ecp5-85f", progress=progress)
        results.append({"accelerator": name, "params": dict(accelerator.params), "xc7z020": zynq, "ecp5_85f": ecp5})
    rows = []
    for entry in results:
        zynq, timing = entry["xc7z020"], entry["ecp5_85f"]["timing"]
        path = timing["critical_path"]
        rows.append([entry["accelerator"], zynq["lut_logic"], zynq["lut_ram"], zynq["usage"]["ff"],
                     zynq["usage"]["dsp"], zynq["usage"]["bram"], zynq["logic_depth"] or "?",
                     "yes" if zynq["fits"] else "NO", f"{timing['fmax_mhz']:.1f}",
                     f"{path['from']} -> {path['to']}", path["cells"] if path["cells"] is not None else "?"])
    console.print(table("accelerators at their defaults: Yosys synth_xilinx on the xc7z020, place and route on the "
                        "ECP5-85F (worst placer seed)",
                        ["accelerator", "LUT", "LUT RAM", "FF", "DSP", "BRAM36", "logic depth", "fits xc7z020",
                         "Fmax MHz", "critical path", "cells on it"], rows))
    console.print("Fmax is the one measured clock (ECP5-85F place and route); for a Zynq it is a cautious "
                  "stand-in, not a Zynq timing report.", highlight=False)
    return provenance("bench timing", None, None, None, None, designs=results)
