"""Multi-objective design-space search with optuna, trials kept in SQLite so a killed sweep resumes.

The loop is ask-and-tell: this process alone talks to the study's storage
(SQLite suits one writer), asks the sampler for as many points as the runner
has workers, evaluates them through the runner (``sw/execution/runners.py``)
and tells the results. Every told trial is committed to the database at once,
so ``kill -9`` loses at most the points being evaluated; on the next start
those (left RUNNING) are marked FAIL and the sweep goes on until ``trials``
points are finished (complete or pruned).

Infeasible points keep the reason in the trial's ``infeasible`` attribute. A
point over the board's budget, under the required clock or unable to run some
of the layers is still costed and told COMPLETE with its objective values and
its constraint violations
(``Trial.set_constraint``, optuna's successor of ``constraints_func``): NSGA-II's
constrained domination and TPE then learn how far out of bounds it lies instead
of seeing nothing, and the front (``study.best_trials``) holds feasible points
only. A point with no objective values (parameters the accelerator refuses)
is PRUNED.
"""

import functools
import hashlib
import json
import time

import numpy as np

from ...errors import ParameterError
from .evaluate import Evaluator, load_workload
from .reuse import params_key, stored_choices, workload_signatures

__all__ = ["OBJECTIVES", "SearchConfig", "run_search", "front", "hypervolume", "evaluate_point", "finished",
           "feasible"]

#: objective name -> what it measures (all minimised)
OBJECTIVES = {"latency": "model latency in ms at the clock", "dsp": "DSP slices", "lut": "LUTs (logic and RAM)",
              "ff": "flip-flops", "bram36": "RAMB36 equivalents", "energy": "energy per inference in uJ"}


class SearchConfig(dict):
    """What defines a search (accelerator, model, board, clock, DMA, objectives, space): a plain picklable dict."""

    @property
    def study_name(self):
        digest = hashlib.sha256(json.dumps(self, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self['accel']}-{self['model']}-{self['board']}-{'+'.join(self['objectives'])}-{digest}"


def check_objectives(text):
    """``"latency,dsp"`` to a tuple, each checked against ``OBJECTIVES``."""
    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise ParameterError(f"--objectives {text!r}: give two or more distinct names of "
                             f"{', '.join(OBJECTIVES)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return names


@functools.lru_cache(maxsize=4)
def _evaluator(config_json):
    from ...driver.device import DmaTiming
    from .boards import get_board
    config = json.loads(config_json)
    return Evaluator(accel=config["accel"], workload=load_workload(config["model"]), board=get_board(config["board"]),
                     clock_mhz=config["clock_mhz"], dma=DmaTiming(*config["dma"]),
                     min_clock_mhz=config.get("min_clock_mhz"))


def evaluate_point(config_json, params, known=None):
    """A point's result as a dict (module-level and keyed by the config's JSON, so workers build the
    evaluator once per process and a runner can pickle the call).

    ``known``: stored per-layer choices for these parameters ({layer signature: choice}, tuning reuse);
    the result counts the per-layer searches run (``choice_searches``) and skipped (``choices_reused``).
    """
    evaluator = _evaluator(config_json)
    searched, reused = evaluator.searched, evaluator.reused
    result = evaluator.evaluate(params, known).as_dict()
    result["choice_searches"] = evaluator.searched - searched
    result["choices_reused"] = evaluator.reused - reused
    return result


def _evaluate_item(config_json, item):
    return evaluate_point(config_json, *item)


def _resolved(cls, params):
    """The parameters ``cls`` resolves ``params`` to (defaults filled in), or None when it refuses them."""
    try:
        return dict(cls(**params).params)
    except ParameterError:
        return None


def finished(study):
    """Trials that ended (complete or pruned): what counts towards ``trials``."""
    from optuna.trial import TrialState
    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def feasible(trial):
    """Whether a finished trial met every limit (complete, no infeasibility recorded)."""
    return trial.values is not None and not trial.user_attrs.get("infeasible")


def _fail_interrupted(study):
    """Trials a killed run left RUNNING: marked FAIL (this process is the study's only writer)."""
    from optuna.trial import TrialState
    stale = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return len(stale)


def open_study(config, storage, sampler="nsga2", seed=0, trials=200):
    """The study for ``config`` in the SQLite file ``storage`` (created, or loaded to resume)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler == "nsga2":
        chosen = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(8, min(50, trials // 8)))
    elif sampler == "tpe":
        chosen = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(20, trials // 4 + 1))
    elif sampler == "random":
        chosen = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise ParameterError(f"unknown sampler {sampler!r}; samplers: nsga2, tpe, random")
    study = optuna.create_study(study_name=config.study_name, storage=f"sqlite:///{storage}", sampler=chosen,
                                directions=["minimize"] * len(config["objectives"]), load_if_exists=True)
    if not study.user_attrs.get("config"):
        study.set_user_attr("config", dict(config))
        study.set_user_attr("signatures", workload_signatures(config["accel"], load_workload(config["model"])))
    return study


def run_search(config, storage, *, trials, runner, sampler="nsga2", seed=0, progress=None, enqueue=(),
               choices=None):
    """Run the search until ``trials`` points are finished; returns the study.

    ``enqueue``: parameter dicts to evaluate first (tuning reuse). ``choices``: per-layer choices stored by
    earlier searches, {params key: {layer signature: choice}} (``reuse.choices_from``); a point with stored
    choices plans those layers with them instead of searching. The study's own trials' choices are used the
    same way when it resumes. ``progress(dict)`` is called after each batch with trials done, feasible
    count, the current front and the estimated time left.
    """
    from optuna.trial import TrialState
    from .space import SearchSpace
    from ...accelerators.base import registry
    study = open_study(config, storage, sampler, seed, trials)
    interrupted = _fail_interrupted(study)
    space = SearchSpace(registry()[config["accel"]], config.get("space", ""))
    done = len(finished(study))
    if enqueue and done == 0:
        for params in enqueue:
            study.enqueue_trial({k: v for k, v in params.items() if k in space.choices}, skip_if_exists=True)
    config_json = json.dumps(config, sort_keys=True)
    call = functools.partial(_evaluate_item, config_json)
    cls = registry()[config["accel"]]
    table = {}
    for source in (choices or {}, stored_choices(study) if done else {}):
        for key, by_signature in source.items():
            table.setdefault(key, {}).update(by_signature)
    started, at_start = time.monotonic(), done
    objectives = config["objectives"]
    while done < trials:
        asked = [study.ask() for _ in range(min(runner.workers, trials - done))]
        points = [space.suggest(trial) for trial in asked]
        items = []
        for params in points:
            resolved = _resolved(cls, params) if table else None
            items.append((params, table.get(params_key(resolved)) if resolved else None))
        for trial, result in zip(asked, runner.map(call, items)):
            if result["mappings"]:
                table.setdefault(params_key(result["params"]), {}).update(result["mappings"])
            trial.set_user_attr("result", result)
            if result["infeasible"]:
                trial.set_user_attr("infeasible", result["infeasible"])
            if result["infeasible"] and not result["violations"]:
                study.tell(trial, state=TrialState.PRUNED)
                continue
            for name, amount in sorted(result["violations"].items()):
                trial.set_constraint(name, amount)
            study.tell(trial, [_objective(result, name) for name in objectives])
        done += len(asked)
        if progress:
            rate = (done - at_start) / max(time.monotonic() - started, 1e-9)
            best = study.best_trials
            progress({"done": done, "trials": trials, "interrupted": interrupted,
                      "front": sorted([[round(v, 4) for v in t.values] for t in best])[:6],
                      "front_size": len(best), "seconds_left": (trials - done) / rate if rate else None})
    return study


def _objective(result, name):
    if name == "latency":
        return result["latency_ms"]
    if name == "energy":
        return result["energy_uj"]
    return result["resources"][name]


def front(study):
    """The Pareto-optimal finished trials, fastest first: [(trial number, result dict, objective values)].

    A point the sampler drew more than once is listed once (its first trial).
    """
    seen, points = set(), []
    for trial in sorted(study.best_trials, key=lambda t: (list(t.values), t.number)):
        key = json.dumps(trial.user_attrs["result"]["params"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            points.append((trial.number, trial.user_attrs["result"], list(trial.values)))
    return points


def hypervolume(points, reference):
    """Hypervolume (all objectives minimised) dominated by ``points`` up to ``reference``."""
    from optuna._hypervolume import compute_hypervolume
    points = np.asarray([p for p in points if all(v < r for v, r in zip(p, reference))], dtype=float)
    if not len(points):
        return 0.0
    return float(compute_hypervolume(points, np.asarray(reference, dtype=float)))
