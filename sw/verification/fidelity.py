"""Fidelity of the fast model: cost-model cycles against RTL cycles, layer by layer."""

from ...accelerators.base import registry
from ..zoo import ZOO, model_names

__all__ = ["TOLERANCE", "compare_records", "fidelity_table"]

#: Largest relative difference allowed between cost-model and RTL cycles. The GEMM
#: core is deterministic and its model exact; the tolerance leaves room for
#: designs whose timing depends on data.
TOLERANCE = 0.02


def compare_records(accelerator, records, dma, estimates=None):
    """(layer, RTL cycles, model cycles, relative error) for offloaded layer records of one RTL run.

    ``estimates`` (layer index -> cycles from the model backend) serves accelerators whose
    layers are not one GEMM (mm2im); the others are estimated from the record's GEMM shape.
    """
    rows = []
    for record in records:
        if record["where"] != "accelerator":
            continue
        if estimates is not None:
            estimate = estimates[record["index"]]
        else:
            estimate = accelerator.estimate_cycles(tuple(record["gemm_shape"]), dma)
        error = (estimate - record["cycles"]) / record["cycles"]
        rows.append({"layer": record["index"], "op": record["op"], "rtl_cycles": record["cycles"],
                     "model_cycles": estimate, "error": error})
    return rows


def fidelity_table(backend, dma, progress=None, params=None):
    """One RTL inference of every zoo model on every registered accelerator, compared layer by layer."""
    from ..frontends.tflite.runner import one_inference
    from ..execution.executors import open_executor
    rows = []
    for name, cls in sorted(registry().items()):
        if isinstance(cls, str):
            continue
        accelerator = cls(**(params or {}))
        with open_executor(accelerator, backend, dma, progress=progress) as executor:
            for model_name in model_names():
                if progress:
                    progress(f"{name}: {model_name}")
                model, _, _, _ = one_inference(ZOO / "models" / f"{model_name}.tflite", executor, 0)
                records = [r.as_dict(1e8) for r in model.records]
                estimates = None
                if hasattr(accelerator, "model_layer"):    # not GEMM-shaped: the model backend's cycles
                    with open_executor(accelerator, "model", dma) as fast:
                        estimated, _, _, _ = one_inference(ZOO / "models" / f"{model_name}.tflite", fast, 0)
                    estimates = {r.index: r.cycles for r in estimated.offloaded}
                for row in compare_records(accelerator, records, dma, estimates):
                    rows.append({"accelerator": name, "model": model_name, **row})
    return rows
