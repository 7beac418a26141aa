"""`accelkit dse MODEL`: multi-objective design-space exploration of an accelerator's parameters on a model.

Trials come from optuna (``sw/dse/search.py``), each point's latency from the
closed-form cost model, its resources from the Yosys-calibrated analytic model
(``sw/dse/resources.py``) and its energy from ``sw/hardware/power.py``; points
over the board's budget, under the required clock (``--min-clock-mhz``, from the
Fmax of placed-and-routed points) or unable to run a layer are infeasible, the reason
recorded. Afterwards the Pareto front is printed and plotted, the fastest front
points are synthesized with Yosys and the fastest one is re-run on RTL to confirm
its cycles and outputs; ``--place-route`` places and routes the chosen design on the
ECP5-85F (cached; ten minutes or more for an 8x8 GEMM), and the chosen design is
exported as a parameters file, with its per-layer mappings for an accelerator that
searches them (flexarray).
"""

import time
from collections import Counter
from pathlib import Path

from ...accelerators.base import get_accelerator, registry
from ...driver.device import DmaTiming
from ...errors import ParameterError
from ..reports.output import console, progress_printer, provenance, replacing, table, write_json
from . import arguments

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from ..dse.boards import BOARDS
    parser.add_argument("model", help="a .tflite file, or a bundled model name (see sw/zoo/models)")
    parser.add_argument("--accel", default="gemm", help="registered accelerator whose parameters are searched")
    parser.add_argument("--board", choices=tuple(BOARDS), default="pynq-z1", help="the budget a design must fit")
    parser.add_argument("--objectives", default="latency,dsp",
                        help="two or more of latency, dsp, lut, ff, bram36, energy (all minimised)")
    parser.add_argument("--trials", type=arguments.positive_int("--trials", 1 << 20), default=200,
                        help="finished trials to reach (a resumed sweep counts the ones already stored)")
    parser.add_argument("--storage", metavar="FILE.db", help="SQLite file of the trials (default: "
                        "MODEL-ACCEL-BOARD.dse.db); the same command again resumes it")
    parser.add_argument("--space", default="", help="narrow the searched space: rows=2..16,cols=4|8|16,...")
    parser.add_argument("--sampler", choices=("nsga2", "tpe", "random"), default="nsga2")
    parser.add_argument("--seed", type=arguments.seed, default=0)
    parser.add_argument("--clock-mhz", type=arguments.clock_mhz, help="clock for latency (default: the board's, or "
                        "--min-clock-mhz when given)")
    parser.add_argument("--min-clock-mhz", type=arguments.clock_mhz, help="required clock: a design whose Fmax "
                        "(the nearest placed-and-routed point's, sw/dse/calibration.json) is lower is infeasible")
    parser.add_argument("--place-route", action="store_true", help="place and route the chosen design on the "
                        "ECP5-85F (nextpnr; cached by design hash; ten minutes or more for an 8x8 gemm) and "
                        "check it against --min-clock-mhz")
    parser.add_argument("--dma-bytes", type=arguments.dma_bytes, default=8, help="DMA bytes per cycle (default 8)")
    parser.add_argument("--dma-latency", type=arguments.dma_latency, default=0, help="DMA latency in cycles")
    arguments.add_runner_arguments(parser, "trials")
    parser.add_argument("--yosys", type=arguments.non_negative_int("--yosys", 64), default=2,
                        help="synthesize this many of the fastest front points with Yosys (cached; default 2)")
    parser.add_argument("--confirm", type=arguments.non_negative_int("--confirm", 16), default=1,
                        help="re-run this many of the fastest fitting front points on RTL (default 1)")
    parser.add_argument("--rtl-backend", choices=("verilator", "amaranth"), default="verilator")
    parser.add_argument("--reuse", metavar="DB", help="a finished search's database whose front seeds this one "
                        "and whose per-layer choices (flexarray's mappings, by design and layer signature) are "
                        "used instead of searching again")
    parser.add_argument("--export", metavar="PARAMS.json", help="write the chosen design (the fastest confirmed "
                        "front point; with --confirm 0 the fastest front point, marked unconfirmed) for "
                        "`accelkit run --params-file`, with its per-layer mappings for flexarray")
    parser.add_argument("--plot", metavar="FRONT.png", help="plot the trials and the front")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")


def _config(args):
    from ..dse.search import SearchConfig, check_objectives
    from ..dse.space import SearchSpace
    from ..dse.boards import get_board
    from ..zoo import resolve_model
    available = registry()
    cls = available.get(args.accel)
    if cls is None or isinstance(cls, str):
        raise ParameterError(f"--accel {args.accel!r} is not an available accelerator; registered: "
                             f"{', '.join(sorted(available))}")
    space = SearchSpace(cls, args.space)       # checked now, before any work
    from ..dse.resources import resource_model
    resource_model(args.accel)                  # an accelerator without a resource model is refused here
    board = get_board(args.board)
    path = resolve_model(args.model)
    config = SearchConfig(accel=args.accel, model=str(path), board=board.name, objectives=list(check_objectives(
        args.objectives)), clock_mhz=args.clock_mhz or args.min_clock_mhz or board.clock_mhz,
        dma=[args.dma_bytes, args.dma_latency], space=args.space)
    if args.min_clock_mhz is not None:
        from ..dse.resources import fmax_model
        fmax_model(args.accel)                  # no measured Fmax: refused here, with how to measure one
        config["min_clock_mhz"] = args.min_clock_mhz   # only when given, so earlier studies keep their names
    return config, space, board


def _printer():
    say = progress_printer("dse")
    last = [0.0]

    def report(state):
        now = time.monotonic()
        if now - last[0] < 2.0 and state["done"] < state["trials"]:
            return
        last[0] = now
        left = state["seconds_left"]
        say(f"trials {state['done']}/{state['trials']}, front {state['front_size']} point(s) "
            f"{state['front'][:3]}{' ...' if state['front_size'] > 3 else ''}, "
            f"about {left:.0f} s left" if left is not None else "")
    return report


def _reused(args, config):
    """Front parameters of the ``--reuse`` database's studies, nearest workloads first, and the per-layer
    choices (flexarray's mappings) stored there for this accelerator."""
    if not args.reuse:
        return [], {}
    from ..dse.reuse import choices_from, seeds_from
    return seeds_from(args.reuse, config), choices_from(args.reuse, config["accel"])


def _layer_choices(config, result):
    """The chosen design's per-layer choices, layer by layer: [{layer, op, signature, mapping}]."""
    if not result.get("mappings"):
        return []
    from ..dse.evaluate import load_workload
    accelerator = get_accelerator(config["accel"], result["params"])
    sign = getattr(accelerator, "choice_signature", None) or accelerator.signature
    rows = []
    for index, layer, shapes in load_workload(config["model"]).layers:
        try:
            signature = sign(layer, *shapes)
        except Exception:       # noqa: BLE001 - a layer its kind cannot sign has no stored choice
            continue
        if signature in result["mappings"]:
            rows.append({"layer": index, "op": layer.op, "signature": signature,
                         "mapping": result["mappings"][signature]})
    return rows


def _check_storage(storage):
    """The trials' database can be created, or is an existing SQLite file (checked before any work)."""
    path = arguments.check_output_path(storage, "--storage")
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise ParameterError(f"--storage {str(path)!r} exists and is not an SQLite database; "
                                     "name a new file or an earlier search's database")


def run(args):
    from ..dse.resources import calibration_report
    from ..dse.search import front, finished, run_search
    config, space, board = _config(args)
    storage = args.storage or f"{Path(config['model']).stem}-{args.accel}-{board.name}.dse.db"
    _check_storage(storage)
    progress = progress_printer("dse")
    progress(f"searching {space.size:,} combinations of {args.accel} on {Path(config['model']).name} for "
             f"{board.name}, objectives {', '.join(config['objectives'])}; trials kept in {storage}")
    started, cpu_started = time.perf_counter(), time.process_time()
    seeds, choices = _reused(args, config)
    if args.reuse:
        progress(f"--reuse {args.reuse}: {len(seeds)} front point(s) to try first, per-layer choices stored for "
                 f"{len(choices)} design(s)")
    with arguments.open_args_runner(args) as runner:
        study = run_search(config, storage, trials=args.trials, runner=runner, sampler=args.sampler, seed=args.seed,
                           progress=_printer(), enqueue=seeds, choices=choices)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    trials = finished(study)
    pareto = front(study)
    infeasible = Counter(t.user_attrs.get("infeasible", "").split(":")[0] for t in trials
                         if t.user_attrs.get("infeasible"))
    summary = {"trials": len(trials), "feasible": len(trials) - sum(infeasible.values()),
               "infeasible": sum(infeasible.values()), "infeasible_by_reason": dict(infeasible),
               "search_seconds": seconds, "search_cpu_seconds": cpu_seconds, "storage": storage,
               "study": config.study_name,
               # per-layer choices (flexarray's mappings): searched, or taken from --reuse's stored ones
               "choice_searches": sum(t.user_attrs.get("result", {}).get("choice_searches", 0) for t in trials),
               "choices_reused": sum(t.user_attrs.get("result", {}).get("choices_reused", 0) for t in trials)}
    _print_front(pareto, config, space, summary)
    calibration = calibration_report(args.accel)
    synthesized = _synthesize(pareto[:args.yosys], args.accel, board, progress)
    confirmed = _confirm(pareto, args, config, synthesized, board, progress)
    chosen = next((c for c in confirmed if c["confirmed"]), None)
    timing = _place_route(chosen, pareto, args, progress) if args.place_route else None
    exported = chosen
    if exported is None and not args.confirm and pareto:
        # no RTL confirmation asked for: the fastest front point, said to be unconfirmed
        result = pareto[0][1]
        exported = {"params": result["params"], "figures": {"latency_ms": result["latency_ms"],
                                                            "resources": result["resources"],
                                                            "energy_uj": result["energy_uj"], "board": board.name}}
    if args.export and exported:
        from ..execution.params_file import params_record
        accelerator = get_accelerator(args.accel, exported["params"])
        result = next((r for _, r, _ in pareto if r["params"] == dict(accelerator.params)), {})
        extra = {"mappings": _layer_choices(config, result)} if result.get("mappings") else {}
        write_json(args.export, params_record(accelerator, source="accelkit dse", model=config["model"],
                                              board=board.name, confirmed_on=args.rtl_backend if chosen else None,
                                              figures=exported["figures"], **extra))
        console.print(f"{'chosen' if chosen else 'fastest front (not confirmed on RTL)'} design written to "
                      f"{args.export} (`accelkit run --params-file {args.export}`)"
                      + (f", with its {len(extra['mappings'])} per-layer mappings" if extra else ""))
    elif args.export:
        console.print(f"[bold]no front point was confirmed on RTL: {args.export} not written[/bold]")
    if args.plot:
        _plot(study, config, args.plot)
    if args.json:
        write_json(args.json, provenance("dse", None, None, DmaTiming(args.dma_bytes, args.dma_latency), args.seed,
                                         config=dict(config), space=space.describe(), summary=summary,
                                         front=[{"trial": n, **r, "objectives": v} for n, r, v in pareto],
                                         calibration=calibration, yosys=synthesized, rtl=confirmed,
                                         chosen=chosen, place_route=timing))
    if timing is not None and not timing["meets_required_clock"]:
        return 1
    return 0 if (chosen or not args.confirm) else 1


def _place_route(chosen, pareto, args, progress):
    """ECP5-85F place and route of the chosen design (else the fastest front point): its Fmax against the
    required clock and against the Fmax model's estimate."""
    if chosen is None and not pareto:
        console.print("[bold]no front point to place and route[/bold]")
        return None
    params = chosen["params"] if chosen else pareto[0][1]["params"]
    from ..hardware import figures, timing
    ecp5_verilog, ecp5_timing = figures.ecp5_verilog, timing.ecp5_timing
    accelerator = get_accelerator(args.accel, params)
    progress(f"placing and routing {accelerator!r} on the ECP5-85F (cached by design hash)")
    result = ecp5_timing(ecp5_verilog(accelerator, progress), accelerator.top_name, progress=progress)
    from ..dse.resources import fmax_model, remember_fmax
    estimate = None
    try:
        estimate = fmax_model(args.accel).estimate(dict(accelerator.params))[0]
    except ParameterError:
        pass
    remember_fmax(accelerator, result)      # the Fmax model's next searches use it
    required = args.min_clock_mhz
    record = {"params": dict(accelerator.params), "fmax_mhz": result.fmax_mhz, "source": result.source,
              "per_seed": dict(result.per_seed), "critical_path": [result.path_from, result.path_to],
              "seconds": result.seconds, "model_fmax_mhz": estimate, "required_mhz": required,
              "meets_required_clock": required is None or result.fmax_mhz >= required}
    console.print(f"{accelerator!r} placed and routed: Fmax {result.fmax_mhz:.1f} MHz ({result.source}, worst of "
                  f"{len(result.per_seed)} seeds; critical path {result.path_from} -> {result.path_to})"
                  + (f", model {estimate:.1f} MHz" if estimate is not None else "")
                  + (f"; required {required:g} MHz: {'met' if record['meets_required_clock'] else 'NOT MET'}"
                     if required else ""), highlight=False)
    return record


def _varying(space):
    return [name for name, values in space.choices.items() if len(values) > 1]


def _print_front(pareto, config, space, summary):
    names = _varying(space)
    rows = [[n, *(r["params"][k] for k in names), r["latency_ms"], r["cycles"], r["resources"]["lut"],
             r["resources"]["ff"], r["resources"]["dsp"], r["resources"]["bram36"], r["energy_uj"]]
            for n, r, _ in pareto]
    console.print(table(f"Pareto front of {config['accel']} on {Path(config['model']).name} "
                        f"({', '.join(config['objectives'])}), {summary['trials']} trials",
                        ["trial", *names, "latency ms", "cycles", "LUT", "FF", "DSP", "BRAM36", "energy uJ"], rows))
    reasons = ", ".join(f"{count} {reason}" for reason, count in summary["infeasible_by_reason"].items())
    console.print(f"{summary['feasible']} feasible, {summary['infeasible']} infeasible ({reasons or 'none'}); "
                  f"search {summary['search_seconds']:.1f} s ({summary['search_cpu_seconds']:.1f} s CPU in this "
                  f"process)" + (f"; per-layer mapping searches {summary['choice_searches']}, stored mappings "
                                 f"reused {summary['choices_reused']}"
                                 if summary["choice_searches"] or summary["choices_reused"] else ""))


def _synthesize(points, accel, board, progress):
    """Yosys figures of front points next to the model's, and whether they fit the board by Yosys' count."""
    if not points or board.yosys_family is None:
        return []
    from ..execution.devices import design_key
    from ..hardware.synthesis import estimate_resources
    from ...sim.verilator import convert_verilog
    rows = []
    for number, result, _ in points:
        accelerator = get_accelerator(accel, result["params"])
        verilog = convert_verilog(accelerator.shell(), accelerator.top_name, design_key(accelerator), progress)
        estimate = estimate_resources(verilog, accelerator.top_name, family=board.yosys_family, progress=progress)
        measured = {"lut": estimate.lut_total, "ff": estimate.ff, "dsp": estimate.dsp, "bram36": estimate.bram36}
        fits = all(measured[name] <= limit for name, limit in board.budget().items())
        rows.append({"trial": number, "params": result["params"], "yosys": measured, "model": result["resources"],
                     "fits": fits})
    console.print(table(f"Yosys synth_xilinx -family {board.yosys_family} of the fastest front points",
                        ["trial", "LUT (model)", "FF (model)", "DSP (model)", "BRAM36 (model)", f"fits {board.name}"],
                        [[r["trial"], *(f"{r['yosys'][k]:g} ({r['model'][k]:g})" for k in ("lut", "ff", "dsp",
                                                                                          "bram36")),
                          "yes" if r["fits"] else "NO"] for r in rows]))
    return rows


def _confirm(pareto, args, config, synthesized, board, progress):
    """Re-run the fastest front points that fit (by Yosys where synthesized) on RTL: cycles and outputs."""
    if not args.confirm:
        return []
    from ..execution.executors import open_executor
    from ..frontends.tflite.runner import one_inference
    from ..verification.fidelity import compare_records
    import numpy as np
    by_trial = {r["trial"]: r["fits"] for r in synthesized}
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    results = []
    for number, result, _ in pareto:
        if len(results) >= args.confirm:
            break
        if not by_trial.get(number, True):
            continue
        accelerator = get_accelerator(args.accel, result["params"])
        progress(f"confirming trial {number} on {args.rtl_backend}: {accelerator!r}")
        with open_executor(accelerator, args.rtl_backend, dma, progress=progress) as rtl, \
                open_executor(accelerator, "model", dma) as fast:
            simulated, wall, outputs, expected = one_inference(config["model"], rtl, 0)
            estimated, _, fast_outputs, _ = one_inference(config["model"], fast, 0)
        rows = compare_records([r.as_dict(1e8) for r in simulated.records],
                               [r.as_dict(1e8) for r in estimated.records])
        rtl_cycles = sum(r["rtl_cycles"] for r in rows)
        equal_outputs = all(np.array_equal(a, b) for a, b in zip(outputs, fast_outputs))
        bit_exact = all(np.array_equal(a, b) for a, b in zip(outputs, expected))
        confirmed = rtl_cycles == result["cycles"] and all(r["error"] == 0 for r in rows) and equal_outputs
        results.append({"trial": number, "params": result["params"], "rtl_cycles": rtl_cycles,
                        "model_cycles": result["cycles"], "layers": len(rows), "outputs_equal_model": equal_outputs,
                        "bit_exact_with_litert_ref": bit_exact, "wall_seconds": wall, "confirmed": confirmed,
                        "figures": {"latency_ms": result["latency_ms"], "resources": result["resources"],
                                    "energy_uj": result["energy_uj"], "board": board.name}})
        console.print(f"trial {number} on {args.rtl_backend}: {rtl_cycles:,} cycles over {len(rows)} layers "
                      f"(cost model {result['cycles']:,}), outputs {'equal' if equal_outputs else 'DIFFERENT'}, "
                      f"bit-exact with LiteRT: {'yes' if bit_exact else 'NO'} -> "
                      f"{'confirmed' if confirmed else 'NOT CONFIRMED'}")
    return results


def _plot(study, config, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..dse.search import feasible as is_feasible, finished
    objectives = config["objectives"]
    done = finished(study)
    best = {t.number for t in study.best_trials}
    feasible = [t for t in done if is_feasible(t)]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([t.values[0] for t in feasible if t.number not in best],
               [t.values[1] for t in feasible if t.number not in best], s=10, c="0.7", label="feasible trials")
    pts = sorted((t.values[0], t.values[1]) for t in feasible if t.number in best)
    # with more than two objectives the front is not a curve in this projection: markers only
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if len(objectives) == 2 else "o", c="C3",
            label="Pareto front" + ("" if len(objectives) == 2 else f" ({', '.join(objectives)})"))
    units = {"latency": "latency (ms)", "energy": "energy (uJ)", "bram36": "BRAM36"}
    ax.set_xlabel(units.get(objectives[0], objectives[0].upper()))
    ax.set_ylabel(units.get(objectives[1], objectives[1].upper()))
    ax.set_xscale("log")
    ax.set_title(f"{config['accel']} on {Path(config['model']).stem}, {config['board']}: "
                 f"{len(done)} trials ({len(done) - len(feasible)} infeasible)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with replacing(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
