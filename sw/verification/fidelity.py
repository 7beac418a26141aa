"""Fidelity of the fast model: cost-model cycles against RTL cycles, layer by layer, on the zoo."""

from ...accelerators.base import registry
from ...driver.kinds import get_kind
from ..zoo import ZOO, model_names

__all__ = ["TOLERANCE", "compare_records", "fidelity_table"]

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


def fidelity_table(backend, dma, progress=None, params=None):
    """One simulated inference of every zoo model on every registered accelerator, against the cost model."""
    from ..execution.executors import open_executor
    from ..frontends.tflite.runner import one_inference
    rows = []
    for name, cls in sorted(registry().items()):
        # broken, or runs no kind a TFLite model has (bfp's quantized MatMuls come from GGUF models)
        if isinstance(cls, str) or not any(get_kind(kind).tflite_ops for kind in cls.kinds):
            continue
        accelerator = cls(**(params or {}))
        with open_executor(accelerator, backend, dma, progress=progress) as executor, \
                open_executor(accelerator, "model", dma) as fast:
            for model_name in model_names():
                if progress:
                    progress(f"{name}: {model_name}")
                path = ZOO / "models" / f"{model_name}.tflite"
                simulated, _, _, _ = one_inference(path, executor, 0)
                estimated, _, _, _ = one_inference(path, fast, 0)
                for row in compare_records([r.as_dict(1e8) for r in simulated.records],
                                           [r.as_dict(1e8) for r in estimated.records]):
                    rows.append({"accelerator": name, "model": model_name, **row})
    return rows
