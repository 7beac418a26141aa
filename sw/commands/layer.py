"""`accelkit layer`: one random int8 layer on an accelerator's RTL, checked against its golden model."""

import numpy as np

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ..execution.executors import open_executor
from ..verification.random_layers import random_conv2d, random_fc, random_gemm, random_tconv
from ..reports.output import console, progress_printer, provenance, table, write_json

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("op", choices=("gemm", "conv2d", "fc", "tconv"), help="layer kind (tconv: TRANSPOSE_CONV, --accel mm2im)")
    shapes = parser.add_argument_group("shape (gemm: --m --n --k; fc: --batch --k --n; conv2d: the rest)")
    shapes.add_argument("--m", type=int, default=64, help="GEMM rows")
    shapes.add_argument("--n", type=int, default=64, help="GEMM columns / FC output features")
    shapes.add_argument("--k", type=int, default=64, help="reduction depth / FC input features")
    shapes.add_argument("--batch", type=int, default=1)
    shapes.add_argument("--height", type=int, default=16)
    shapes.add_argument("--width", type=int, default=16)
    shapes.add_argument("--in-channels", type=int, default=8)
    shapes.add_argument("--out-channels", type=int, default=16)
    shapes.add_argument("--kernel", type=int, default=3)
    shapes.add_argument("--stride", type=int, default=1)
    shapes.add_argument("--dilation", type=int, default=1)
    shapes.add_argument("--padding", choices=("SAME", "VALID"), default="SAME", type=str.upper)
    parser.add_argument("--activation", choices=("NONE", "RELU", "RELU6", "RELU_N1_TO_1"), default="NONE",
                        type=str.upper)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trace", metavar="WAVE.fst", help="write a waveform (.fst or .vcd)")
    parser.add_argument("--cycle-budget", type=int, help="cycles before a job is declared hung "
                        "(default: 4x the cost model's estimate)")


def make_layer(args, rng):
    if args.op == "gemm":
        gemm = random_gemm(rng, args.m, args.n, args.k, args.activation)
        return None, gemm, {"m": args.m, "n": args.n, "k": args.k}
    if args.op == "fc":
        layer, x = random_fc(rng, args.batch, args.k, args.n, args.activation)
        return (layer, x), None, {"batch": args.batch, "in_features": args.k, "out_features": args.n}
    if args.op == "tconv":
        layer, x = random_tconv(rng, args.batch, args.height, args.width, args.in_channels, args.out_channels,
                                args.kernel, args.stride, args.padding, args.activation)
        shape = {"batch": args.batch, "height": args.height, "width": args.width, "in_channels": args.in_channels,
                 "out_channels": args.out_channels, "kernel": args.kernel, "stride": args.stride,
                 "padding": args.padding, "output": list(layer.output_shape)}
        return (layer, x), None, shape
    layer, x = random_conv2d(rng, args.batch, args.height, args.width, args.in_channels, args.out_channels,
                             args.kernel, args.stride, args.dilation, args.padding, args.activation)
    shape = {"batch": args.batch, "height": args.height, "width": args.width, "in_channels": args.in_channels,
             "out_channels": args.out_channels, "kernel": args.kernel, "stride": args.stride,
             "dilation": args.dilation, "padding": args.padding}
    return (layer, x), None, shape


def run(args):
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    rng = np.random.default_rng(args.seed)
    layer_input, gemm, shape = make_layer(args, rng)
    progress = progress_printer()
    with open_executor(accelerator, args.backend, dma, args.trace, progress) as executor:
        progress(f"running {args.op} {shape} on {accelerator!r} ({args.backend})")
        if gemm is not None:
            golden = accelerator.golden(gemm)
            out, stats = executor.run_gemm(gemm, args.cycle_budget, op="gemm", shape=shape)
            gemm_shape = gemm.shape
        elif args.op == "tconv":
            layer, x = layer_input
            golden = layer.reference(x)
            out, stats = executor.run_layer(layer, x, args.cycle_budget)
            gemm_shape = layer.gemm_shape(x.shape)     # of the zero-insertion lowering, for comparison
        else:
            layer, x = layer_input
            lowered, out_shape = layer.lower(x)
            golden = accelerator.golden(lowered).reshape(out_shape)
            out, stats = executor.run_layer(layer, x, args.cycle_budget)
            gemm_shape = lowered.shape
    if args.op == "tconv":
        estimate = accelerator.layer_cycles(layer, x.shape, dma)
    else:
        estimate = accelerator.estimate_cycles(gemm_shape, dma)
    bit_exact = bool(np.array_equal(out, golden))
    record = provenance("layer", accelerator, args.backend, dma, args.seed, op=args.op, shape=shape,
                        activation=args.activation, gemm_shape=dict(zip("mnk", gemm_shape)),
                        cycles=stats.cycles, estimated_cycles=estimate, macs=stats.macs,
                        utilization=stats.utilization, bit_exact=bit_exact, stats=stats.as_dict())
    console.print(table(f"{args.op} on {accelerator!r}, {args.backend}",
                        ["op", "M", "N", "K", "MACs", "cycles", "cost model", "utilization", "bytes in",
                         "bytes out", "bit-exact"],
                        [[args.op, *gemm_shape, stats.macs, stats.cycles, estimate, stats.utilization,
                          stats.bytes_in, stats.bytes_out, "yes" if bit_exact else "NO"]]))
    if not bit_exact:
        index = tuple(int(i) for i in np.argwhere(out != golden)[0])
        record["first_mismatch"] = {"index": index, "got": int(out[index]), "expected": int(golden[index])}
        console.print(f"[bold red]MISMATCH[/bold red] at index {index}: got {out[index]}, golden {golden[index]}. "
                      f"Reproduce with: accelkit layer {args.op} {_shape_flags(args)} --accel {args.accel} "
                      f"--params {','.join(f'{k}={v}' for k, v in accelerator.params.items())} "
                      f"--backend {args.backend} --dma-bytes {args.dma_bytes} --dma-latency {args.dma_latency} "
                      f"--activation {args.activation} --seed {args.seed}")
    if args.json:
        write_json(args.json, record)
    return 0 if bit_exact else 1


def _shape_flags(args):
    if args.op == "gemm":
        return f"--m {args.m} --n {args.n} --k {args.k}"
    if args.op == "fc":
        return f"--batch {args.batch} --k {args.k} --n {args.n}"
    return (f"--batch {args.batch} --height {args.height} --width {args.width} --in-channels {args.in_channels} "
            f"--out-channels {args.out_channels} --kernel {args.kernel} --stride {args.stride} "
            f"--dilation {args.dilation} --padding {args.padding}")
