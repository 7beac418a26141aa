"""`accelkit resources`: Yosys resource estimate of an accelerator, against the PYNQ-Z1's Zynq-7020."""

from ...accelerators.base import get_accelerator, parse_params
from ...sim.verilator import convert_verilog
from ..execution.devices import design_key
from ..reports.output import console, progress_printer, provenance, table, write_json
from ..hardware.synthesis import estimate_resources

__all__ = ["ZYNQ_7020", "run", "accelerator_resources", "pe_array_resources"]

#: Zynq-7020 (PYNQ-Z1/Z2) programmable logic.
ZYNQ_7020 = {"lut": 53200, "ff": 106400, "dsp": 220, "bram36": 140}


def accelerator_resources(accelerator, progress=None):
    verilog = convert_verilog(accelerator.shell(), accelerator.top_name, design_key(accelerator), progress)
    return estimate_resources(verilog, accelerator.top_name, progress=progress)


def pe_array_resources(accelerator, progress=None):
    """Yosys estimate of the accelerator's PE grid alone (its ``pe_array()`` component)."""
    from amaranth.back import verilog
    top = f"{accelerator.top_name}_pe_array"
    if progress:
        progress(f"converting {top} to Verilog")
    return estimate_resources(verilog.convert(accelerator.pe_array(), name=top, emit_src=False), top,
                              progress=progress)


def run(args):
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    estimate = accelerator_resources(accelerator, progress_printer())
    rows = [[name.upper(), getattr(estimate, name), ZYNQ_7020[name], getattr(estimate, name) / ZYNQ_7020[name]]
            for name in ("lut", "ff", "dsp", "bram36")]
    # LUTs used as distributed RAM or shift registers come out of the same LUT budget.
    rows.insert(1, ["LUT as RAM", estimate.lut_ram, ZYNQ_7020["lut"], estimate.lut_ram / ZYNQ_7020["lut"]])
    console.print(table(f"{accelerator!r}, Yosys synth_xilinx (xc7)", ["resource", "used", "Zynq-7020", "share"], rows))
    used = {"lut": estimate.lut_total, "ff": estimate.ff, "dsp": estimate.dsp, "bram36": estimate.bram36}
    fits = all(used[name] <= limit for name, limit in ZYNQ_7020.items())
    console.print(f"fits a PYNQ-Z1 (Zynq-7020), logic and RAM LUTs together: {'yes' if fits else 'NO'}; "
                  f"$mul cells before mapping: {estimate.mul_cells_before_mapping}")
    if args.json:
        write_json(args.json, provenance("resources", accelerator, resources=estimate.as_dict(),
                                         fits_zynq_7020=fits))
    return 0
