"""`accelkit bench potacc`: the shift-PE accelerator against the multiplier GEMM on the same PoT-quantized model.

For each quantization method (PoT, APoT, MSQ) the bundled model is quantized
once, then run on two designs of the same array size: the int8 multiplier GEMM
and potacc configured for the method (``accelerators.potacc.method_params``). For each it
reports the RTL cycles per inference, the bytes of weights streamed, Yosys
resources of the whole design and of the PE grid alone (with the ``$mul`` cells
left before technology mapping), an energy estimate, and whether its outputs are
bit-exact with LiteRT's reference kernels running the same PoT-constrained model
on the CPU.

Energy: ``sw/hardware/power.energy_pj`` (every resource active on every cycle, no static
power: the same device either way); the model, its sources and limits are documented there.
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ...accelerators.potacc import METHODS, method_params
from ..hardware.power import ENERGY_PJ, energy_pj
from ..quantization.pot import quantize_model
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["ENERGY_PJ", "energy_pj", "potacc_bench", "compare_designs"]

def _run_model(path, executor, batch, labels, expected):
    """Run ``batch`` through the delegated model: per-inference stats, accuracy, bit-exactness."""
    from ..frontends.tflite.runner import DelegatedModel
    model = DelegatedModel(path, executor)
    outputs = [model.invoke(sample.reshape(model.input_detail["shape"]))[0] for sample in batch]
    offloaded = model.offloaded
    result = {
        "layers_offloaded": len(offloaded), "layers": len(model.records),
        "declined": sorted({r.reason for r in model.records if r.where != "accelerator" and r.op in
                            ("CONV_2D", "FULLY_CONNECTED")}),
        "cycles": sum(r.cycles for r in offloaded),
        "weight_bytes": sum(r.extra.get("weight_bytes", 0) for r in offloaded),
        "bytes_moved": sum(r.bytes_in + r.bytes_out for r in offloaded),
        "bit_exact": all(np.array_equal(a, b) for a, b in zip(outputs, expected)),
    }
    if labels is not None:
        predictions = np.stack(outputs).reshape(len(batch), -1).argmax(axis=1)
        result["accuracy"] = float(np.mean(predictions == labels[:len(batch)]))
    return result


def compare_designs(path, designs, backend, dma, batch, labels, progress, resources=True):
    """Run one quantized model on each (label, accelerator) design; returns one row per design."""
    from ..execution.executors import open_executor
    from ..commands.resources import accelerator_resources, pe_array_resources
    from ..frontends.tflite.runner import make_interpreter
    reference = make_interpreter(path, "ref")
    expected = []
    for sample in batch:
        reference.set_tensor(reference.get_input_details()[0]["index"],
                             sample.reshape(reference.get_input_details()[0]["shape"]))
        reference.invoke()
        expected.append(reference.get_tensor(reference.get_output_details()[0]["index"]))
    cpu_accuracy = None
    if labels is not None:
        cpu_accuracy = float(np.mean(np.stack(expected).reshape(len(batch), -1).argmax(axis=1) == labels[:len(batch)]))
    rows = []
    for label, accelerator in designs:
        progress(f"{path.name} on {label}: {accelerator!r}")
        started = time.perf_counter()
        with open_executor(accelerator, backend, dma, progress=progress) as executor:
            row = {"design": label, "accelerator": accelerator.name, "params": dict(accelerator.params),
                   **_run_model(path, executor, batch, labels, expected), "cpu_accuracy": cpu_accuracy}
        row["wall_seconds"] = time.perf_counter() - started
        if resources:
            whole, grid = accelerator_resources(accelerator, progress), pe_array_resources(accelerator, progress)
            row["resources"] = whole.as_dict()
            row["pe_array"] = {**grid.as_dict(), "mul_cells_before_mapping": grid.mul_cells_before_mapping}
            compute, movement = energy_pj(whole, row["cycles"], row["bytes_moved"])
            row["energy_nj"] = {"compute": compute / 1e3, "data_movement": movement / 1e3,
                                "total": (compute + movement) / 1e3}
        rows.append(row)
    return rows


def potacc_bench(args):
    """Per method: potacc vs the multiplier GEMM of the same array size on the same PoT-quantized model."""
    from ..frontends.inputs import load_inputs
    from ..zoo import resolve_array, resolve_model
    progress = progress_printer()
    params = parse_params(args.params)
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    names = [n.strip() for n in (args.models or "digits_cnn").split(",") if n.strip()]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            source = resolve_model(name)
            labels = np.load(resolve_array("zoo:digits_test_y")) if name == "digits_cnn" else None
            for method in METHODS:
                path = Path(folder) / f"{name}_{method}.tflite"
                progress(f"quantizing {name} with {method}")
                quantize_model(source, path, method)
                batch = (np.load(resolve_array("zoo:digits_test_x")) if name == "digits_cnn" else
                         load_inputs(None, _input_detail(path), args.seed))
                if args.samples:
                    batch = batch[:args.samples]
                designs = [("gemm (multipliers)", get_accelerator("gemm", params)),
                           (f"potacc ({method})", get_accelerator("potacc", {
                               **params, **method_params(method, params.get("cols", 8))}))]
                for row in compare_designs(path, designs, args.backend, dma, batch, labels, progress):
                    results.append({"model": name, "method": method, "samples": len(batch), **row})
    _print(results)
    return provenance("bench potacc", None, args.backend, dma, args.seed, energy_pj_coefficients=ENERGY_PJ,
                      results=results)


def _input_detail(path):
    from ..frontends.tflite.runner import make_interpreter
    return make_interpreter(path, "ref").get_input_details()[0]


def _print(results):
    for model in dict.fromkeys(r["model"] for r in results):
        rows = []
        for r in (r for r in results if r["model"] == model):
            res, grid = r["resources"], r["pe_array"]
            rows.append([r["method"], r["accelerator"], r["cycles"], r["weight_bytes"],
                         f"{res['lut']}/{res['ff']}/{res['dsp']}/{res['bram36']:g}",
                         f"{grid['lut']}/{grid['ff']}/{grid['dsp']}", grid["mul_cells_before_mapping"],
                         r["energy_nj"]["total"], "yes" if r["bit_exact"] else "NO",
                         "" if r.get("accuracy") is None else f"{r['accuracy']:.2%}"])
        cpu = next((r["cpu_accuracy"] for r in results if r["model"] == model), None)
        console.print(table(f"{model}: potacc vs multiplier GEMM, per inference"
                            + (" (accuracy: with the design's outputs)" if cpu is not None else ""),
                            ["method", "design", "cycles", "weight B", "LUT/FF/DSP/BRAM", "PE grid LUT/FF/DSP",
                             "PE $mul", "energy nJ", "bit-exact", "accuracy"], rows))
    by_key = {(r["model"], r["method"], r["accelerator"]): r for r in results}
    for (model, method, accelerator), r in by_key.items():
        if accelerator != "potacc":
            continue
        base = by_key[(model, method, "gemm")]
        accuracy = "" if r.get("cpu_accuracy") is None else f"; CPU accuracy {r['cpu_accuracy']:.2%}"
        console.print(f"{model} {method}: potacc/gemm cycles {r['cycles'] / base['cycles']:.3f}, weight bytes "
                      f"{r['weight_bytes'] / base['weight_bytes']:.3f}, energy "
                      f"{r['energy_nj']['total'] / base['energy_nj']['total']:.3f}; DSP {r['resources']['dsp']} vs "
                      f"{base['resources']['dsp']}, LUT {r['resources']['lut']} vs {base['resources']['lut']}"
                      + accuracy, highlight=False)
