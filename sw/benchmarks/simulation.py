"""Simulation benchmarks: simulator speed, whole zoo models on RTL, array utilization, cost-model fidelity."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ...driver.kinds.gemm import Gemm
from ...errors import ParameterError, ToolchainError
from ...sim.toolchain import cache_root
from ..execution.devices import open_device
from ..frontends.tflite.runner import one_inference
from ..reports.output import console, progress_printer, provenance, table
from ..verification.fidelity import TOLERANCE
from ..verification.random_layers import random_gemm

__all__ = ["sim_speed", "model_bench", "utilization_bench", "fidelity_bench"]


def _gemm_plan(accelerator, gemm):
    layer, a = Gemm.of(gemm)
    return accelerator.plan(layer, a.shape), a


def _timed_job(device, accelerator, gemm):
    """(output, stats, wall seconds, CPU seconds) of one GEMM job."""
    started, cpu = time.perf_counter(), time.process_time()
    plan, a = _gemm_plan(accelerator, gemm)
    out, stats = accelerator.run(plan, device, a)
    return out, stats, time.perf_counter() - started, time.process_time() - cpu


def _bare_rate(device, cycles):
    """(wall, CPU) cycles/s of the model clocked with nothing else."""
    started, cpu = time.perf_counter(), time.process_time()
    device.clock_only(cycles)
    return cycles / (time.perf_counter() - started), cycles / max(time.process_time() - cpu, 1e-9)


# Run inside a checkout of an older commit (its own accelkit first on sys.path): the same GEMM on its
# native route, timed like _timed_job. Written against both the wave-1 API (run_gemm, sw.devices) and
# the plan/run contract, so any commit with a Verilator route can be the baseline.
_BASELINE_PROBE = r"""
import json, sys, time
import numpy as np
args = json.loads(sys.argv[1])
from accelkit.accelerators.base import get_accelerator
from accelkit.driver.device import DmaTiming
try:
    from accelkit.sw.execution.devices import open_device
    from accelkit.sw.verification.random_layers import random_gemm
except ImportError:
    from accelkit.sw.devices import open_device
    from accelkit.sw.random_layers import random_gemm
accelerator = get_accelerator(args["accel"], args["params"])

def job(device, gemm):
    if hasattr(accelerator, "run_gemm"):
        return accelerator.run_gemm(device, gemm)
    from accelkit.driver.kinds.gemm import Gemm
    layer, a = Gemm.of(gemm)
    return accelerator.run(accelerator.plan(layer, a.shape), device, a)

dma = DmaTiming(args["dma_bytes"], args["dma_latency"])
with open_device(accelerator, "verilator", dma) as device:
    job(device, random_gemm(np.random.default_rng(1), 8, 8, 8))
    gemm = random_gemm(np.random.default_rng(args["seed"]), args["size"], args["size"], args["size"])
    times, cpu_times, exact = [], [], True
    for _ in range(args["repeat"]):
        started, cpu = time.perf_counter(), time.process_time()
        out, stats = job(device, gemm)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
        exact &= bool(np.array_equal(out, gemm.reference()))
    started, cpu = time.perf_counter(), time.process_time()
    device.clock_only(args["bare_cycles"])
    bare = args["bare_cycles"] / (time.perf_counter() - started)
    bare_cpu = args["bare_cycles"] / max(time.process_time() - cpu, 1e-9)
print("ACCELKIT-BASELINE " + json.dumps({"cycles": int(stats.cycles), "times": times, "cpu_times": cpu_times,
                                         "bit_exact": exact, "bare_cycles_per_second": bare,
                                         "bare_cpu_cycles_per_second": bare_cpu}))
"""


# Cycles of the bare-model loop (the model clocked with nothing else), here and in the baseline.
_BARE_CYCLES = 2_000_000


def _baseline_sources(revision, progress):
    """A copy of ``revision``'s tree as ``<dir>/accelkit`` (cached by commit), from this package's git repository."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", f"{revision}^{{commit}}"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise ParameterError(f"--baseline {revision!r} is not a commit of the git repository at {root}") from None
    parent = cache_root() / "baseline-sources" / commit
    if not (parent / "accelkit" / "__init__.py").exists():
        progress(f"baseline: extracting {commit[:12]} with git archive")
        target = parent.with_name(f"{commit}.{os.getpid()}.tmp") / "accelkit"
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(root), "archive", commit], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        try:
            os.replace(target.parent, parent)
        except OSError:
            if not (parent / "accelkit" / "__init__.py").exists():
                raise
    return commit, parent


def _baseline_route(args, params, sources, progress):
    """Cycles/s of the same GEMM on the baseline's native route, in a child process of its own code."""
    commit, parent = sources
    progress(f"baseline {commit[:12]}: building its design and running the {args.size}^3 GEMM")
    env = {**os.environ, "PYTHONPATH": str(parent)}
    request = json.dumps({"accel": args.accel, "params": params, "dma_bytes": args.dma_bytes,
                          "dma_latency": args.dma_latency, "seed": args.seed, "size": args.size,
                          "repeat": args.repeat, "bare_cycles": _BARE_CYCLES})
    process = subprocess.run([sys.executable, "-c", _BASELINE_PROBE, request], cwd=parent, env=env,
                             capture_output=True, text=True)
    found = [line for line in process.stdout.splitlines() if line.startswith("ACCELKIT-BASELINE ")]
    if process.returncode != 0 or not found:
        tail = "\n".join((process.stdout + process.stderr).strip().splitlines()[-15:])
        raise ToolchainError(f"the baseline {commit[:12]} could not run the GEMM on its native route; last lines:\n{tail}")
    result = json.loads(found[-1].split(" ", 1)[1])
    return _summary(result["cycles"], result["times"], result["cpu_times"], result["bit_exact"], commit=commit,
                    bare=[(result["bare_cycles_per_second"], result["bare_cpu_cycles_per_second"])])


def _summary(cycles, times, cpu_times, bit_exact, **extra):
    """Median wall and CPU figures of a batch of runs of one job (``bare``: its bare-loop (wall, CPU) rates)."""
    times, cpu_times = sorted(times), sorted(cpu_times)
    seconds, cpu_seconds = float(np.median(times)), float(np.median(cpu_times))
    summary = {"cycles": cycles, "seconds": seconds, "runs": len(times), "seconds_min": times[0],
               "seconds_max": times[-1], "cycles_per_second": cycles / seconds, "cpu_seconds": cpu_seconds,
               "cpu_cycles_per_second": cycles / max(cpu_seconds, 1e-9), "bit_exact": bit_exact,
               "times": times, "cpu_times": cpu_times, **extra}
    if "bare" in extra:
        summary["bare_cycles_per_second"] = float(np.median([wall for wall, _ in extra["bare"]]))
        summary["bare_cpu_cycles_per_second"] = float(np.median([cpu for _, cpu in extra["bare"]]))
    return summary


def _merged(first, second):
    """Two batches of the same job as one: the medians and extremes over all their runs."""
    return _summary(first["cycles"], first["times"] + second["times"], first["cpu_times"] + second["cpu_times"],
                    first["bit_exact"] and second["bit_exact"],
                    **{key: value for key, value in first.items() if key in ("commit", "large", "single_eval")},
                    **({"bare": first["bare"] + second["bare"]} if "bare" in first else {}))


def sim_speed(args):
    """Simulated cycles per second of each route on the same design and GEMM, measured in one run."""
    params = {"rows": 8, "cols": 8, **parse_params(args.params)}
    accelerator = get_accelerator(args.accel, params)
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    progress = progress_printer()
    gemm = random_gemm(np.random.default_rng(args.seed), args.size, args.size, args.size)
    golden = accelerator.golden(*_gemm_plan(accelerator, gemm))
    routes = {}
    # resolved first, so a bad --baseline is an error before any build
    baseline = _baseline_sources(args.baseline, progress) if getattr(args, "baseline", None) else None
    chosen = [name.strip() for name in (getattr(args, "routes", None) or "verilator,cocotb,amaranth").split(",")]
    if "verilator" not in chosen or not set(chosen) <= {"verilator", "cocotb", "amaranth"}:
        raise ParameterError(f"--routes must list verilator and any of cocotb, amaranth, not {args.routes!r}")
    for backend in [name for name in ("verilator", "cocotb", "amaranth") if name in chosen]:
        progress(f"{backend}: preparing")
        with open_device(accelerator, backend, dma, progress=progress) as device:
            _timed_job(device, accelerator, random_gemm(np.random.default_rng(1), 8, 8, 8))  # warm-up
            progress(f"{backend}: running {args.size}^3 GEMM")
            # The same number of timed runs on the two fast routes, each summarized by its median
            # (a 64^3 job is a few milliseconds natively, so one run is at the mercy of the machine).
            runs = [_timed_job(device, accelerator, gemm) for _ in range(1 if backend == "amaranth" else args.repeat)]
            out, stats, _, _ = runs[-1]
            routes[backend] = _summary(stats.cycles, [r[2] for r in runs], [r[3] for r in runs],
                                       all(np.array_equal(r[0], golden) for r in runs))
            if backend == "verilator":
                bare = [_bare_rate(device, _BARE_CYCLES)]
                big = random_gemm(np.random.default_rng(2), 256, 256, 256)
                total_before = device.total_cycles
                big_out, big_stats, big_seconds, big_cpu = _timed_job(device, accelerator, big)
                large = {
                    "shape": [256, 256, 256], "cycles": big_stats.cycles, "seconds": big_seconds,
                    "cycles_per_second": (device.total_cycles - total_before) / big_seconds, "cpu_seconds": big_cpu,
                    "cpu_cycles_per_second": (device.total_cycles - total_before) / max(big_cpu, 1e-9),
                    "utilization": big_stats.utilization, "bit_exact": bool(np.array_equal(big_out, big.reference()))}
                if baseline is not None:
                    # side by side, alternating: this route, the baseline, this route, the baseline, this route;
                    # the bare loops too, so both sides see the same spells of load
                    for round_ in range(2):
                        batch = _baseline_route(args, params, baseline, progress)
                        routes["baseline"] = batch if round_ == 0 else _merged(routes["baseline"], batch)
                        progress(f"verilator: running the {args.size}^3 GEMM again after the baseline")
                        runs += [_timed_job(device, accelerator, gemm) for _ in range(args.repeat)]
                        bare.append(_bare_rate(device, _BARE_CYCLES))
                routes["verilator"] = _summary(stats.cycles, [r[2] for r in runs], [r[3] for r in runs],
                                               all(np.array_equal(r[0], golden) for r in runs), large=large,
                                               bare=bare)
                routes["bare_verilator_loop"] = {
                    "cycles_per_second": routes["verilator"]["bare_cycles_per_second"],
                    "cpu_cycles_per_second": routes["verilator"]["bare_cpu_cycles_per_second"],
                    "single_eval": bool(getattr(device, "single_eval", False))}
    native = routes["verilator"]["large"]["cycles_per_second"]
    ratios = {f"native_over_{name}": routes["verilator"]["cycles_per_second"] / routes[name]["cycles_per_second"]
              for name in ("cocotb", "amaranth") if name in routes}
    # the driver path's share of a bare loop's speed, both in CPU time (the harness runs on this thread)
    ratios["native_over_bare_loop"] = (routes["verilator"]["large"]["cpu_cycles_per_second"]
                                       / routes["bare_verilator_loop"]["cpu_cycles_per_second"])
    if "baseline" in routes:
        ours, theirs = routes["verilator"], routes["baseline"]
        # CPU time is the primary figure: on a shared machine wall time also counts the other jobs' turns
        ratios["native_over_baseline"] = ours["cpu_cycles_per_second"] / theirs["cpu_cycles_per_second"]
        ratios["native_over_baseline_wall"] = ours["cycles_per_second"] / theirs["cycles_per_second"]
        # the verilated design alone, without harness or driver: what the gateware costs per cycle
        ratios["bare_loop_over_baseline_bare_loop"] = (ours["bare_cpu_cycles_per_second"]
                                                       / theirs["bare_cpu_cycles_per_second"])
    names = {"baseline": f"verilator at {routes['baseline']['commit'][:9]} (baseline)" if "baseline" in routes else ""}
    rows = [[names.get(name) or name, r.get("cycles", ""), r.get("seconds", ""), r["cycles_per_second"],
             r.get("cpu_cycles_per_second", ""), {True: "yes", False: "NO"}.get(r.get("bit_exact"), "")]
            for name, r in routes.items()]
    large = routes["verilator"]["large"]
    rows.insert(1, ["verilator, 256^3 GEMM", large["cycles"], large["seconds"], native, large["cpu_cycles_per_second"],
                    "yes" if large["bit_exact"] else "NO"])
    console.print(table(f"simulation speed, {accelerator!r}, {args.size}^3 GEMM, DMA {dma.bytes_per_cycle} B/cycle "
                        f"(median of {args.repeat} runs on verilator and cocotb)",
                        ["backend", "cycles", "seconds", "cycles/s", "cycles/CPU s", "bit-exact"], rows))
    console.print(", ".join([*(f"native / {name} = {ratios[f'native_over_{name}']:.1f}x" for name in ("cocotb", "amaranth")
                               if name in routes),
                             f"native driver path / bare Verilator loop = {ratios['native_over_bare_loop']:.1%} "
                             "of CPU time"]))
    if "baseline" in routes:
        console.print(f"native route on the {args.size}^3 GEMM / the same route at {routes['baseline']['commit'][:9]} "
                      f"= {ratios['native_over_baseline']:.1%} of CPU time (medians of {routes['verilator']['runs']} "
                      f"and {routes['baseline']['runs']} runs, alternating, in this run; wall time: "
                      f"{ratios['native_over_baseline_wall']:.1%}); bare model loop / the baseline's = "
                      f"{ratios['bare_loop_over_baseline_bare_loop']:.1%} of CPU time", highlight=False)
    console.print(f"one model evaluation per cycle: "
                  f"{'yes' if routes['bare_verilator_loop']['single_eval'] else 'no (two)'}", highlight=False)
    console.print(f"utilization on 256x256x256 at {dma.bytes_per_cycle} B/cycle: "
                  f"{routes['verilator']['large']['utilization']:.1%} "
                  f"({routes['verilator']['large']['cycles']:,} cycles)")
    return provenance("bench sim-speed", accelerator, None, dma, args.seed, size=args.size, routes=routes,
                      ratios=ratios)


def model_bench(args):
    """Whole-model wall time per zoo model on the Verilator RTL and the model backend, side by side.

    The per-cycle Python backends (cocotb, amaranth) run the digits model only.
    """
    from ..execution.executors import open_executor
    from ..zoo import ZOO, model_names
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    progress = progress_printer()
    results = []
    for backend in ("verilator", "model", "cocotb", "amaranth"):
        names = model_names() if backend in ("verilator", "model") else ["digits_cnn"]
        with open_executor(accelerator, backend, dma, progress=progress) as executor:
            for name in names:
                progress(f"{name} on {backend}")
                before = executor.run_seconds
                model, wall, outputs, expected = one_inference(ZOO / "models" / f"{name}.tflite", executor,
                                                                args.seed)
                inner = executor.run_seconds - before
                results.append({
                    "model": name, "backend": backend, "wall_seconds": wall,
                    "accelerator_cycles": sum(r.cycles for r in model.offloaded),
                    "simulation_seconds": inner, "driver_seconds": model.layer_seconds - inner,
                    "cpu_and_setup_seconds": wall - model.layer_seconds,
                    "layers_offloaded": len(model.offloaded), "layers": len(model.records),
                    "bit_exact": all(np.array_equal(a, b) for a, b in zip(outputs, expected))})
    verilator_wall = {r["model"]: r["wall_seconds"] for r in results if r["backend"] == "verilator"}
    rows = [[r["model"], r["backend"], r["wall_seconds"], verilator_wall[r["model"]] / r["wall_seconds"],
             r["accelerator_cycles"], r["simulation_seconds"] / r["wall_seconds"],
             r["driver_seconds"] / r["wall_seconds"], r["cpu_and_setup_seconds"] / r["wall_seconds"],
             f"{r['layers_offloaded']}/{r['layers']}", "yes" if r["bit_exact"] else "NO"] for r in results]
    console.print(table(f"whole models, one inference on {accelerator!r}; CPU part on BUILTIN_REF",
                        ["name", "backend", "wall s", "speed vs verilator", "cycles", "sim/model share",
                         "driver share", "CPU+setup share", "offloaded", "bit-exact"], rows))
    return provenance("bench model", accelerator, None, dma, args.seed, results=results)


def utilization_bench(args):
    """Per-layer array utilization and cycles lost to data movement at 4, 8 and 16 bytes/cycle (RTL)."""
    from ..execution.executors import open_executor
    from ..zoo import ZOO
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    progress = progress_printer()
    results = {}
    for name in (args.models or "mobilenet_v2").split(","):
        for bandwidth in (4, 8, 16):
            dma = DmaTiming(bandwidth, args.dma_latency)
            with open_executor(accelerator, args.backend, dma, progress=progress) as executor:
                progress(f"{name} at {bandwidth} B/cycle")
                model, _, _, _ = one_inference(ZOO / "models" / f"{name}.tflite", executor, args.seed)
            layers = [{"index": r.index, "op": r.op, "macs": r.macs, "cycles": r.cycles,
                       "utilization": r.utilization, "stall_cycles": r.stall_cycles,
                       "busy_cycles": r.extra.get("busy_cycles", 0)} for r in model.offloaded]
            cycles = sum(layer["cycles"] for layer in layers)
            macs = sum(layer["macs"] for layer in layers)
            results[f"{name}@{bandwidth}"] = {
                "model": name, "bytes_per_cycle": bandwidth, "cycles": cycles,
                "utilization": macs / (accelerator.pes * cycles) if cycles else 0.0,
                "data_movement_cycles": sum(layer["stall_cycles"] for layer in layers),
                "idle_cycles": cycles - sum(layer["busy_cycles"] for layer in layers), "layers": layers}
    rows = [[r["model"], r["bytes_per_cycle"], r["cycles"], r["utilization"], r["data_movement_cycles"],
             r["data_movement_cycles"] / r["cycles"] if r["cycles"] else 0, r["idle_cycles"]]
            for r in results.values()]
    console.print(table(f"utilization of {accelerator!r} ({args.backend})",
                        ["model", "DMA B/cycle", "cycles", "utilization", "stall cycles (data movement)",
                         "stall share", "array idle cycles"], rows))
    return provenance("bench utilization", accelerator, args.backend, None, args.seed, models=results)


def fidelity_bench(args):
    """Cost-model cycles vs RTL cycles for every offloaded layer of every zoo model, per accelerator."""
    from ..verification.fidelity import fidelity_table
    from ..commands.arguments import open_args_runner
    with open_args_runner(args) as runner:
        records = fidelity_table(args.backend, DmaTiming(args.dma_bytes, args.dma_latency), progress_printer(),
                                 parse_params(args.params), runner)
    rows = [[r["accelerator"], r["model"], r["layer"], r["op"], r["rtl_cycles"], r["model_cycles"],
             r["error"]] for r in records]
    console.print(table(f"cost model vs {args.backend} cycles, per offloaded layer", ["accelerator", "model", "layer",
                        "op", "RTL cycles", "model cycles", "relative error"], rows))
    worst = max((abs(r["error"]) for r in records), default=0.0)
    console.print(f"{len(records)} layers; largest relative error {worst:.3%} (tolerance {TOLERANCE:.0%})")
    return provenance("bench fidelity", None, args.backend, DmaTiming(args.dma_bytes, args.dma_latency), None,
                      layers=records, largest_error=worst, tolerance=TOLERANCE)
