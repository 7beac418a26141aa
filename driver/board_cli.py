"""``accelkit-board``: the command of the board-side bundle (runs on the board, Python 3.10 and up).

This module is copied into the bundle (``sw/hardware/deploy/bundle.py``)
with the rest of the device layer, so it imports only that layer, numpy, and
pynq or pyserial when a device needs them; ``python -m accelkit.driver.board_cli``
runs the same command from an accelkit installation.

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
import struct
import sys

from ..errors import AccelkitError
from .trace import DeviceTrace, replay

__all__ = ["main"]


def _open_device(args, register_map):
    if args.bitfile:
        from .pynq_device import PynqDevice
        return PynqDevice.open(args.bitfile, register_map, clock_mhz=args.clock_mhz)
    from .serial_device import SerialDevice
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


def _info(args):
    print(f"accelkit-board on Python {platform.python_version()} ({platform.machine()}, "
          f"{8 * struct.calcsize('P')}-bit pointers)")
    import numpy
    print(f"numpy {numpy.__version__}")
    for name in ("pynq", "serial"):
        try:
            module = __import__(name)
            print(f"{name} {getattr(module, '__version__', getattr(module, 'VERSION', '?'))}")
        except ImportError:
            print(f"{name}: not installed")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="accelkit-board", description="accelkit on the board: bring-up by replay")
    commands = parser.add_subparsers(dest="command", required=True)
    replay_parser = commands.add_parser("replay", help="play a simulator trace on the board's accelerator")
    replay_parser.add_argument("trace", help="trace path without suffix (TRACE.jsonl and TRACE.npz)")
    where = replay_parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bitfile", help="PYNQ boards: the overlay's .bit (its .hwh beside it)")
    where.add_argument("--serial", help="ECP5 boards: the serial port (a device path or pyserial URL)")
    replay_parser.add_argument("--clock-mhz", type=float, default=100.0, help="PYNQ: the fabric clock")
    replay_parser.add_argument("--baud", type=int, default=1_000_000, help="serial: baud rate")
    replay_parser.add_argument("--divisor", type=int, default=25, help="serial: the board's clock cycles per bit")
    replay_parser.add_argument("--chunk-beats", type=int, default=32, help="serial: the link's input FIFO depth")
    replay_parser.add_argument("--timeout", type=float, default=1.0, help="serial: seconds one read waits")
    replay_parser.add_argument("--budget-factor", type=float, default=1.0,
                               help="stretch every job's cycle budget (a slower memory system)")
    replay_parser.add_argument("--json", help="write the replay report as JSON")
    commands.add_parser("info", help="Python, machine and the optional packages found")
    args = parser.parse_args(argv)
    try:
        return _replay(args) if args.command == "replay" else _info(args)
    except AccelkitError as error:
        print(f"accelkit-board: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
