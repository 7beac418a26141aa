"""`accelkit replay`: play a recorded device trace on a simulator of the same design and check it.

Traces come from `accelkit layer --record` (or :class:`~accelkit.driver.trace.RecordingDevice`); on a board,
the bundle's `accelkit-board replay` plays the same files.
"""

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ...driver.trace import DeviceTrace, replay
from ...errors import ParameterError
from ..execution.devices import BACKENDS as DEVICE_BACKENDS, open_device
from ..reports.output import console, progress_printer, provenance, table, write_json
from . import arguments

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("trace_path", metavar="TRACE", help="trace path without suffix (TRACE.jsonl and TRACE.npz)")
    parser.add_argument("--accel", default=None, help="the accelerator the trace was recorded on "
                        "(default: the one the trace names)")
    parser.add_argument("--params", default=None, help="its parameters, e.g. rows=8,cols=8 (default: the trace's)")
    parser.add_argument("--backend", choices=DEVICE_BACKENDS, default="verilator", help="device to replay on")
    parser.add_argument("--dma-bytes", type=arguments.dma_bytes, default=8, help="DMA bytes per cycle (default 8)")
    parser.add_argument("--dma-latency", type=arguments.dma_latency, default=0, help="DMA latency in cycles")
    parser.add_argument("--json", metavar="PATH", help="write the replay report as JSON")


def run(args):
    trace = DeviceTrace.load(args.trace_path)
    named = trace.device.get("accelerator") or {}
    if args.accel is None and not named:
        raise ParameterError(f"{args.trace_path} does not name the accelerator it was recorded on; give --accel "
                             "and --params")
    accelerator = get_accelerator(args.accel or named["name"],
                                  parse_params(args.params) if args.params is not None else named.get("params", {}))
    if named and (accelerator.name, accelerator.params) != (named["name"], named.get("params")):
        raise ParameterError(f"the trace was recorded on {named['name']} with {named.get('params')}, not on "
                             f"{accelerator!r}; replay it on the design it was recorded on")
    recorded, ours = trace.register_map(), accelerator.register_map()
    if [(r.name, r.offset) for r in recorded] != [(r.name, r.offset) for r in ours]:
        raise ParameterError(f"the trace's register map is not {accelerator!r}'s: name the accelerator and "
                             "parameters it was recorded on (--accel, --params)")
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    with open_device(accelerator, args.backend, dma, progress=progress_printer()) as device:
        report = replay(trace, device)
    console.print(table(f"replay of {args.trace_path} on {accelerator!r}, {args.backend}",
                        ["jobs", "writes", "reads", "sends", "receives", "mismatches", "timing differences",
                         "bit-exact"],
                        [[report.jobs, report.writes, report.reads, report.sends, report.receives,
                          len(report.mismatches), len(report.timing), "yes" if report.ok else "NO"]]))
    for mismatch in report.mismatches[:10]:
        console.print(f"[bold red]MISMATCH[/bold red] {mismatch}")
    for difference in report.timing[:10]:
        console.print(f"timing: {difference}")
    if args.json:
        write_json(args.json, provenance("replay", accelerator, args.backend, dma, trace=str(args.trace_path),
                                         report=report.as_dict()))
    return 0 if report.ok else 1
