"""`accelkit export`: a Vivado project (Verilog, TCL, build script, README) for a PYNQ board, or a
bitstream built here for an ECP5 board (the design behind a UART link)."""

from ...accelerators.base import get_accelerator, parse_params
from ...errors import ParameterError
from ..hardware.deploy.boards import BOARDS
from ..hardware.deploy.ecp5 import DEFAULT_BAUD, ECP5_BOARDS
from ..hardware.deploy.export import export_design
from ..reports.output import console, progress_printer, provenance, table, write_json
from . import arguments

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("out_dir", metavar="OUT/", help="folder to write the project into")
    parser.add_argument("--accel", default="gemm", help="registered accelerator (see `accelkit accelerators`)")
    parser.add_argument("--params", default="", help="accelerator parameters, e.g. rows=8,cols=8")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS) + sorted(ECP5_BOARDS),
                        help="target board: a PYNQ board gets a Vivado project; an ECP5 board a bitstream built here")
    parser.add_argument("--clock-mhz", type=float, default=None,
                        help="fabric clock (rounded down to one the PS makes); default: the design's measured "
                             "ECP5 Fmax when cached, else a safe default")
    parser.add_argument("--baud", type=arguments.positive_int("baud rate", 12_000_000), default=DEFAULT_BAUD,
                        help=f"ECP5 boards: the UART's baud rate (default {DEFAULT_BAUD})")
    parser.add_argument("--program", action="store_true",
                        help="ECP5 boards: load the bitstream with openFPGALoader (OPENFPGALOADER names the tool)")
    parser.add_argument("--params-file", metavar="PARAMS.json", help="the design's parameters as `accelkit dse "
                        "--export` writes them (its accelerator replaces --accel; --params override)")
    parser.add_argument("--model", action="append", default=[], metavar="MODEL",
                        help="also write MODEL's board program into OUT/MODEL.board/ (a .tflite file or a bundled "
                        "model; repeatable), for `accelkit-board run` on the board")
    parser.add_argument("--bundle", action="store_true",
                        help="also build the board-side wheel (accelkit_board) into OUT/")
    parser.add_argument("--json", metavar="PATH", help="write what was exported as JSON")


def _board_side(args, accelerator):
    """The board programs of ``--model`` and the wheel of ``--bundle``; their paths."""
    from pathlib import Path
    from ..hardware.deploy.board_program import write_program
    from ..hardware.deploy.bundle import build_bundle
    from ..zoo import resolve_model
    written = []
    for model in args.model:
        path = resolve_model(model)
        written.append(write_program(path, accelerator, Path(args.out_dir) / f"{path.stem}.board"))
        console.print(f"board program of {path.name}: {written[-1]}   (accelkit-board run {written[-1].name} "
                      "--bitfile ... on the board)", highlight=False)
    if args.bundle:
        written.append(build_bundle(args.out_dir))
        console.print(f"board-side wheel: {written[-1]}   (pip install it on the board)", highlight=False)
    return written


def run(args):
    from importlib.metadata import version
    from .arguments import check_output_folder
    name, params = args.accel, parse_params(args.params)
    if args.params_file:
        from ..execution.params_file import read_params_file
        name, from_file = read_params_file(args.params_file)
        params = {**from_file, **params}
    accelerator = get_accelerator(name, params)
    check_output_folder(args.out_dir, "OUT/")
    if args.board in ECP5_BOARDS:
        return _run_ecp5(args, accelerator)
    if args.program:
        raise ParameterError(f"--program loads a bitstream built here (boards {', '.join(sorted(ECP5_BOARDS))}); "
                             f"{args.board}'s is built by Vivado from the exported project")
    result = export_design(accelerator, args.board, args.out_dir, clock_mhz=args.clock_mhz,
                           generator=f"accelkit {version('accelkit')}", progress=progress_printer())
    board_side = _board_side(args, accelerator)
    design = result.design
    rows = [[segment.slave, f"0x{segment.offset:08X}", f"0x{segment.range:X}"]
            for segment in design.addresses if segment.master.startswith(design.board.ps_cell)]
    console.print(table(f"{design.top} on {design.board.name}: address map", ["slave", "base", "range"], rows))
    console.print(f"fabric clock {design.clock_mhz:g} MHz ({result.clock_source})")
    console.print(f"build with: {result.out_dir}/build.sh   (Vivado; not run by accelkit)")
    if args.json:
        write_json(args.json, provenance("export", accelerator, board=design.board.name,
                                         clock_mhz=design.clock_mhz, clock_source=result.clock_source,
                                         files=[str(path) for path in [*result.files, *board_side]]))
    return 0


def _run_ecp5(args, accelerator):
    from ..hardware.deploy.ecp5 import build_ulx3s, program_ulx3s
    if args.clock_mhz is not None:
        raise ParameterError(f"--clock-mhz: the {args.board} design runs on the board's 25 MHz oscillator; "
                             f"it cannot be set (got {args.clock_mhz:g})")
    result = build_ulx3s(accelerator, args.out_dir, board=args.board, baud=args.baud, progress=progress_printer())
    board_side = _board_side(args, accelerator)
    rows = [[name, str(count)] for name, count in sorted(result.utilisation.items())]
    console.print(table(f"{result.top} on {args.board}: cells used", ["cell", "used"], rows))
    console.print(f"Fmax {result.fmax_mhz:.1f} MHz at a {result.clock_mhz:g} MHz clock "
                  f"({'met' if result.meets_timing else 'NOT met'}); UART {result.baud} baud "
                  f"({result.divisor} cycles a bit); bitstream {result.bitstream}"
                  f"{' (cached build)' if result.cached else f' built in {result.seconds:.0f} s'}")
    if args.program:
        command = program_ulx3s(result.bitstream)
        console.print(f"loaded: {' '.join(command)}")
    if args.json:
        write_json(args.json, provenance("export", accelerator, board=args.board, ecp5=result.as_dict(),
                                         files=[str(path) for path in board_side]))
    return 0
