"""Checked command-line values: argparse ``type=`` functions and output-path checks.

Every value is checked where it enters, so a bad one ends as a usage error that
names the value, what was seen and what is accepted, before any build or
simulation starts. Bounds on values that reach the native simulator follow
what its C interface takes (see ``sim/verilator.py``) and what a run can finish.
"""

import argparse
import math
import os
import tempfile
from pathlib import Path

from ...driver.device import MAX_DMA_BYTES_PER_CYCLE, MAX_DMA_LATENCY
from ...errors import ParameterError

__all__ = [
    "MAX_SIZE", "MAX_CYCLE_BUDGET", "MAX_SEED", "positive_int", "non_negative_int", "bounded_int",
    "dma_bytes", "dma_latency", "cycle_budget", "sample_limit", "seed", "size", "finite_positive_float",
    "clock_mhz", "sparsity", "layer_sparsity", "check_output_path", "check_output_paths", "check_command", "layer_size", "MAX_LAYER_PRODUCT",
    "add_runner_arguments", "open_args_runner",
]

#: Largest layer dimension the ``layer`` command accepts (a larger one cannot be held in memory).
MAX_SIZE = 1 << 16
#: The native simulator's cycle counter is a signed 64-bit integer.
MAX_CYCLE_BUDGET = (1 << 63) - 1
#: numpy's seeds are unsigned; 2^64 - 1 is the largest that fits one word.
MAX_SEED = (1 << 64) - 1


def _integer(text, what):
    try:
        return int(str(text).strip(), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer, not {text!r}") from None


def bounded_int(minimum, maximum, what="value"):
    """An argparse type: an integer in ``minimum..maximum`` (inclusive)."""
    def parse(text):
        value = _integer(text, what)
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{what} must be in {minimum}..{maximum:,}, not {value:,}")
        return value
    parse.__name__ = what       # argparse names the type in its messages
    return parse


def positive_int(what="value", maximum=MAX_SIZE):
    """An argparse type: an integer in ``1..maximum``."""
    return bounded_int(1, maximum, what)


def non_negative_int(what="value", maximum=MAX_SIZE):
    """An argparse type: an integer in ``0..maximum``."""
    return bounded_int(0, maximum, what)


dma_bytes = bounded_int(1, MAX_DMA_BYTES_PER_CYCLE, "DMA bytes per cycle")
dma_latency = bounded_int(0, MAX_DMA_LATENCY, "DMA latency (cycles)")
cycle_budget = bounded_int(1, MAX_CYCLE_BUDGET, "cycle budget")
sample_limit = bounded_int(1, MAX_CYCLE_BUDGET, "sample limit")
seed = bounded_int(0, MAX_SEED, "seed")


def size(what):
    """An argparse type for a layer dimension: ``1..MAX_SIZE``."""
    return positive_int(what, MAX_SIZE)


def finite_positive_float(what="value", maximum=math.inf):
    """An argparse type: a finite float in ``(0, maximum]``."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        if not math.isfinite(value) or not 0 < value <= maximum:
            bound = f"at most {maximum:g}" if math.isfinite(maximum) else "finite"
            raise argparse.ArgumentTypeError(f"{what} must be positive and {bound}, not {text}")
        return value
    parse.__name__ = what
    return parse


clock_mhz = finite_positive_float("clock (MHz)", 1e6)


def sparsity(text):
    """An argparse type: a fraction in [0, 1) (``accelkit prune --sparsity``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sparsity must be a number in [0, 1), not {text!r}") from None
    if not math.isfinite(value) or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"sparsity must be in [0, 1) (the fraction of each layer's weights set "
                                         f"to zero), not {text}")
    return value


def layer_sparsity(text):
    """An argparse type: ``INDEX=SPARSITY`` (``accelkit prune --layer``), as (index, sparsity)."""
    index, equals, value = str(text).partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"--layer takes INDEX=SPARSITY (an operator index and a fraction in "
                                         f"[0, 1)), not {text!r}")
    return bounded_int(0, MAX_SIZE, "operator index")(index), sparsity(value)


def check_output_path(path, what="output"):
    """Check before any work that ``path`` can be written as a file; returns it as a Path.

    Creates the missing folders and a scratch file beside ``path`` (then removes
    it): that is the only test that holds for every file system and user.
    Raises ParameterError if the path names a directory or cannot be written.
    """
    if path is None:
        return None
    path = Path(path)
    if str(path) == "" or path.name in ("", ".", ".."):
        raise ParameterError(f"{what} path {str(path)!r} names no file")
    if path.is_dir():
        raise ParameterError(f"{what} path {str(path)!r} is a directory; name a file")
    existing = path.parent
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ParameterError(f"{what} path {str(path)!r} cannot be written: {str(existing)!r} is a file, "
                             "not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as error:
        raise ParameterError(f"{what} path {str(path)!r} cannot be written: "
                             f"{error.strerror or error}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ParameterError(f"{what} path {str(path)!r} exists and is not writable")
    return path


def check_output_folder(path, what="output folder"):
    """Check before any work that ``path`` is, or can be made, a writable folder; returns it as a Path."""
    path = Path(path)
    if str(path) == "":
        raise ParameterError(f"{what} names no folder")
    if path.exists() and not path.is_dir():
        raise ParameterError(f"{what} {str(path)!r} is a file; name a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".accelkit.", suffix=".check"):
            pass
    except OSError as error:
        raise ParameterError(f"{what} {str(path)!r} cannot be written: {error.strerror or error}") from None
    return path


def check_output_paths(args, *names):
    """:func:`check_output_path` on each ``args.<name>`` that is set; two outputs may not be one file."""
    seen = {}
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        path = check_output_path(value, f"--{name.replace('_', '-')}")
        key = os.path.abspath(path)
        if key in seen:
            raise ParameterError(f"--{seen[key]} and --{name.replace('_', '-')} both name {str(path)!r}")
        seen[key] = name.replace("_", "-")


#: Largest product of a ``layer`` command's sizes: it bounds every array the layer allocates and its
#: multiply-accumulates, so a typo (``--m 100000``) is refused instead of exhausting memory or time.
MAX_LAYER_PRODUCT = 1 << 32


def layer_size(minimum=1):
    """An argparse type for a layer's size flag: an integer in ``minimum..MAX_SIZE``."""
    return bounded_int(minimum, MAX_SIZE, "layer size")


def _check_layer(args):
    from ...driver.kinds import kinds
    kind = kinds().get(args.op)
    if kind is None:
        return
    sizes = {}
    for option in kind.shape_options:
        value = getattr(args, option.name, None)
        value = option.default if value is None else value
        if not option.choices and isinstance(value, int):
            sizes[option.name] = value
    product = math.prod(sizes.values())
    if product > MAX_LAYER_PRODUCT:
        shown = " x ".join(f"{name} {value}" for name, value in sizes.items())
        raise ParameterError(f"layer {args.op}: the sizes multiply to {product:,} ({shown}); at most "
                             f"{MAX_LAYER_PRODUCT:,} are accepted, which bounds the arrays and the work a "
                             "single-layer check takes")


def _check_trace(args):
    trace = getattr(args, "trace", None)
    if trace is None:
        return
    if args.backend == "model":
        raise ParameterError("--trace needs a simulator: the model backend (golden and cost models) has no "
                             "waveform; use --backend verilator, amaranth or cocotb")
    suffix = Path(trace).suffix.lower()
    accepted = (".vcd",) if args.backend == "amaranth" else (".fst", ".vcd")
    if suffix not in accepted:
        raise ParameterError(f"--trace {trace!r}: the {args.backend} backend writes "
                             f"{' or '.join(a[1:].upper() for a in accepted)} waveforms; name the file "
                             f"{' or '.join('*' + a for a in accepted)}")
    check_output_path(trace, "--trace")


def _check_record(args):
    record = getattr(args, "record", None)
    if record is None:
        return
    if args.backend == "model":
        raise ParameterError("--record needs a device: the model backend (golden and cost models) makes no "
                             "transactions; use --backend verilator, amaranth or cocotb")
    for suffix in (".jsonl", ".npz"):
        check_output_path(str(Path(record).with_suffix(suffix)), "--record")


def check_command(args):
    """Checks across values, and of every output path, before a command does any work.

    Raises ParameterError.
    """
    check_output_paths(args, "json", "output", "plot", *(("export",) if args.command == "dse" else ()))
    if args.command == "run" and getattr(args, "json", None):
        # the per-layer cycle plot goes beside the JSON
        check_output_path(Path(args.json).with_suffix(".png"), "--json's plot")
    if args.command == "quantize":
        check_output_path(f"{args.output}.pot.json", "--output's side file")
    if args.command == "layer":
        _check_layer(args)
        _check_record(args)
    _check_trace(args)


def add_runner_arguments(parser, what, workers=True):
    """``--runner``, ``--ray-address`` (and ``--workers``) for a command whose sweep goes through a runner
    (``sw/execution/runners.py``); ``what`` says what the sweep's items are."""
    from ..execution.runners import RUNNERS
    parser.add_argument("--runner", choices=RUNNERS, default="local",
                        help=f"where {what} are evaluated: local processes (default), serial (this process), or ray")
    parser.add_argument("--ray-address", metavar="ADDR", help="a Ray cluster to join (with --runner ray)")
    if workers:
        parser.add_argument("--workers", type=positive_int("--workers", 1024),
                            help="workers of the runner (default: the CPUs available)")


def open_args_runner(args):
    """The runner ``add_runner_arguments``' options name (a context manager)."""
    from ..execution.runners import open_runner
    return open_runner(args.runner, workers=getattr(args, "workers", None), address=args.ray_address)
