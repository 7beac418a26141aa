"""`accelkit bench NAME`: benchmarks that print measured figures (never asserted by tests)."""

import time

import numpy as np

from ..accelerators.base import get_accelerator, parse_params
from ..driver.device import DmaTiming
from .devices import open_device
from .random_layers import random_gemm
from .report import console, progress_printer, provenance, table, write_json

__all__ = ["add_arguments", "run", "BENCHMARKS"]


def add_arguments(parser):
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark to run")
    parser.add_argument("--size", type=int, default=64, help="sim-speed: M=N=K of the shared GEMM (default 64)")
    parser.add_argument("--seed", type=int, default=0)


def _timed_job(device, accelerator, gemm):
    started = time.perf_counter()
    out, stats = accelerator.run_gemm(device, gemm)
    return out, stats, time.perf_counter() - started


def sim_speed(args):
    """Simulated cycles per second of each route on the same design and GEMM, measured in one run."""
    params = {"rows": 8, "cols": 8, **parse_params(args.params)}
    accelerator = get_accelerator(args.accel, params)
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    progress = progress_printer()
    gemm = random_gemm(np.random.default_rng(args.seed), args.size, args.size, args.size)
    golden = accelerator.golden(gemm)
    routes = {}
    for backend in ("verilator", "cocotb", "amaranth"):
        progress(f"{backend}: preparing")
        with open_device(accelerator, backend, dma, progress=progress) as device:
            accelerator.run_gemm(device, random_gemm(np.random.default_rng(1), 8, 8, 8))  # warm-up
            progress(f"{backend}: running {args.size}^3 GEMM")
            out, stats, seconds = _timed_job(device, accelerator, gemm)
            routes[backend] = {"cycles": stats.cycles, "seconds": seconds, "cycles_per_second": stats.cycles / seconds,
                               "bit_exact": bool(np.array_equal(out, golden))}
            if backend == "verilator":
                bare = 2_000_000
                started = time.perf_counter()
                device.clock_only(bare)
                bare_rate = bare / (time.perf_counter() - started)
                big = random_gemm(np.random.default_rng(2), 256, 256, 256)
                total_before = device.total_cycles
                big_out, big_stats, big_seconds = _timed_job(device, accelerator, big)
                routes["verilator"]["large"] = {
                    "shape": [256, 256, 256], "cycles": big_stats.cycles, "seconds": big_seconds,
                    "cycles_per_second": (device.total_cycles - total_before) / big_seconds,
                    "utilization": big_stats.utilization, "bit_exact": bool(np.array_equal(big_out, big.reference()))}
                routes["bare_verilator_loop"] = {"cycles_per_second": bare_rate}
    native = routes["verilator"]["large"]["cycles_per_second"]
    ratios = {
        "native_over_cocotb": routes["verilator"]["cycles_per_second"] / routes["cocotb"]["cycles_per_second"],
        "native_over_amaranth": routes["verilator"]["cycles_per_second"] / routes["amaranth"]["cycles_per_second"],
        "native_over_bare_loop": native / routes["bare_verilator_loop"]["cycles_per_second"],
    }
    rows = [[name, r.get("cycles", ""), r.get("seconds", ""), r["cycles_per_second"],
             {True: "yes", False: "NO"}.get(r.get("bit_exact"), "")] for name, r in routes.items()]
    rows.insert(1, ["verilator, 256^3 GEMM", native and routes["verilator"]["large"]["cycles"],
                    routes["verilator"]["large"]["seconds"], native,
                    "yes" if routes["verilator"]["large"]["bit_exact"] else "NO"])
    console.print(table(f"simulation speed, {accelerator!r}, {args.size}^3 GEMM, DMA {dma.bytes_per_cycle} B/cycle",
                        ["backend", "cycles", "seconds", "cycles/s", "bit-exact"], rows))
    console.print(f"native / cocotb = {ratios['native_over_cocotb']:.1f}x, native / amaranth = "
                  f"{ratios['native_over_amaranth']:.0f}x, native driver path / bare Verilator loop = "
                  f"{ratios['native_over_bare_loop']:.1%}")
    console.print(f"utilization on 256x256x256 at {dma.bytes_per_cycle} B/cycle: "
                  f"{routes['verilator']['large']['utilization']:.1%} "
                  f"({routes['verilator']['large']['cycles']:,} cycles)")
    return provenance("bench sim-speed", accelerator, None, dma, args.seed, size=args.size, routes=routes,
                      ratios=ratios)


def model_bench(args):
    """Whole-model wall time on the RTL simulation for each zoo model, with simulated cycles."""
    from .run_cmd import load_inputs
    from .tflite.runner import DelegatedModel, make_interpreter
    from .zoo import ZOO, model_names
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    progress = progress_printer()
    results = {}
    with open_device(accelerator, args.backend, dma, progress=progress) as device:
        for name in model_names():
            path = ZOO / "models" / f"{name}.tflite"
            progress(f"{name}: preparing")
            before_sim = device.run_seconds
            started = time.perf_counter()
            model = DelegatedModel(path, accelerator, device)
            x = load_inputs(None, model.input_detail, args.seed)
            outputs = model.invoke(x)
            wall = time.perf_counter() - started
            reference = make_interpreter(path, "ref")
            reference.set_tensor(reference.get_input_details()[0]["index"], x)
            reference.invoke()
            expected = [reference.get_tensor(d["index"]) for d in reference.get_output_details()]
            simulation = device.run_seconds - before_sim
            results[name] = {
                "wall_seconds": wall, "simulation_seconds": simulation,
                "driver_seconds": model.layer_seconds - simulation,
                "cpu_and_setup_seconds": wall - model.layer_seconds,
                "accelerator_cycles": sum(r.cycles for r in model.offloaded),
                "layers_offloaded": len(model.offloaded), "layers": len(model.records),
                "bit_exact": all(np.array_equal(a, b) for a, b in zip(outputs, expected))}
    rows = [[name, r["wall_seconds"], r["accelerator_cycles"], r["accelerator_cycles"] / max(r["simulation_seconds"], 1e-9),
             r["simulation_seconds"] / r["wall_seconds"], r["driver_seconds"] / r["wall_seconds"],
             r["cpu_and_setup_seconds"] / r["wall_seconds"], f"{r['layers_offloaded']}/{r['layers']}",
             "yes" if r["bit_exact"] else "NO"] for name, r in results.items()]
    console.print(table(f"whole models, one inference on {accelerator!r} ({args.backend}), CPU part on BUILTIN_REF",
                        ["name", "wall s", "sim. cycles", "cycles/s", "sim share", "driver share",
                         "CPU+setup share", "offloaded", "bit-exact"], rows))
    return provenance("bench model", accelerator, args.backend, dma, args.seed, models=results)


BENCHMARKS = {"sim-speed": sim_speed, "model": model_bench}


def run(args):
    record = BENCHMARKS[args.name](args)
    if args.json:
        write_json(args.json, record)
    return 0
