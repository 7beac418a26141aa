"""`accelkit bench ulx3s`: the design behind the UART link, placed and routed for the ULX3S-85F.

The bitstream flow of ``accelkit export --board ulx3s-85f`` on the design asked for (the default 8x8 gemm
unless --accel/--params say otherwise): Fmax against the board's 25 MHz clock, the cells used and the build
time. A full design takes tens of minutes on a 2-core machine (cached by content hash afterwards), which
is why it is a benchmark and the test suite builds only a 1x1 gemm.
"""

import tempfile

from ...accelerators.base import get_accelerator, parse_params
from ..hardware.deploy.ecp5 import ECP5_85F_CELLS, build_ulx3s
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["ulx3s_bench"]


def ulx3s_bench(args):
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    with tempfile.TemporaryDirectory(prefix="accelkit-ulx3s-bench-") as out:
        result = build_ulx3s(accelerator, out, progress=progress_printer())
    rows = [[name, f"{used:,}", f"{ECP5_85F_CELLS[name]:,}" if name in ECP5_85F_CELLS else "",
             f"{100 * used / ECP5_85F_CELLS[name]:.1f}%" if name in ECP5_85F_CELLS else ""]
            for name, used in sorted(result.utilisation.items())]
    console.print(table(f"{accelerator!r} on the ULX3S-85F (UART link included)", ["cell", "used", "device", "share"],
                        rows))
    console.print(f"Fmax {result.fmax_mhz:.1f} MHz at the board's {result.clock_mhz:g} MHz clock: "
                  f"{'met' if result.meets_timing else 'NOT met'}; "
                  f"{'cached build' if result.cached else f'built in {result.seconds:.0f} s'}")
    return provenance("bench ulx3s", accelerator, ecp5=result.as_dict())
