"""``accelkit-board``: the command of the board-side bundle (runs on the board, Python 3.10 and up).

This module is copied into the bundle (``sw/hardware/deploy/bundle.py``)
with the device layer, the bundled accelerator drivers and the report
printer, so it imports only those, numpy, rich, and pynq or pyserial when a
device needs them; ``python -m accelkit.sw.hardware.deploy.board_cli`` runs the
same command from an accelkit installation.

``accelkit-board run PROGRAM --bitfile X.bit`` runs a model on the board: the
program (``accelkit export ... --model MODEL`` writes it) holds the model's
operators with the accelerator's plans; the accelerator's layers run through
its driver on the device, the rest in numpy (``board_run.py``), and the report
is the table ``accelkit run`` prints. ``--trace RECORDED`` runs it against a
recorded simulator run instead of a board (``driver/trace.py``'s TraceDevice).

``accelkit-board replay TRACE --bitfile X.bit`` loads the overlay with PYNQ
and plays a trace recorded on a simulator (``driver/trace.py``) on the
board's accelerator, then prints whether every received byte and data
register matched, with the timing registers side by side;
``--serial URL --divisor N`` does the same on an ECP5 board behind the UART
link. ``accelkit-board info`` prints what the bundle holds.
"""

import argparse
import json
import platform
import sys

import numpy as np

from ....driver.trace import DeviceTrace, TraceDevice, replay
from ....errors import AccelkitError, ModelError
from ...reports.model_report import print_report, totals
from ...reports.tables import console, progress_printer

__all__ = ["main"]


def _open_device(args, register_map):
    if getattr(args, "trace", None):
        return TraceDevice(DeviceTrace.load(args.trace))
    if args.bitfile:
        from ....driver.pynq_device import PynqDevice
        return PynqDevice.open(args.bitfile, register_map, clock_mhz=args.clock_mhz)
    from ....driver.serial_device import SerialDevice
    return SerialDevice.open(args.serial, register_map, baud=args.baud, divisor=args.divisor,
                             chunk_beats=args.chunk_beats, timeout=args.timeout)


def _replay(args):
    trace = DeviceTrace.load(args.trace)
    device = _open_device(args, trace.register_map())
    try:
        report = replay(trace, device, budget_factor=args.budget_factor)
    finally:
        device.close()
    print(f"replayed {args.trace} on {device.backend}: {report.jobs} jobs, {report.writes} register writes, "
          f"{report.reads} reads, {report.sends} sends, {report.receives} receives")
    for difference in report.timing:
        print(f"  timing: {json.dumps(difference)}")
    for mismatch in report.mismatches:
        print(f"  MISMATCH: {json.dumps(mismatch)}")
    print("bit-exact: every received byte and data register as recorded" if report.ok else
          f"NOT bit-exact: {len(report.mismatches)} mismatches")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report.as_dict(), out, indent=1)
    return 0 if report.ok else 1


def _samples(args, program):
    shape, dtype = program.input_shape, program.input_dtype
    if args.input is None:
        # the same seeded sample as ``accelkit run`` without --input
        info = np.iinfo(dtype)
        return np.random.default_rng(args.seed).integers(info.min, info.max + 1, shape, dtype=dtype)
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ModelError(f"--input {args.input} is not a readable .npy array: {error}") from None
    if x.dtype != dtype or x.size == 0 or x.size % int(np.prod(shape[1:])) or \
            (shape[0] != 1 and x.shape != tuple(shape)):
        raise ModelError(f"--input {args.input} is {x.dtype} {list(x.shape)}; the model takes {dtype} "
                         f"{list(shape)} (or a batch of them along the first axis)")
    return x.reshape(-1, *shape) if shape[0] == 1 else x[None]


def _run(args):
    from .board_run import load_program, run_program
    program = load_program(args.program)
    samples = _samples(args, program)
    device = _open_device(args, program.register_map)
    progress = progress_printer("accelkit-board")
    accelerator = program.accelerator
    try:
        result = run_program(program, device, samples, progress)
    finally:
        device.close()
    if isinstance(device, TraceDevice) and device.remaining:
        raise AccelkitError(f"the run made {len(device.trace.entries) - device.remaining} of the trace's "
                            f"{len(device.trace.entries)} transactions: the recorded run did more")
    clock_hz = None if args.clock_mhz is None else args.clock_mhz * 1e6
    records = [record.as_dict(clock_hz) for record in result.records]
    summary = totals(records, clock_hz, "--clock-mhz" if clock_hz else None)
    summary.update(samples=len(samples), wall_seconds=result.wall_seconds, device_seconds=result.device_seconds,
                   driver_seconds=result.driver_seconds, cpu_seconds=result.cpu_seconds)
    print_report(f"{program.meta['source']} on {accelerator!r}, {device.backend} (per inference)", records, summary)
    console.print(f"wall {result.wall_seconds:.2f} s for {len(samples)} sample(s): device "
                  f"{result.device_seconds:.2f} s, driver {result.driver_seconds:.2f} s, CPU layers (numpy) "
                  f"{result.cpu_seconds:.2f} s", highlight=False)
    outputs = [np.concatenate([sample[j] for sample in result.outputs]) for j in range(len(program.outputs))]
    if args.output:
        if len(outputs) == 1:
            np.save(args.output, outputs[0], allow_pickle=False)
        else:
            np.savez(args.output, *outputs)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"model": program.meta["source"], "accelerator": accelerator.name,
                       "params": dict(accelerator.params), "device": device.backend, "layers": records,
                       "totals": summary}, out, indent=1, default=str)
    return 0


def _info(args):
    print(f"accelkit-board on Python {platform.python_version()} ({platform.machine()}, "
          f"{64 if sys.maxsize > 2 ** 32 else 32}-bit Python)")
    import numpy
    print(f"numpy {numpy.__version__}")
    for name in ("pynq", "serial"):
        try:
            module = __import__(name)
            print(f"{name} {getattr(module, '__version__', getattr(module, 'VERSION', '?'))}")
        except ImportError:
            print(f"{name}: not installed")
    return 0


def _device_options(parser, *, trace):
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bitfile", help="PYNQ boards: the overlay's .bit (its .hwh beside it)")
    where.add_argument("--serial", help="ECP5 boards: the serial port (a device path or pyserial URL)")
    if trace:
        where.add_argument("--trace", help="no board: answer from a trace recorded on a simulator (TRACE.jsonl "
                           "and .npz); the run must make exactly its transactions")
    parser.add_argument("--baud", type=int, default=1_000_000, help="serial: baud rate")
    parser.add_argument("--divisor", type=int, default=25, help="serial: the board's clock cycles per bit")
    parser.add_argument("--chunk-beats", type=int, default=32, help="serial: the link's input FIFO depth")
    parser.add_argument("--timeout", type=float, default=1.0, help="serial: seconds one read waits")
    parser.add_argument("--json", help="write the report as JSON")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="accelkit-board", description="accelkit on the board: models, and "
                                     "bring-up by replay")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a model's board program (accelkit export --model writes it)")
    run_parser.add_argument("program", help="the program folder (program.json and arrays.npz)")
    _device_options(run_parser, trace=True)
    run_parser.add_argument("--clock-mhz", type=float, default=None,
                            help="the fabric clock, for times in the report (PYNQ: also the overlay's clock)")
    run_parser.add_argument("--input", metavar="X.npy", help="input array (a batch along a leading axis)")
    run_parser.add_argument("--seed", type=int, default=0, help="seed of the random input (without --input)")
    run_parser.add_argument("--output", metavar="OUT.npy", help="save the model's output tensor(s)")
    replay_parser = commands.add_parser("replay", help="play a simulator trace on the board's accelerator")
    replay_parser.add_argument("trace", help="trace path without suffix (TRACE.jsonl and TRACE.npz)")
    _device_options(replay_parser, trace=False)
    replay_parser.add_argument("--clock-mhz", type=float, default=100.0, help="PYNQ: the fabric clock")
    replay_parser.add_argument("--budget-factor", type=float, default=1.0,
                               help="stretch every job's cycle budget (a slower memory system)")
    commands.add_parser("info", help="Python, machine and the optional packages found")
    args = parser.parse_args(argv)
    if args.command == "run" and args.bitfile and args.clock_mhz is None:
        args.clock_mhz = 100.0
    try:
        return {"run": _run, "replay": _replay, "info": _info}[args.command](args)
    except AccelkitError as error:
        print(f"accelkit-board: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
