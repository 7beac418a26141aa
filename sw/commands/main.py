"""The `accelkit` command line."""

import argparse
import importlib
import sys

from ...errors import AccelkitError
from ..execution.executors import BACKENDS
from . import arguments

__all__ = ["main"]


def _common(parser):
    parser.add_argument("--accel", default="gemm", help="registered accelerator (see `accelkit accelerators`)")
    parser.add_argument("--params", default="", help="accelerator parameters, e.g. rows=8,cols=8")
    parser.add_argument("--backend", choices=BACKENDS, default="verilator", help="simulator, or `model` for the golden and cost models (default: verilator)")
    parser.add_argument("--dma-bytes", type=arguments.dma_bytes, default=8, help="DMA bytes per cycle (default 8)")
    parser.add_argument("--dma-latency", type=arguments.dma_latency, default=0, help="DMA latency in cycles (default 0)")
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

    prune = commands.add_parser("prune", help="magnitude-prune an int8 model's CONV_2D/DEPTHWISE_CONV_2D/"
                                "FULLY_CONNECTED/TRANSPOSE_CONV weights to a sparsity per layer")
    prune.add_argument("model", help="an int8 .tflite file or a bundled model name")
    prune.add_argument("--sparsity", type=arguments.sparsity, required=True,
                       help="fraction of each layer's weights set to zero, in [0, 1) (e.g. 0.8)")
    prune.add_argument("--layer", type=arguments.layer_sparsity, action="append", metavar="INDEX=SPARSITY",
                       help="operator INDEX's own sparsity (repeatable), e.g. --layer 5=0 keeps operator 5 dense")
    prune.add_argument("--granularity", choices=("channel", "layer"), default="channel",
                       help="rank weights per output channel (default: each channel pruned to the sparsity) "
                       "or over the whole layer")
    prune.add_argument("--output", required=True, metavar="OUT.tflite")
    prune.add_argument("--json", metavar="PATH")

    from ..hardware.devices import part_names
    resources = commands.add_parser("resources", help="resources (LUT logic and RAM, FF, DSP, BRAM), logic depth, "
                                    "Fmax and fit of a design on an FPGA part")
    resources.add_argument("--accel", default="gemm")
    resources.add_argument("--params", default="")
    resources.add_argument("--target", choices=part_names(), default="xc7z020",
                           help="xc7z020 (PYNQ-Z1/Z2) and xck26 (KV260): Yosys synth_xilinx, Fmax only if an ECP5 "
                           "result is cached; ecp5-85f: Yosys + nextpnr place and route (minutes; cached)")
    resources.add_argument("--json", metavar="PATH")

    from . import llm as llm_cmd
    llm = commands.add_parser("llm", help="generate text with a llama GGUF, quantized MatMuls on the accelerator")
    _common(llm)
    llm_cmd.add_arguments(llm)

    from . import export as export_cmd
    export = commands.add_parser("export", help="a Vivado project for a PYNQ board (Verilog, TCL, build script), "
                                 "or a bitstream built here for an ECP5 board")
    export_cmd.add_arguments(export)

    from . import replay as replay_cmd
    replaying = commands.add_parser("replay", help="play a recorded device trace on another device and check it")
    replay_cmd.add_arguments(replaying)

    from . import dse as dse_cmd
    explore = commands.add_parser("dse", help="design-space exploration: optuna over the accelerator's parameters, "
                                  "Pareto front, Yosys and RTL confirmation")
    dse_cmd.add_arguments(explore)

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


#: Exit codes: a clean error (bad input, failed tool) and a defect of accelkit itself.
ERROR_EXIT = 2
INTERNAL_ERROR_EXIT = 70        # EX_SOFTWARE of sysexits.h


#: command -> (module relative to this package, function taking the parsed arguments)
_COMMANDS = {"layer": (".layer", "run"), "run": (".run", "run"), "diff": (".diff", "run"),
             "quantize": ("..quantization.pot", "quantize_main"), "prune": ("..quantization.prune", "prune_main"), "resources": (".resources", "run"),
             "llm": (".llm", "run"), "export": (".export", "run"), "bench": (".bench", "run"),
             "replay": (".replay", "run"), "dse": (".dse", "run")}


def _dispatch(args):
    if args.command == "accelerators":
        return _list_accelerators(args)
    module, function = _COMMANDS[args.command]
    return getattr(importlib.import_module(module, __package__), function)(args)


def _command(args):
    arguments.check_command(args)
    if args.command in ("run", "diff"):
        # checks the model, and runs it in a child process if a LiteRT kernel may abort on it
        from ..frontends.tflite.guard import run_contained
        return run_contained(lambda checked: _handled(_dispatch, checked), args)
    return _dispatch(args)


def _handled(function, args):
    """``function(args)`` with every failure turned into a message and an exit code."""
    try:
        return function(args)
    except AccelkitError as error:
        print(f"accelkit: error: {error}", file=sys.stderr)
        return ERROR_EXIT
    except KeyboardInterrupt:
        print("accelkit: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("accelkit: error: out of memory (the sizes asked for do not fit this machine; try smaller ones)",
              file=sys.stderr)
        return ERROR_EXIT
    except BrokenPipeError:         # `accelkit ... | head`: the reader left; nothing to report
        return ERROR_EXIT
    except Exception:               # noqa: BLE001 - a defect of accelkit, reported as such
        import traceback
        traceback.print_exc()
        print("accelkit: internal error (a bug in accelkit, not in your input): please file an issue with the "
              "accelkit maintainers, giving the command line, the accelkit version and the "
              "traceback above", file=sys.stderr)
        return INTERNAL_ERROR_EXIT


def main(argv=None):
    args = build_parser().parse_args(argv)
    return _handled(_command, args)


if __name__ == "__main__":
    sys.exit(main())
