"""Fidelity of the fast model: cost-model cycles against RTL cycles, layer by layer, on the zoo."""

import functools

from ...accelerators.base import registry
from ...driver.kinds import get_kind
from ..zoo import ZOO, model_names

__all__ = ["TOLERANCE", "compare_records", "fidelity_table", "accelerator_fidelity"]

#: Largest relative difference allowed between cost-model and RTL cycles. The cores
#: here are deterministic and their models exact; the tolerance leaves room for
#: designs whose timing depends on data.
TOLERANCE = 0.02


def compare_records(rtl_records, model_records):
    """(layer, op, RTL cycles, model cycles, relative error) for the offloaded layers of two runs of one model.

    ``rtl_records`` come from a simulated run, ``model_records`` from the same model on the
    `model` backend (the accelerator's ``estimate`` of the same plans); both are the per-layer
    dicts of a report (``LayerRecord.as_dict``, or the ``layers`` of a run's JSON record).
    """
    estimates = {r["index"]: r["cycles"] for r in model_records if r["where"] == "accelerator"}
    rows = []
    for record in rtl_records:
        if record["where"] != "accelerator":
            continue
        estimate, cycles = estimates[record["index"]], record["cycles"]
        rows.append({"layer": record["index"], "op": record["op"], "rtl_cycles": cycles, "model_cycles": estimate,
                     "error": (estimate - cycles) / cycles if cycles else 0.0})
    return rows


def fidelity_table(backend, dma, progress=None, params=None, runner=None):
    """One simulated inference of every zoo model on every registered accelerator, against the cost model.

    Accelerators are the sweep's items (each one's RTL is built or loaded once), spread over ``runner``
    (``sw/execution/runners.py``; default: this process).
    """
    from ..execution.runners import SerialRunner
    names = [name for name, cls in sorted(registry().items())
             # broken, or runs no kind a TFLite model has (bfp's quantized MatMuls come from GGUF models)
             if not isinstance(cls, str) and any(get_kind(kind).tflite_ops for kind in cls.kinds)]
    call = functools.partial(accelerator_fidelity, backend=backend, dma=dma, params=dict(params or {}))

    def report(done, total):
        if progress:
            progress(f"{done}/{total} accelerators")
    rows = (runner or SerialRunner()).map(call, names, progress=report)
    return [row for per_accelerator in rows for row in per_accelerator]


def accelerator_fidelity(name, *, backend, dma, params):
    """The fidelity rows of one accelerator over the zoo (module level: a runner's worker is handed it)."""
    from ..execution.executors import open_executor
    from ..frontends.tflite.runner import one_inference
    rows = []
    accelerator = registry()[name](**params)
    with open_executor(accelerator, backend, dma) as executor, open_executor(accelerator, "model", dma) as fast:
        for model_name in model_names():
            path = ZOO / "models" / f"{model_name}.tflite"
            simulated, _, _, _ = one_inference(path, executor, 0)
            estimated, _, _, _ = one_inference(path, fast, 0)
            for row in compare_records([r.as_dict(1e8) for r in simulated.records],
                                       [r.as_dict(1e8) for r in estimated.records]):
                rows.append({"accelerator": name, "model": model_name, **row})
    return rows
