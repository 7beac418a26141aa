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

Per-layer choices are reused too: every trial of an accelerator whose planner
searches a choice per layer (flexarray's mappings) keeps, in its ``result``
attribute, the choice made for each layer signature at its parameters.
:func:`choices_from` gathers them from every stored study of the accelerator
(whatever the model or board: a mapping depends only on the design and the
layer), and a new search plans a layer whose (parameters, signature) is stored
with the stored choice instead of searching for one.
"""

import json

from ...accelerators.base import get_accelerator
from ...errors import ParameterError

__all__ = ["workload_signatures", "seeds_from", "choices_from", "stored_choices", "params_key"]


def workload_signatures(accel, workload) -> dict:
    """{layer signature: multiply-accumulates} of the workload's layers, as the accelerator's planner keys them
    (its per-layer choices, for an accelerator that has them)."""
    accelerator = get_accelerator(accel, {})
    # an accelerator with per-layer choices keys them by what they depend on (flexarray: the layer's structure)
    sign = getattr(accelerator, "choice_signature", None) or accelerator.signature
    signatures = {}
    for _, layer, shapes in workload.layers:
        try:
            signature = sign(layer, *shapes)
        except Exception:       # noqa: BLE001 - a layer this kind cannot sign is simply not shared
            continue
        signatures[signature] = signatures.get(signature, 0) + int(layer.macs(*shapes))
    return signatures


def _overlap(mine, theirs):
    total = sum(mine.values())
    return sum(macs for signature, macs in mine.items() if signature in theirs) / total if total else 0.0


def params_key(params):
    """The key per-layer choices are stored under: the design's resolved parameters as sorted JSON."""
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True)


def stored_choices(study):
    """{params key: {layer signature: choice}} of a study's finished trials (the per-layer choices they made,
    kept in each trial's ``result`` attribute)."""
    from optuna.trial import TrialState
    table = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        result = trial.user_attrs.get("result") or {}
        if result.get("mappings"):
            table.setdefault(params_key(result["params"]), {}).update(result["mappings"])
    return table


def _studies(path):
    """The studies stored in the optuna SQLite file ``path`` (:class:`ParameterError` if it is not one)."""
    import optuna
    from pathlib import Path
    if not Path(path).is_file():
        raise ParameterError(f"--reuse {path}: no such database")
    storage = f"sqlite:///{path}"
    try:
        summaries = optuna.get_all_study_summaries(storage)
    except Exception as error:   # noqa: BLE001 - optuna raises several kinds for a file that is not its database
        raise ParameterError(f"--reuse {path} is not an optuna database ({error})") from None
    return [optuna.load_study(study_name=summary.study_name, storage=storage) for summary in summaries]


def choices_from(path, accel):
    """{params key: {layer signature: choice}}: the per-layer choices of every trial of ``accel`` stored in
    ``path`` (empty for accelerators without per-layer choices)."""
    table = {}
    for study in _studies(path):
        if study.user_attrs.get("config", {}).get("accel") != accel:
            continue
        for key, by_signature in stored_choices(study).items():
            table.setdefault(key, {}).update(by_signature)
    return table


def seeds_from(path, config, limit=32):
    """Parameter dicts to try first: front points of the stored studies closest to ``config``'s workload."""
    from .evaluate import load_workload
    studies = _studies(path)
    mine = workload_signatures(config["accel"], load_workload(config["model"]))
    ranked = []
    for study in studies:
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
