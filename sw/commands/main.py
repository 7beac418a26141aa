"""The `accelkit` command line."""

import argparse
import sys

from ...errors import AccelkitError
from ..execution.executors import BACKENDS

__all__ = ["main"]


def _common(parser):
    parser.add_argument("--accel", default="gemm", help="registered accelerator (see `accelkit accelerators`)")
    parser.add_argument("--params", default="", help="accelerator parameters, e.g. rows=8,cols=8")
    parser.add_argument("--backend", choices=BACKENDS, default="verilator", help="simulator, or `model` for the golden and cost models (default: verilator)")
    parser.add_argument("--dma-bytes", type=int, default=8, help="DMA bytes per cycle (default 8)")
    parser.add_argument("--dma-latency", type=int, default=0, help="DMA latency in cycles (default 0)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")


def build_parser():
    parser = argparse.ArgumentParser(prog="accelkit", description="DNN accelerator co-design on cycle-accurate RTL")
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("accelerators", help="list registered accelerators and their parameters")
    listing.add_argument("--json", metavar="PATH")

    from . import layer as layer_cmd
    from . import bench
    layer = commands.add_parser("layer", help="run one random int8 layer on RTL and check it")
    _common(layer)
    layer_cmd.add_arguments(layer)

    from . import run as run_cmd
    model = commands.add_parser("run", help="run a .tflite model with the accelerator's layers on RTL")
    _common(model)
    run_cmd.add_arguments(model)

    from . import diff as diff_cmd
    difference = commands.add_parser("diff", help="compare every layer of a model across LiteRT, TVM, the fast "
                                     "model and RTL, and localize where outputs diverge")
    _common(difference)
    diff_cmd.add_arguments(difference)

    quantize = commands.add_parser("quantize", help="move CONV_2D/FC weights onto a power-of-two grid")
    quantize.add_argument("model", help="an int8 .tflite file or a bundled model name")
    quantize.add_argument("--method", choices=("pot", "apot", "msq"), required=True)
    quantize.add_argument("--output", required=True, metavar="OUT.tflite")
    quantize.add_argument("--json", metavar="PATH")

    resources = commands.add_parser("resources", help="Yosys resource estimate (LUT, FF, DSP, BRAM) for xc7")
    resources.add_argument("--accel", default="gemm")
    resources.add_argument("--params", default="")
    resources.add_argument("--json", metavar="PATH")

    from . import export as export_cmd
    export = commands.add_parser("export", help="a Vivado project for a PYNQ board (Verilog, TCL, build script)")
    export_cmd.add_arguments(export)

    benchmark = commands.add_parser("bench", help="run a benchmark")
    _common(benchmark)
    bench.add_arguments(benchmark)
    return parser


def _list_accelerators(args):
    from ...accelerators.base import registry
    from ..reports.output import console, provenance, table, write_json
    rows, record = [], []
    for name, cls in sorted(registry().items()):
        if isinstance(cls, str):
            rows.append([name, cls, "", ""])
            record.append({"name": name, "available": False, "reason": cls})
            continue
        params = "\n".join(f"{p.name}: {p.describe()} — {p.doc}" for p in cls.space.params)
        rows.append([name, cls.description, ", ".join(cls.kinds), params])
        record.append({"name": name, "available": True, "description": cls.description, "kinds": list(cls.kinds),
                       "params": [{"name": p.name, "default": p.default, "min": p.minimum, "max": p.maximum,
                                   "power_of_two": p.power_of_two, "multiple_of": p.multiple_of, "doc": p.doc}
                                  for p in cls.space.params]})
    console.print(table("registered accelerators", ["name", "description", "layer kinds", "parameters"], rows))
    if args.json:
        write_json(args.json, provenance("accelerators", accelerators=record))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "accelerators":
            return _list_accelerators(args)
        if args.command == "layer":
            from . import layer as layer_cmd
            return layer_cmd.run(args)
        if args.command == "run":
            from . import run as run_cmd
            return run_cmd.run(args)
        if args.command == "diff":
            from . import diff as diff_cmd
            return diff_cmd.run(args)
        if args.command == "quantize":
            from ..quantization.pot import quantize_main
            return quantize_main(args)
        if args.command == "resources":
            from . import resources as resources_cmd
            return resources_cmd.run(args)
        if args.command == "export":
            from . import export as export_cmd
            return export_cmd.run(args)
        if args.command == "bench":
            from . import bench
            return bench.run(args)
    except AccelkitError as error:
        print(f"accelkit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accelkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
