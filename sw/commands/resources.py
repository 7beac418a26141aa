"""`accelkit resources`: an accelerator's resources, logic depth, Fmax and fit on one FPGA part."""

from ...accelerators.base import get_accelerator, parse_params
from ..hardware.devices import get_part
from ..hardware.figures import design_figures, design_verilog
from ..hardware.synthesis import estimate_resources
from ..reports.output import console, progress_printer, provenance, table, write_json

__all__ = ["run", "accelerator_resources", "pe_array_resources", "print_figures"]


def accelerator_resources(accelerator, progress=None, family="xc7"):
    """Yosys ``synth_xilinx`` estimate of the accelerator's whole shell (:class:`ResourceEstimate`)."""
    return estimate_resources(design_verilog(accelerator, progress), accelerator.top_name, family=family,
                              progress=progress)


def pe_array_resources(accelerator, progress=None):
    """Yosys estimate of the accelerator's PE grid alone (its ``pe_array()`` component)."""
    from amaranth.back import verilog
    top = f"{accelerator.top_name}_pe_array"
    if progress:
        progress(f"converting {top} to Verilog")
    return estimate_resources(verilog.convert(accelerator.pe_array(), name=top, emit_src=False), top,
                              progress=progress)


def _share(used, capacity):
    return f"{used / capacity:.1%}" if used is not None else ""


def print_figures(title, figures):
    """The table and notes of one :func:`design_figures` result."""
    usage, capacity, units = figures["usage"], figures["capacity"], figures["units"]
    rows = [
        [f"LUT ({units['lut']}), logic and RAM", usage["lut"], capacity["lut"], _share(usage["lut"], capacity["lut"])],
        ["  of which logic", figures["lut_logic"] if figures["lut_logic"] is not None else "?", "", ""],
        [f"  of which RAM, {figures['lut_ram_unit']}", figures["lut_ram"] if figures["lut_ram"] is not None else "?",
         "", ""],
        ["FF", usage["ff"], capacity["ff"], _share(usage["ff"], capacity["ff"])],
        [f"DSP ({units['dsp']})", usage["dsp"], capacity["dsp"], _share(usage["dsp"], capacity["dsp"])],
        [f"BRAM ({units['bram']})", usage["bram"], capacity["bram"], _share(usage["bram"], capacity["bram"])],
        ["logic depth (cells, longest combinational path)",
         figures["logic_depth"] if figures["logic_depth"] is not None else "?", "", ""],
    ]
    timing = figures["timing"]
    if timing is None:
        rows.append(["Fmax", "not measured", "", ""])
    else:
        path = timing["critical_path"]
        rows.append([f"Fmax ({timing['source']})", f"{timing['fmax_mhz']:.1f} MHz", "", ""])
        rows.append(["critical path", f"{path['from']} -> {path['to']}", "", ""])
    console.print(table(f"{title}: {figures['flow']}", ["resource", "used", "available", "share"], rows))
    console.print(f"fits the {figures['title']}: {'yes' if figures['fits'] else 'NO'}", highlight=False)
    for note in figures["notes"]:
        console.print(note, highlight=False)


def run(args):
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    part = get_part(args.target)
    figures = design_figures(accelerator, part, progress=progress_printer())
    print_figures(f"{accelerator!r} on {part.title}", figures)
    if args.json:
        write_json(args.json, provenance("resources", accelerator, target=part.name, **figures))
    return 0
