"""`accelkit bench tconv`: a seeded sweep of int8 TRANSPOSE_CONV configurations, MM2IM vs the GEMM lowering.

Every configuration is checked bit-exact on the fast model backend (mm2im's golden
model) against LiteRT's BUILTIN_REF kernel, and timed twice with the closed-form
cost models: on MM2IM, and on the `gemm` accelerator running the same layer
lowered to zero insertion + a stride-1 convolution (im2col GEMM of M = output
pixels, N = Cout, K = KH * KW * Cin; the lowering is itself checked bit-exact).
Both designs get the same PE grid (``rows`` x ``cols``) and the same DMA.
``--rtl N`` also runs a seeded subset of N configurations on the Verilator RTL
of both accelerators (bit-exact vs BUILTIN_REF, cycles vs the cost models).
"""

import functools
import math
import time

import numpy as np

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ...driver.quant import ACTIVATIONS
from ...errors import UnsupportedLayer
from ..verification.random_layers import random_tconv
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["sweep_configs", "tconv_bench", "evaluate", "evaluate_config"]

_CHANNELS = (1, 2, 3, 4, 8, 12, 16, 24, 32)


def sweep_configs(count, seed):
    """``count`` seeded configurations: (name, layer, input)."""
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        kernel, stride = int(rng.integers(1, 8)), int(rng.integers(1, 4))
        padding = str(rng.choice(["SAME", "VALID"]))
        h = int(rng.integers(1, 13))
        w = h if rng.random() < 0.7 else int(rng.integers(1, 13))
        cin, cout = int(rng.choice(_CHANNELS)), int(rng.choice(_CHANNELS))
        activation = str(rng.choice(ACTIVATIONS)) if rng.random() < 0.25 else "NONE"
        layer, x = random_tconv(rng, 1, h, w, cin, cout, kernel, stride, padding, activation,
                                "large" if rng.random() < 0.1 else "random", bool(rng.random() < 0.1))
        name = f"{h}x{w}x{cin}->{cout} k{kernel} s{stride} {padding.lower()}"
        configs.append((index, name, layer, x))
    return configs


def evaluate(mm2im, gemm, layer, x, dma):
    """One configuration on the model backend and both cost models."""
    from ..frontends.tflite.tconv_model import layer_reference
    expected = layer_reference(layer, x)
    record = {"input": list(x.shape), "output": list(layer.output_shape), "kernel": layer.kernel[0],
              "stride": layer.stride[0], "padding": layer.padding, "activation": layer.activation}
    try:
        plan = mm2im.plan(layer, x.shape)
    except UnsupportedLayer as error:
        return {**record, "supported": False, "reason": str(error)}
    out, stats = mm2im.golden(plan, x), mm2im.estimate(plan, dma)
    conv, inserted = layer.zero_insertion_conv(x)
    lowered = conv.reference(inserted)
    gemm_shape = layer.gemm_shape(x.shape)
    gemm_cycles = gemm.estimate(gemm.plan(conv, inserted.shape), dma).cycles
    record.update(supported=True, bit_exact=bool(np.array_equal(out, expected)),
                  lowering_bit_exact=bool(np.array_equal(lowered, expected)), mm2im_cycles=stats.cycles,
                  gemm_cycles=gemm_cycles, speedup=gemm_cycles / stats.cycles, effective_macs=stats.macs,
                  zero_insertion_macs=stats.extra["zero_insertion_macs"],
                  ineffectual_macs_avoided=stats.extra["ineffectual_macs_avoided"], gemm_shape=list(gemm_shape),
                  mm2im_utilization=stats.utilization)
    return record


@functools.lru_cache(maxsize=4)
def _designs(mm2im_params, gemm_params):
    return get_accelerator("mm2im", dict(mm2im_params)), get_accelerator("gemm", dict(gemm_params))


def evaluate_config(mm2im_params, gemm_params, dma, config):
    """One sweep configuration ``(index, name, layer, x)`` as a record (module level, so a runner's worker
    process can be handed it; the designs are made once per process)."""
    index, name, layer, x = config
    mm2im, gemm = _designs(tuple(sorted(mm2im_params.items())), tuple(sorted(gemm_params.items())))
    return {"index": index, "name": name, **evaluate(mm2im, gemm, layer, x, DmaTiming(*dma))}


def _rtl_check(mm2im, gemm, layer, x, dma, devices):
    from ..frontends.tflite.tconv_model import layer_reference
    expected = layer_reference(layer, x)
    plan = mm2im.plan(layer, x.shape)
    out, stats = mm2im.run(plan, devices["mm2im"], x)
    conv, inserted = layer.zero_insertion_conv(x)
    gemm_plan = gemm.plan(conv, inserted.shape)
    gemm_out, gemm_stats = gemm.run(gemm_plan, devices["gemm"], inserted)
    return {"bit_exact": bool(np.array_equal(out, expected)), "cycles": stats.cycles,
            "cost_model_cycles": mm2im.estimate(plan, dma).cycles,
            "gemm_bit_exact": bool(np.array_equal(gemm_out, expected)), "gemm_cycles": gemm_stats.cycles,
            "gemm_cost_model_cycles": gemm.estimate(gemm_plan, dma).cycles}


def _geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def tconv_bench(args):
    params = parse_params(args.params)
    mm2im = get_accelerator("mm2im", params)
    gemm = get_accelerator("gemm", {"rows": mm2im.params["rows"], "cols": mm2im.params["cols"],
                                    "data_width": mm2im.params["data_width"]})
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    progress = progress_printer()
    configs = sweep_configs(args.count, args.seed)
    started = time.perf_counter()
    call = functools.partial(evaluate_config, dict(mm2im.params), dict(gemm.params), (dma.bytes_per_cycle,
                                                                                        dma.latency))

    def report(done, total):
        if done % 50 == 0 or done == total:
            progress(f"{done}/{total} configurations")
    from ..commands.arguments import open_args_runner
    with open_args_runner(args) as runner:
        records = runner.map(call, configs, progress=report)
        runner_name, workers = runner.name, runner.workers
    sweep_seconds = time.perf_counter() - started
    done = [r for r in records if r["supported"]]
    speedups = [r["speedup"] for r in done]
    geomean = math.exp(sum(math.log(s) for s in speedups) / len(speedups)) if speedups else 0.0
    best = max(done, key=lambda r: r["speedup"], default=None)
    worst = min(done, key=lambda r: r["speedup"], default=None)
    summary = {
        "configurations": len(records), "supported": len(done),
        "bit_exact": sum(r["bit_exact"] for r in done),
        "lowering_bit_exact": sum(r["lowering_bit_exact"] for r in done),
        "geomean_speedup_vs_gemm_lowering": geomean,
        "best": best and {"name": best["name"], "speedup": best["speedup"]},
        "worst": worst and {"name": worst["name"], "speedup": worst["speedup"]},
        "mm2im_faster": sum(s > 1 for s in speedups),
        "ineffectual_macs_avoided": sum(r["ineffectual_macs_avoided"] for r in done),
        "zero_insertion_macs": sum(r["zero_insertion_macs"] for r in done),
        "sweep_seconds": sweep_seconds, "runner": runner_name, "workers": workers,
        "geomean_by_stride": {s: _geomean([r["speedup"] for r in done if r["stride"] == s]) for s in (1, 2, 3)},
        "geomean_by_input_channels": {
            name: _geomean([r["speedup"] for r in done if lo <= r["input"][3] <= hi])
            for name, lo, hi in (("1-3", 1, 3), ("4-8", 4, 8), ("12-32", 12, 32))},
    }
    rtl = []
    if args.rtl:
        from ..execution.devices import open_device
        chosen = sorted(np.random.default_rng(args.seed + 1).choice(
            [r["index"] for r in done], size=min(args.rtl, len(done)), replace=False).tolist())
        devices = {}
        try:
            progress(f"building the RTL of {mm2im!r} and {gemm!r}")
            devices["mm2im"] = open_device(mm2im, "verilator", dma, progress=progress)
            devices["gemm"] = open_device(gemm, "verilator", dma, progress=progress)
            rtl_started = time.perf_counter()
            for count, index in enumerate(chosen):
                _, name, layer, x = configs[index]
                rtl.append({"index": index, "name": name, **_rtl_check(mm2im, gemm, layer, x, dma, devices)})
                if (count + 1) % 10 == 0:
                    progress(f"RTL {count + 1}/{len(chosen)}")
            summary["rtl"] = {
                "configurations": len(rtl), "bit_exact": sum(r["bit_exact"] for r in rtl),
                "cycles_equal_cost_model": sum(r["cycles"] == r["cost_model_cycles"] for r in rtl),
                "gemm_bit_exact": sum(r["gemm_bit_exact"] for r in rtl),
                "gemm_cycles_equal_cost_model": sum(r["gemm_cycles"] == r["gemm_cost_model_cycles"] for r in rtl),
                "simulated_cycles": sum(r["cycles"] + r["gemm_cycles"] for r in rtl),
                "seconds": time.perf_counter() - rtl_started}
        finally:
            for device in devices.values():
                device.close()

    def shown(r):
        return [r["index"], r["name"], r["mm2im_cycles"], r["gemm_cycles"], r["speedup"],
                r["ineffectual_macs_avoided"], "yes" if r["bit_exact"] else "NO"]
    ranked = sorted(done, key=lambda r: r["speedup"])
    rows = [shown(r) for r in ranked[:5]] + [shown(r) for r in ranked[-5:]]
    console.print(table(f"TRANSPOSE_CONV sweep: {mm2im!r} vs zero insertion + conv on {gemm!r}, "
                        f"DMA {dma.bytes_per_cycle} B/cycle (5 worst, 5 best)",
                        ["#", "configuration", "mm2im cycles", "gemm cycles", "speedup", "ineffectual MACs avoided",
                         "bit-exact"], rows))
    unsupported = len(records) - len(done)
    console.print(
        f"{len(records)} configurations (seed {args.seed}){f', {unsupported} not supported by this design' if unsupported else ''}: "
        f"{summary['bit_exact']}/{len(done)} bit-exact vs LiteRT BUILTIN_REF on the model backend "
        f"(zero-insertion lowering {summary['lowering_bit_exact']}/{len(done)}); geometric-mean speedup "
        f"{geomean:.2f}x vs the GEMM lowering, best {best['speedup']:.2f}x ({best['name']}), worst "
        f"{worst['speedup']:.2f}x ({worst['name']}); MM2IM faster on {summary['mm2im_faster']}; "
        f"ineffectual MACs avoided {summary['ineffectual_macs_avoided']:,} of "
        f"{summary['zero_insertion_macs']:,} ({summary['ineffectual_macs_avoided'] / summary['zero_insertion_macs']:.1%})",
        highlight=False)
    console.print("geometric-mean speedup by stride: " + ", ".join(
        f"{k}: {v:.2f}x" for k, v in summary["geomean_by_stride"].items() if v) + "; by input channels: " +
        ", ".join(f"{k}: {v:.2f}x" for k, v in summary["geomean_by_input_channels"].items() if v), highlight=False)
    if rtl:
        s = summary["rtl"]
        console.print(f"RTL (Verilator) subset of {s['configurations']}: mm2im {s['bit_exact']} bit-exact, "
                      f"{s['cycles_equal_cost_model']} with cycles equal to the cost model; gemm lowering "
                      f"{s['gemm_bit_exact']} bit-exact, {s['gemm_cycles_equal_cost_model']} cycle-exact; "
                      f"{s['simulated_cycles']:,} cycles in {s['seconds']:.1f} s", highlight=False)
    return provenance("bench tconv", mm2im, "model" if not rtl else "model+verilator", dma, args.seed,
                      gemm_params=dict(gemm.params), summary=summary, configurations=records, rtl=rtl)
