"""`accelkit bench mutate`: inject each of an accelerator's faults and see which of the project's checks catch it.

Checks, each run on a fresh device of the same (unchanged) build:

* ``conformance``: seeded random layers of every kind the design runs, on Verilator, against the
  kinds' references and the cost model;
* ``fidelity``: the digits CNN on Verilator against the `model` backend, layer by layer (cycles);
* ``diff``: the digits CNN, LiteRT's reference kernels against the delegate on Verilator (outputs).

A fault is caught by a check when the check reports a mismatch or the run fails with an error
(a hung job stopped by its cycle budget counts: it is noticed). A fault no check catches survives,
and the table says so.
"""

import time

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ...errors import AccelkitError
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["CHECKS", "mutation_table", "mutate_bench"]

CHECKS = ("conformance", "fidelity", "diff")


def _conformance(accelerator, dma, cases):
    from ..execution.devices import open_device
    from ..verification.conformance import check_case, sweep
    with open_device(accelerator, "verilator", dma) as device:
        for index, kind in enumerate(accelerator.kinds):
            for case in sweep(accelerator, kind, 700 + index, cases, {"max_dim": 24, "max_k": 96}):
                result = check_case(accelerator, device, case)
                if not result.bit_exact:
                    return result.mismatch
                if result.cycles != result.estimated_cycles:
                    return f"{case.name}: {result.cycles} cycles, cost model {result.estimated_cycles}"
    return ""


def _fidelity(accelerator, dma):
    from ..execution.executors import open_executor
    from ..frontends.tflite.runner import one_inference
    from ..verification.fidelity import compare_records
    from ..zoo import ZOO
    path = ZOO / "models" / "digits_cnn.tflite"
    with open_executor(accelerator, "verilator", dma) as rtl, open_executor(accelerator, "model", dma) as fast:
        simulated, _, _, _ = one_inference(path, rtl, 0)
        estimated, _, _, _ = one_inference(path, fast, 0)
    rows = compare_records([r.as_dict(1e8) for r in simulated.records], [r.as_dict(1e8) for r in estimated.records])
    wrong = [r for r in rows if r["rtl_cycles"] != r["model_cycles"]]
    return "" if not wrong else f"layer {wrong[0]['layer']}: {wrong[0]['rtl_cycles']} RTL cycles, " \
                                f"{wrong[0]['model_cycles']} modelled"


def _diff(accelerator, dma):
    import numpy as np
    from ..verification.differential import differential
    from ..zoo import ZOO
    samples = [s.reshape(1, 8, 8, 1) for s in np.load(ZOO / "data" / "digits_test_x.npy")[:4]]
    report = differential(ZOO / "models" / "digits_cnn.tflite", ["tflite-ref", "verilator"], [accelerator], dma,
                          samples)
    if report.errors:
        return next(iter(report.errors.values()))
    first = report.first_divergent("verilator")
    return "" if first is None else f"layer {first} diverges ({report.localization['verilator'].get(first, '')})"


def _run_check(check, accelerator, dma, cases):
    started = time.perf_counter()
    try:
        finding = {"conformance": lambda: _conformance(accelerator, dma, cases), "fidelity": lambda: _fidelity(
            accelerator, dma), "diff": lambda: _diff(accelerator, dma)}[check]()
    except AccelkitError as error:
        finding = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
    return {"caught": bool(finding), "finding": finding, "seconds": time.perf_counter() - started}


def mutation_table(accelerator, dma, faults=None, checks=CHECKS, cases=6, progress=None):
    """{fault: {check: {"caught", "finding", "seconds"}}}, with a fault-free baseline under ``None``."""
    results = {}
    for fault in [None, *(faults or accelerator.faults_available)]:
        faulty = accelerator if fault is None else accelerator.with_faults(fault)
        results[fault or "none"] = {}
        for check in checks:
            if progress:
                progress(f"{fault or 'no fault'}: {check}")
            results[fault or "none"][check] = _run_check(check, faulty, dma, cases)
    return results


def mutate_bench(args):
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    if not accelerator.faults_available:
        raise AccelkitError(f"{accelerator.name} declares no injectable faults (faults_available)")
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    results = mutation_table(accelerator, dma, cases=args.count if args.count != 260 else 6,
                             progress=progress_printer())
    rows = []
    for fault, found in results.items():
        caught = [c for c in CHECKS if found[c]["caught"]]
        rows.append([fault, accelerator.faults_available.get(fault, "(the design as built)"),
                     *["caught" if found[c]["caught"] else "-" for c in CHECKS],
                     "false alarm" if fault == "none" and caught else ("SURVIVES" if fault != "none" and not caught
                                                                      else "")])
    console.print(table(f"injected faults on {accelerator!r}: which checks catch them",
                        ["fault", "what goes wrong", *CHECKS, ""], rows))
    for fault, found in results.items():
        for check in CHECKS:
            if found[check]["caught"]:
                console.print(f"  {fault} / {check}: {found[check]['finding']}")
    survivors = [f for f, found in results.items() if f != "none" and not any(v["caught"] for v in found.values())]
    console.print(f"{len(results) - 1} faults, {len(survivors)} survive" + (f": {', '.join(survivors)}" if survivors
                                                                              else ""))
    return provenance("bench mutate", accelerator, "verilator", dma, None, results=results, survivors=survivors)
