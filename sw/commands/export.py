"""`accelkit export`: a Vivado project (Verilog, TCL, build script, README) for a PYNQ board."""

from ...accelerators.base import get_accelerator, parse_params
from ..hardware.deploy.boards import BOARDS
from ..hardware.deploy.export import export_design
from ..reports.output import console, progress_printer, provenance, table, write_json

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("out_dir", metavar="OUT/", help="folder to write the project into")
    parser.add_argument("--accel", default="gemm", help="registered accelerator (see `accelkit accelerators`)")
    parser.add_argument("--params", default="", help="accelerator parameters, e.g. rows=8,cols=8")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS), help="target board")
    parser.add_argument("--clock-mhz", type=float, default=None,
                        help="fabric clock (rounded down to one the PS makes); default: the design's measured "
                             "ECP5 Fmax when cached, else a safe default")
    parser.add_argument("--json", metavar="PATH", help="write what was exported as JSON")


def run(args):
    from importlib.metadata import version
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    result = export_design(accelerator, args.board, args.out_dir, clock_mhz=args.clock_mhz,
                           generator=f"accelkit {version('accelkit')}", progress=progress_printer())
    design = result.design
    rows = [[segment.slave, f"0x{segment.offset:08X}", f"0x{segment.range:X}"]
            for segment in design.addresses if segment.master.startswith(design.board.ps_cell)]
    console.print(table(f"{design.top} on {design.board.name}: address map", ["slave", "base", "range"], rows))
    console.print(f"fabric clock {design.clock_mhz:g} MHz ({result.clock_source})")
    console.print(f"build with: {result.out_dir}/build.sh   (Vivado; not run by accelkit)")
    if args.json:
        write_json(args.json, provenance("export", accelerator, board=design.board.name,
                                         clock_mhz=design.clock_mhz, clock_source=result.clock_source,
                                         files=[str(path) for path in result.files]))
    return 0
