"""Tuning reuse: a new search starts from the front points of earlier searches on similar workloads.

What is reused is stored by layer signature: every study records the
signatures of the layers it was tuned on (kind and shapes, ``driver/kinds``), and
a new search on another model ranks the stored studies of the same accelerator
and board by how much of its own work (multiply-accumulates) falls on layers
with a signature the study has seen. The Pareto-front parameters of the closest
studies are evaluated first (optuna ``enqueue_trial``), so the sampler begins
from designs already known to be good for those layers instead of from random
points. The GEMM accelerators have no per-layer knob of their own (their
depthwise grouping is decided in closed form by the planner), so for them the
reused choices are whole-design parameters.
"""

import json

from ...accelerators.base import get_accelerator
from ...errors import ParameterError

__all__ = ["workload_signatures", "seeds_from"]


def workload_signatures(accel, workload) -> dict:
    """{layer signature: multiply-accumulates} of the workload's layers, as the accelerator's planner keys them."""
    accelerator = get_accelerator(accel, {})
    signatures = {}
    for _, layer, shapes in workload.layers:
        try:
            signature = accelerator.signature(layer, *shapes)
        except Exception:       # noqa: BLE001 - a layer this kind cannot sign is simply not shared
            continue
        signatures[signature] = signatures.get(signature, 0) + int(layer.macs(*shapes))
    return signatures


def _overlap(mine, theirs):
    total = sum(mine.values())
    return sum(macs for signature, macs in mine.items() if signature in theirs) / total if total else 0.0


def seeds_from(path, config, limit=32):
    """Parameter dicts to try first: front points of the stored studies closest to ``config``'s workload."""
    import optuna
    from pathlib import Path
    from .evaluate import load_workload
    if not Path(path).is_file():
        raise ParameterError(f"--reuse {path}: no such database")
    storage = f"sqlite:///{path}"
    try:
        summaries = optuna.get_all_study_summaries(storage)
    except Exception as error:   # noqa: BLE001 - optuna raises several kinds for a file that is not its database
        raise ParameterError(f"--reuse {path} is not an optuna database ({error})") from None
    mine = workload_signatures(config["accel"], load_workload(config["model"]))
    ranked = []
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        other = study.user_attrs.get("config", {})
        if other.get("accel") != config["accel"] or other.get("board") != config["board"]:
            continue
        theirs = study.user_attrs.get("signatures")
        if theirs is None:
            theirs = workload_signatures(other["accel"], load_workload(other["model"]))
        ranked.append((_overlap(mine, theirs), study))
    ranked.sort(key=lambda entry: -entry[0])
    seeds, seen = [], set()
    for _, study in ranked:
        for trial in sorted(study.best_trials, key=lambda t: t.values):
            key = json.dumps(trial.params, sort_keys=True)
            if key not in seen:
                seen.add(key)
                seeds.append(dict(trial.params))
    return seeds[:limit]
