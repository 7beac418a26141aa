"""`accelkit run MODEL`: a whole model on LiteRT (or TVM) with the accelerator's layers on its RTL simulation."""

import functools
import time
from pathlib import Path

import numpy as np

from ...accelerators.base import parse_params
from ...driver.device import DmaTiming
from ...driver.trace import RecordingDevice
from ...errors import ModelError, ParameterError
from ..frontends.inputs import check_labels, load_inputs, load_labels
from ..reports.clock import report_clock
from ..reports.model_report import print_report, save_plot, totals
from ..reports.output import console, progress_printer, provenance, save_arrays, write_json
from . import arguments

__all__ = ["add_arguments", "run", "evaluate_samples", "SPREAD_SECONDS"]

#: A batch is spread over the runner's workers when running it here would take longer than this plus the
#: time this process took to open the model (about what starting a worker process takes on this machine).
SPREAD_SECONDS = 10.0


def add_arguments(parser):
    parser.add_argument("model", help="a .tflite file, or a bundled model name (see sw/zoo/models)")
    parser.add_argument("--input", metavar="X.npy", help="input array (a batch along a leading axis), or zoo:NAME")
    parser.add_argument("--labels", metavar="Y.npy", help="integer labels: report accuracy, or zoo:NAME")
    parser.add_argument("--output", metavar="OUT.npy", help="save the model's output tensor(s)")
    parser.add_argument("--frontend", choices=("tflite", "tvm"), default="tflite",
                        help="tflite: LiteRT with accelkit's delegate; tvm: TVM Relax import, BYOC partitioning "
                        "and LLVM for the rest (needs accelkit[tvm]; CPU layers then run in float)")
    parser.add_argument("--cpu-kernels", choices=("ref", "optimized"), default="ref",
                        help="LiteRT kernels for what stays on the CPU (ref: reference kernels, bit-exact)")
    parser.add_argument("--compare", choices=("ref",), help="also run LiteRT's reference kernels and compare "
                        "every offloaded layer and the output")
    parser.add_argument("--clock-mhz", type=arguments.clock_mhz, default=None,
                        help="clock for times (default: the design's ECP5-85F place-and-route Fmax when cached, "
                        "else time is not shown)")
    parser.add_argument("--seed", type=arguments.seed, default=0, help="seed of the random input (without --input)")
    parser.add_argument("--limit", type=arguments.sample_limit, help="run only the first N samples of --input")
    parser.add_argument("--record", metavar="TRACE", help="record the device transactions to TRACE.jsonl and "
                        "TRACE.npz (one accelerator on a simulator): what `accelkit-board run --trace` and "
                        "`accelkit-board replay` play")
    arguments.add_runner_arguments(parser, "shares of an --input batch (not with --record: one device records)")
    parser.add_argument("--params-file", metavar="PARAMS.json", help="a design's parameters (as `accelkit dse "
                        "--export` writes them) for the accelerator it names; --params given too override them")


def _batched(outputs):
    """Per-sample output lists to one array per model output, batch along the leading axis."""
    def join(arrays):
        return np.concatenate(arrays) if arrays[0].ndim and arrays[0].shape[0] == 1 else np.stack(arrays)
    return [join([o[j] for o in outputs]) for j in range(len(outputs[0]))]


def _with_params_file(args, params):
    """``--params`` over ``--params-file``'s parameters, the file's addressed to the accelerator it names."""
    if not args.params_file:
        return params
    from ..execution.params_file import read_params_file
    name, from_file = read_params_file(args.params_file)
    listed = [n.strip() for n in args.accel.split(",")]
    if name not in listed:
        raise ParameterError(f"--params-file {args.params_file} is for accelerator {name!r}, which is not in "
                             f"--accel {args.accel}")
    merged = {(f"{name}.{key}" if len(listed) > 1 else key): value for key, value in from_file.items()}
    merged.update(params)
    return merged


def _open_model(spec, executor, progress=None):
    """The model on ``executor`` through the chosen front end."""
    if spec["frontend"] == "tvm":
        from ..frontends.tvm.runner import TvmModel
        model = TvmModel(spec["path"], executor, keep_inputs=spec["compare"])
        by_origin = model.info.by_origin() if model.info else {}
        for record in model.offloaded:      # which accelerator runs each offloaded layer
            if record.index in by_origin:
                record.extra["accelerator"] = by_origin[record.index].accelerator
        if progress:
            progress(f"TVM: import {model.import_seconds:.2f} s, partition and compile {model.compile_seconds:.2f} s, "
                     f"VM load {model.load_seconds:.2f} s")
        return model
    from ..frontends.tflite.runner import DelegatedModel
    return DelegatedModel(spec["path"], executor, spec["cpu_kernels"])


def evaluate_samples(spec, samples):
    """One share of a batch in a runner's worker: its own executor and model, the samples run as `run` does."""
    from ..execution.accelerator_lists import open_claiming_executor
    with open_claiming_executor(spec["accelerators"], spec["backend"], spec["dma"]) as executor:
        model = _open_model(spec, executor)
        result = _evaluate(spec, model, executor, samples)
        result["worker"] = True
    return result


def _evaluate(spec, model, executor, batch, progress=None):
    """Outputs, reference outputs, per-layer checks and seconds of ``batch`` on ``model``."""
    from ..frontends.tflite.runner import make_interpreter
    path = spec["path"]
    reference = make_interpreter(path, "ref", preserve_all_tensors=spec["compare"]) if spec["reference"] else None
    outputs, ref_outputs = [], []
    layer_checks = {r.index: [True, 0] for r in model.offloaded}
    started = time.perf_counter()
    run_before, layers_before = executor.run_seconds, model.layer_seconds
    reference_seconds = 0.0
    for i, sample in enumerate(batch):
        outputs.append(model.invoke(sample.reshape(model.input_detail["shape"])))
        if reference is not None:
            ref_started = time.perf_counter()
            reference.set_tensor(reference.get_input_details()[0]["index"],
                                 sample.reshape(model.input_detail["shape"]))
            try:
                reference.invoke()
            except RuntimeError as error:
                raise ModelError(f"LiteRT's reference kernels could not run the model: {error}") from None
            ref_outputs.append([reference.get_tensor(d["index"]) for d in reference.get_output_details()])
            reference_seconds += time.perf_counter() - ref_started
            if spec["compare"]:
                for node, check in layer_checks.items():
                    if spec["frontend"] == "tvm":
                        # TVM's CPU layers are its float lowering, so an offloaded layer's input may differ
                        # from LiteRT's: hold the layer to TFLite's integer result on its own input.
                        expected = model.layer_reference(node)
                    else:
                        expected = reference.get_tensor(model.model.ops[node].outputs[0])
                    difference = int(np.abs(expected.astype(np.int64) - model.outputs_by_node[node]).max())
                    check[0] &= difference == 0
                    check[1] = max(check[1], difference)
        if progress and len(batch) > 20 and (i + 1) % max(1, len(batch) // 5) == 0:
            progress(f"{i + 1}/{len(batch)} samples")
    return {"outputs": outputs, "ref_outputs": ref_outputs, "checks": layer_checks,
            "wall": time.perf_counter() - started, "reference_seconds": reference_seconds,
            "run_seconds": executor.run_seconds - run_before, "layer_seconds": model.layer_seconds - layers_before}


def run(args):
    from ..zoo import resolve_model
    path = resolve_model(args.model)
    from ..execution.accelerator_lists import open_claiming_executor, resolve_accelerators
    params = _with_params_file(args, parse_params(args.params))
    progress = progress_printer()
    accelerators = resolve_accelerators(args.accel, params, model_path=path, progress=progress)
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    clock = report_clock(accelerators, args.clock_mhz, progress)
    labels = load_labels(args.labels) if args.labels else None
    if args.record and (len(accelerators) != 1 or args.backend == "model"):
        raise ParameterError(f"--record records one accelerator's device on a simulator; got --accel {args.accel} "
                             f"on backend {args.backend}")
    spec = {"path": str(path), "accelerators": accelerators, "backend": args.backend, "dma": dma,
            "frontend": args.frontend, "cpu_kernels": args.cpu_kernels, "compare": bool(args.compare),
            "reference": bool(args.compare or labels is not None)}
    opening = time.perf_counter()
    with open_claiming_executor(accelerators, args.backend, dma, progress=progress) as executor, \
            arguments.open_args_runner(args) as runner:
        accelerator = executor.accelerator
        if args.record:
            executor.device = RecordingDevice(executor.device)
            executor.device.trace.device["accelerator"] = {"name": accelerator.name, "params": accelerator.params}
        model = _open_model(spec, executor, progress)
        setup_seconds = time.perf_counter() - opening     # what each worker pays again (a TVM compile, say)
        batch = load_inputs(args.input, model.input_detail, args.seed, args.limit)
        labels = check_labels(labels, len(batch), args.limit is not None, args.labels)
        if not model.offloaded:
            console.print(f"[bold]no layer of {path.name} can run on {accelerator.name}[/bold] "
                          f"({', '.join(sorted({r.reason for r in model.records}))}): it runs fully on the CPU")
        progress(f"running {len(batch)} sample(s) of {path.name}: {len(model.offloaded)} of "
                 f"{len(model.records)} layers on {accelerator!r} ({args.backend})")
        started = time.perf_counter()
        # The first sample runs here; the rest are spread over the runner's workers (each opens its own
        # simulator and front end, which cannot cross processes) when they would take longer than starting
        # a worker and opening the model there does, or always on Ray (asked for by name).
        results = [_evaluate(spec, model, executor, batch[:1])]
        rest = batch[1:]
        expected = results[0]["wall"] * len(rest)
        parts = min(runner.workers, len(rest))
        if parts > 1 and not args.record and (runner.name == "ray" or expected > SPREAD_SECONDS + setup_seconds):
            progress(f"spreading the other {len(rest)} samples over {parts} {runner.name} workers "
                     f"(about {expected:.0f} s of work)")
            size = -(-len(rest) // parts)
            chunks = [rest[at:at + size] for at in range(0, len(rest), size)]
            results += runner.map(functools.partial(evaluate_samples, spec), chunks,
                                  progress=lambda done, total: progress(f"{done}/{total} shares of the samples"))
        elif len(rest):
            results.append(_evaluate(spec, model, executor, rest, progress))
        wall = time.perf_counter() - started
        if args.record:
            executor.device.trace.save(args.record)
            progress(f"recorded {len(executor.device.trace.entries)} transactions to {args.record}.jsonl/.npz")
    outputs = [o for r in results for o in r["outputs"]]
    ref_outputs = [o for r in results for o in r["ref_outputs"]]
    layer_checks = {node: [all(r["checks"][node][0] for r in results), max(r["checks"][node][1] for r in results)]
                    for node in results[0]["checks"]}
    run_seconds = sum(r["run_seconds"] for r in results)
    layer_seconds = sum(r["layer_seconds"] for r in results)
    if not any(r.get("worker") for r in results):        # all in this process
        wall -= sum(r["reference_seconds"] for r in results)
    if args.compare:
        for node, (exact, difference) in layer_checks.items():
            model.records[node].bit_exact, model.records[node].max_difference = exact, difference
    records = [r.as_dict(clock.hz) for r in model.records]
    summary = totals(records, clock.hz, clock.source)
    summary.update(samples=len(batch), wall_seconds=wall, simulation_seconds=run_seconds,
                   driver_seconds=layer_seconds - run_seconds,
                   cpu_seconds=sum(r["wall"] - r["reference_seconds"] - r["layer_seconds"] for r in results),
                   workers=max(1, sum(bool(r.get("worker")) for r in results)))
    result = {"model": str(path), "frontend": args.frontend, "cpu_kernels": args.cpu_kernels, "layers": records,
              "totals": summary}
    if args.frontend == "tvm":
        import tvm
        result["cpu_kernels"] = "tvm-llvm"
        result["tvm"] = {"version": tvm.__version__, "import_seconds": model.import_seconds,
                         "compile_seconds": model.compile_seconds, "load_seconds": model.load_seconds}
    print_report(f"{path.name} on {accelerator!r}, {args.backend} (per inference)", records, summary,
                 compare=bool(args.compare))
    if clock.mhz is None:
        console.print(clock.describe(), highlight=False)
    console.print(f"wall {wall:.2f} s for {len(batch)} sample(s): "
                  f"{'golden and cost models' if args.backend == 'model' else 'simulation'} {run_seconds:.2f} s, "
                  f"driver {summary['driver_seconds']:.2f} s, CPU layers and "
                  f"{'TVM' if args.frontend == 'tvm' else 'LiteRT'} {summary['cpu_seconds']:.2f} s",
                  highlight=False)
    final = _batched(outputs)
    exit_code = 0
    if args.compare:
        ref_final = _batched(ref_outputs)
        output_exact = all(np.array_equal(a, b) for a, b in zip(final, ref_final))
        output_difference = max(int(np.abs(a.astype(np.int64) - b).max()) for a, b in zip(final, ref_final))
        layers_exact = all(r.bit_exact for r in model.offloaded)
        result["compare"] = {"reference": "BUILTIN_REF", "output_bit_exact": output_exact,
                             "offloaded_layers_bit_exact": layers_exact}
        verdict = "bit-exact" if output_exact and layers_exact else "NOT bit-exact"
        if args.frontend == "tvm":
            result["compare"]["output_max_difference"] = output_difference
            # Only the offloaded layers are TFLite's integer arithmetic; TVM lowers the rest to float
            # dequantize/quantize, so the output is not expected to be bit-exact and does not fail the run.
            verdict = "bit-exact" if output_exact else (f"NOT bit-exact (max difference {output_difference}; "
                                                         "TVM runs the CPU layers in float)")
        console.print(f"compared with LiteRT BUILTIN_REF: outputs {verdict} "
                      f"({sum(bool(r.bit_exact) for r in model.offloaded)}/{len(model.offloaded)} offloaded "
                      f"layers exact{' on their own inputs' if args.frontend == 'tvm' else ''})", highlight=False)
        exit_code = 0 if layers_exact and (output_exact or args.frontend == "tvm") else 1
    if labels is not None:
        predictions = final[0].reshape(len(batch), -1).argmax(axis=1)
        cpu_predictions = _batched(ref_outputs)[0].reshape(len(batch), -1).argmax(axis=1)
        accuracy = float(np.mean(predictions == labels[:len(batch)]))
        cpu_accuracy = float(np.mean(cpu_predictions == labels[:len(batch)]))
        result["accuracy"] = {"accelerator": accuracy, "cpu_reference": cpu_accuracy, "samples": len(batch)}
        console.print(f"accuracy on {len(batch)} labelled samples: {accuracy:.2%} with {accelerator.name} offload, "
                      f"{cpu_accuracy:.2%} on the CPU (LiteRT reference kernels)", highlight=False)
    if args.output:
        save_arrays(args.output, final)
    if args.json:
        write_json(args.json, provenance("run", accelerator, args.backend, dma, args.seed, **result))
        plot = Path(args.json).with_suffix(".png")
        save_plot(plot, records, f"{path.name} on {accelerator!r}")
        progress(f"wrote {args.json} and {plot}")
    return exit_code
