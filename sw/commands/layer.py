"""`accelkit layer KIND`: one random layer of any registered kind on an accelerator, checked against its models.

The shape flags come from the kind's declaration (``driver/kinds``); the layer
is drawn from the accelerator's own domain (``Accelerator.random_layer``), so a
shift-PE design gets weights on its grid. The report shows the plan the
accelerator made, the cycles it took against the cost model, and whether the
output equals the kind's TFLite-exact reference.
"""

import numpy as np

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ...driver.kinds import kinds
from ...driver.trace import RecordingDevice
from ...errors import ParameterError
from ..execution.executors import open_executor
from ..reports.output import console, progress_printer, provenance, table, write_json
from . import arguments

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    registered = kinds()
    parser.add_argument("op", metavar="KIND", choices=sorted(registered),
                        help=f"layer kind: {', '.join(f'{k} ({v.description})' for k, v in sorted(registered.items()))}")
    shapes = parser.add_argument_group("shape (each kind takes its own; others are ignored)")
    seen = {}
    for kind in registered.values():
        for option in kind.shape_options:
            seen.setdefault(option.name, (option, []))[1].append(kind.name)
    for name, (option, users) in sorted(seen.items()):
        flag = "--" + name.replace("_", "-")
        help_text = f"{option.help + '; ' if option.help else ''}{', '.join(users)} (default {option.default})"
        if option.choices:
            shapes.add_argument(flag, dest=name, choices=option.choices, type=_any_case(option.choices), default=None,
                                help=help_text)
        else:
            shapes.add_argument(flag, dest=name, type=arguments.layer_size(option.minimum), default=None,
                                help=help_text)
    parser.add_argument("--seed", type=arguments.seed, default=0)
    parser.add_argument("--trace", metavar="WAVE.fst", help="write a waveform (.fst or .vcd)")
    parser.add_argument("--record", metavar="TRACE", help="record the device transactions to TRACE.jsonl and "
                        "TRACE.npz (for `accelkit replay` or `accelkit-board replay` on a board)")
    parser.add_argument("--cycle-budget", type=arguments.cycle_budget, help="cycles before a job is declared hung "
                        "(default: 4x the cost model's estimate)")


def shape_of(kind, args):
    """The kind's shape arguments: the user's values over the kind's defaults, checked."""
    shape = {}
    for option in kind.shape_options:
        value = getattr(args, option.name, None)
        value = option.default if value is None else value
        if not option.choices and (isinstance(value, bool) or not isinstance(value, int) or value < option.minimum):
            raise ParameterError(f"--{option.name.replace('_', '-')} must be an integer >= {option.minimum}, "
                                 f"not {value!r}")
        shape[option.name] = value
    return shape


def run(args):
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    kind = kinds()[args.op]
    if kind.name not in accelerator.kinds:
        raise ParameterError(f"{accelerator.name} does not run {kind.name} layers; it runs "
                             f"{', '.join(accelerator.kinds)} (see `accelkit accelerators`)")
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    shape = shape_of(kind, args)
    rng = np.random.default_rng(args.seed)
    layer, inputs = accelerator.random_layer(kind.name, rng, **shape)
    plan = accelerator.plan(layer, *(x.shape for x in inputs))
    progress = progress_printer()
    with open_executor(accelerator, args.backend, dma, args.trace, progress) as executor:
        if args.record:
            executor.device = RecordingDevice(executor.device)
            executor.device.trace.device["accelerator"] = {"name": accelerator.name, "params": accelerator.params}
        progress(f"running {kind.name} {shape} on {accelerator!r} ({args.backend})")
        expected = layer.reference(*inputs)
        out, stats = executor.run(plan, *inputs, cycle_budget=args.cycle_budget)
        if args.record:
            executor.device.trace.save(args.record)
            progress(f"recorded {len(executor.device.trace.entries)} transactions to {args.record}.jsonl/.npz")
    estimate = accelerator.estimate(plan, dma).cycles
    bit_exact = bool(out.shape == expected.shape and np.array_equal(out, expected))
    record = provenance("layer", accelerator, args.backend, dma, args.seed, op=kind.name, shape=shape,
                        plan=plan.as_dict(), cycles=stats.cycles, estimated_cycles=estimate, macs=stats.macs,
                        utilization=stats.utilization, bit_exact=bit_exact, stats=stats.as_dict())
    console.print(table(f"{kind.name} on {accelerator!r}, {args.backend}",
                        ["kind", "input", "output", "MACs", "cycles", "cost model", "utilization", "jobs",
                         "bytes in", "bytes out", "bit-exact"],
                        [[kind.name, " ".join("x".join(map(str, x.shape)) for x in inputs),
                          "x".join(map(str, out.shape)), stats.macs, stats.cycles, estimate, stats.utilization,
                          stats.jobs, stats.bytes_in, stats.bytes_out, "yes" if bit_exact else "NO"]]))
    console.print(f"plan: {_plan_summary(plan)}")
    if not bit_exact:
        if out.shape != expected.shape:
            record["first_mismatch"] = {"shape": list(out.shape), "expected_shape": list(expected.shape)}
            where = f"output shape {list(out.shape)}, reference {list(expected.shape)}"
        else:
            index = tuple(int(i) for i in np.argwhere(out != expected)[0])
            record["first_mismatch"] = {"index": index, "got": int(out[index]), "expected": int(expected[index])}
            where = f"index {index}: got {out[index]}, reference {expected[index]}"
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in shape.items())
        console.print(f"[bold red]MISMATCH[/bold red] at {where}. Reproduce with: accelkit layer {kind.name} {flags} "
                      f"--accel {args.accel} --params {','.join(f'{k}={v}' for k, v in accelerator.params.items())} "
                      f"--backend {args.backend} --dma-bytes {args.dma_bytes} --dma-latency {args.dma_latency} "
                      f"--seed {args.seed}")
    if args.json:
        write_json(args.json, record)
    return 0 if bit_exact else 1


def _plan_summary(plan):
    """One line of a plan's schedule: scalars as they are, lists by their length."""
    items = []
    for key, value in plan.schedule.items():
        if isinstance(value, list) and (len(value) > 8 or (value and isinstance(value[0], (list, dict)))):
            items.append(f"{key}: {len(value)} entries")
        else:
            items.append(f"{key}: {value}")
    return ", ".join(items)


def _any_case(choices):
    """A choice given in any letter case, spelled as the kind declares it (``same`` -> ``SAME``, ``AVX2`` -> ``avx2``)."""
    spelled = {str(choice).lower(): choice for choice in choices}
    return lambda text: spelled.get(text.lower(), text)
