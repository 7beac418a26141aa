"""`accelkit bench dse`: how fast design points are evaluated, how the search scales, how much of a space it needs.

Figures (all measured here, printed and written with ``--json``):

* cost-model design points per minute per core on a model (MobileNetV2 by
  default): random points of a GEMM space evaluated from cold caches, CPU time
  of this process as the denominator, with the points that were fully costed
  (not pruned early for resources) counted apart;
* the same batch of points through the Ray runner with 2 local workers against
  1 (wall time; each worker warmed up first so model loading is not timed);
* on a space small enough to enumerate, the share of its points an NSGA-II
  search evaluates before its front reaches 95% of the exhaustive front's
  hypervolume (latency and DSP, reference point 10% beyond the worst feasible
  values), over several seeds;
* tuning reuse: trials a search on a second model needs to reach 95% of its
  from-scratch front's hypervolume, from scratch and when seeded with the first
  model's front (``sw/dse/reuse.py``).
"""

import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from ...accelerators.base import registry
from ...errors import ParameterError
from ..dse.boards import get_board
from ..dse.evaluate import Evaluator, load_workload
from ..dse.resources import MODELS, calibration_report
from ..dse.search import SearchConfig, evaluate_point, hypervolume
from ..dse.space import SearchSpace
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["dse_bench"]

#: where a GEMM design for a PYNQ-class board plausibly lies (the declared space is far larger)
SPEED_SPACE = "rows=1..32,cols=1..32,data_width=32|64|128,k_max=2048|4096,a_depth=4096|8192|16384"
ENUMERABLE_SPACE = "rows=1..16,cols=1..16,data_width=32|64,k_max=2048,a_depth=4096"


def _clear_caches():
    from ...accelerators.gemm import cost
    cost._job_cycles.cache_clear()


def _speed(model, points, progress):
    workload = load_workload(model)
    space = list(SearchSpace(registry()["gemm"], SPEED_SPACE).enumerate())
    chosen = random.Random(0).sample(space, points)
    record = {"model": workload.name, "points": points, "space": SPEED_SPACE}
    # as `dse` evaluates (points over budget costed too, for the constrained sampler), then pruning them early
    for label, costing in (("", True), ("_pruning_early", False)):
        evaluator = Evaluator(accel="gemm", workload=workload, board=get_board("pynq-z1"), cost_infeasible=costing)
        _clear_caches()
        progress(f"evaluating {points} random points on {workload.name} (cold caches{'' if costing else ', over-budget points not costed'})")
        wall, cpu = time.perf_counter(), time.process_time()
        results = [evaluator.evaluate(p) for p in chosen]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        costed = sum(1 for r in results if r.cycles)
        record.update({f"costed_points{label}": costed, f"cpu_seconds{label}": cpu, f"wall_seconds{label}": wall,
                       f"points_per_min_per_core{label}": points / cpu * 60,
                       f"costed_points_per_min_per_core{label}": costed / cpu * 60 if costed else None})
    return record


def _ray(model, points, progress):
    import functools
    from ..execution.runners import RayRunner
    config = SearchConfig(accel="gemm", model=str(Path(model)), board="pynq-z1", objectives=["latency", "dsp"],
                          clock_mhz=100.0, dma=[8, 0], space=SPEED_SPACE)
    call = functools.partial(_timed_point, json.dumps(config, sort_keys=True))
    space = list(SearchSpace(registry()["gemm"], SPEED_SPACE).enumerate())
    rng = random.Random(1)
    # the same batches for both worker counts, each batch new to the workers' caches
    warm_up, batches = rng.sample(space, 16), [rng.sample(space, points) for _ in range(3)]
    times, cpu, loads = {}, {}, {}
    for workers in (1, 2):
        with RayRunner(workers=workers) as runner:
            runner.map(call, warm_up)            # every worker loads the model
            progress(f"Ray, {workers} worker(s): 3 x {points} points")
            taken, spent = [], []
            loads[workers] = os.getloadavg()[0]
            for batch in batches:
                started = time.perf_counter()
                spent.append(sum(seconds for _, seconds in runner.map(call, batch)))
                taken.append(time.perf_counter() - started)
            times[workers], cpu[workers] = float(np.median(taken)), float(np.median(spent))
    # On a loaded machine wall time says little: the workers' CPU time per batch shows whether the work
    # itself grew when spread over two workers (a ratio near 1: no overhead to pay on free cores).
    return {"points": points, "seconds_1_worker": times[1], "seconds_2_workers": times[2],
            "speedup": times[1] / times[2], "worker_cpu_seconds_1_worker": cpu[1],
            "worker_cpu_seconds_2_workers": cpu[2], "worker_cpu_ratio_2_vs_1": cpu[2] / cpu[1],
            "wall_parallel_efficiency": cpu[2] / times[2] / 2, "load_average_1_worker": loads[1],
            "load_average_2_workers": loads[2], "cpus": os.cpu_count()}


def _timed_point(config_json, params):
    """A point's result and the CPU seconds it took in the worker."""
    started = time.process_time()
    result = evaluate_point(config_json, params)
    return result, time.process_time() - started


def _search_until(evaluator, space, objectives, target, reference, budget, seed, enqueue=()):
    """Trials an NSGA-II search needs before its front's hypervolume reaches ``target`` (None if not in budget)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize"] * len(objectives),
                                sampler=optuna.samplers.NSGAIISampler(seed=seed, population_size=16))
    for params in enqueue:
        study.enqueue_trial(params, skip_if_exists=True)
    front = []
    for number in range(1, budget + 1):
        trial = study.ask()
        result = evaluator.evaluate(space.suggest(trial))
        # as `accelkit dse` does: a costed infeasible point is told with its violations
        if result.infeasible and not result.violations:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        for name, amount in sorted(result.violations.items()):
            trial.set_constraint(name, amount)
        values = [result.objective(o) for o in objectives]
        study.tell(trial, values)
        if result.infeasible:
            continue
        front.append(values)
        if hypervolume(front, reference) >= target:
            return number, study
    return None, study


def _exhaustive(model, objectives, seeds, progress):
    workload = load_workload(model)
    evaluator = Evaluator(accel="gemm", workload=workload, board=get_board("pynq-z1"))
    space = SearchSpace(registry()["gemm"], ENUMERABLE_SPACE)
    points = list(space.enumerate())
    progress(f"exhaustive: {len(points)} points of {workload.name}")
    values = [[r.objective(o) for o in objectives] for r in map(evaluator.evaluate, points) if not r.infeasible]
    reference = [1.1 * max(v[i] for v in values) for i in range(len(objectives))]
    full = hypervolume(values, reference)
    needed = []
    for seed in range(seeds):
        trials, _ = _search_until(evaluator, space, objectives, 0.95 * full, reference, len(points), seed)
        needed.append(trials)
        progress(f"seed {seed}: 95% of the exhaustive hypervolume after {trials} trials")
    shares = [n / len(points) if n else None for n in needed]
    return {"model": workload.name, "space": ENUMERABLE_SPACE, "points": len(points), "feasible": len(values),
            "objectives": list(objectives), "reference_point": reference, "exhaustive_hypervolume": full,
            "trials_to_95_percent": needed, "share_of_space": shares,
            "median_share": float(np.median([s for s in shares if s is not None])) if any(shares) else None}


def _reuse(first, second, trials, seeds, progress):
    """Trials a search on ``second`` needs to reach 95% of its from-scratch front, alone and seeded by ``first``."""
    from ..dse.reuse import seeds_from
    from ..dse.search import run_search
    from ..execution.runners import SerialRunner
    board = get_board("pynq-z1")
    objectives = ["latency", "dsp"]
    space = SearchSpace(registry()["gemm"], SPEED_SPACE)
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "reuse.db")
        config = SearchConfig(accel="gemm", model=str(first), board=board.name, objectives=objectives,
                              clock_mhz=100.0, dma=[8, 0], space=SPEED_SPACE)
        progress(f"reuse: tuning {Path(str(first)).name} ({trials} trials)")
        started = time.perf_counter()
        run_search(config, db, trials=trials, runner=SerialRunner(), seed=0)
        first_seconds = time.perf_counter() - started
        target_config = SearchConfig(config, model=str(second))
        seeded = seeds_from(db, target_config)
    evaluator = Evaluator(accel="gemm", workload=load_workload(second), board=board)
    rows = []
    for seed in range(seeds):
        # the from-scratch search's final front sets the bar both searches must reach
        _, scratch = _search_until(evaluator, space, objectives, float("inf"), [1e9, 1e9], trials, seed)
        values = [t.values for t in scratch.best_trials]
        reference = [1.1 * max(v[i] for v in values) for i in range(2)]
        target = 0.95 * hypervolume(values, reference)
        alone, _ = _search_until(evaluator, space, objectives, target, reference, trials, seed)
        reused, _ = _search_until(evaluator, space, objectives, target, reference, trials, seed, enqueue=seeded)
        rows.append({"seed": seed, "from_scratch": alone, "with_reuse": reused})
        progress(f"reuse seed {seed}: {alone} trials from scratch, {reused} with reuse")
    return {"first_model": Path(str(first)).stem, "second_model": Path(str(second)).stem, "trials": trials,
            "first_search_seconds": first_seconds, "seeds_reused": len(seeded), "runs": rows,
            "target": "95% of the from-scratch search's final front hypervolume (same seed)"}


def dse_bench(args):
    from ..zoo import resolve_model
    progress = progress_printer("bench dse")
    models = (args.models or "mobilenet_v2,efficientnet_tiny").split(",")
    parts = _parts(args.only)
    first = resolve_model(models[0])
    record = {"calibration": {name: calibration_report(name) for name in MODELS}, "parts": sorted(parts),
              "load_average_at_start": os.getloadavg()}
    if "speed" in parts:
        _speed_part(record, first, args, progress)
    if "ray" in parts:
        _ray_part(record, first, progress)
    if "exhaustive" in parts:
        record["exhaustive"] = _exhaustive(first, ("latency", "dsp"), 3, progress)
        e = record["exhaustive"]
        console.print(f"enumerable space of {e['points']} points: 95% of the exhaustive hypervolume after "
                      f"{e['trials_to_95_percent']} trials (median share {e['median_share']})")
    if "reuse" in parts and len(models) > 1:
        record["reuse"] = _reuse(first, resolve_model(models[1]), 120, 3, progress)
        console.print(table("tuning reuse: trials to 95% of the from-scratch front",
                            ["seed", "from scratch", "with reuse"],
                            [[r["seed"], r["from_scratch"], r["with_reuse"]] for r in record["reuse"]["runs"]]))
    return provenance("bench dse", None, None, None, 0, **record)


PARTS = ("speed", "ray", "exhaustive", "reuse")


def _parts(text):
    if not text:
        return set(PARTS)
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(PARTS)
    if unknown or not names:
        raise ParameterError(f"--only {text!r}: bench dse's parts are {', '.join(PARTS)}")
    return names


def _speed_part(record, first, args, progress):
    record["speed"] = _speed(first, args.samples or 200, progress)
    r = record["speed"]
    console.print(f"cost model: {r['points_per_min_per_core']:,.0f} design points/min/core on {r['model']} as dse "
                  f"evaluates them ({r['costed_points']} of {r['points']} costed, {r['cpu_seconds']:.1f} s CPU); "
                  f"{r['points_per_min_per_core_pruning_early']:,.0f} when over-budget points are not costed "
                  f"({r['costed_points_pruning_early']} costed, {r['cpu_seconds_pruning_early']:.1f} s CPU)")


def _ray_part(record, first, progress):
    try:
        # 600 points: about 7 s of one core per batch. A 60-point batch (0.7 s) is too short to spread:
        # Ray's start of each chunk and the result transfer took as long as the work saved (0.9x).
        record["ray"] = r = _ray(first, 600, progress)
        console.print(f"Ray: 2 workers {r['speedup']:.2f}x of 1 ({r['seconds_1_worker']:.1f} s vs "
                      f"{r['seconds_2_workers']:.1f} s wall per batch, load average {r['load_average_1_worker']:.1f} "
                      f"and {r['load_average_2_workers']:.1f} on {r['cpus']} CPUs); worker CPU per batch "
                      f"{r['worker_cpu_seconds_1_worker']:.1f} s and {r['worker_cpu_seconds_2_workers']:.1f} s "
                      f"(ratio {r['worker_cpu_ratio_2_vs_1']:.2f}: the work does not grow when spread)")
    except ImportError as error:
        record["ray"] = {"skipped": str(error)}
