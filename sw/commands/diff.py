"""`accelkit diff MODEL --between PATHS`: where a model's outputs diverge across LiteRT, TVM, the fast model and RTL."""

from pathlib import Path

import numpy as np

from ...driver.device import DmaTiming
from ...errors import ParameterError
from ..execution.accelerator_lists import resolve_accelerators
from ..frontends.inputs import check_labels, load_inputs, load_labels
from ..reports.output import console, progress_printer, provenance, table, write_json
from . import arguments
from ..verification.differential import PATHS, differential

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("model", help="a .tflite file, or a bundled model name")
    parser.add_argument("--between", default="tflite-ref,tvm,model",
                        help=f"comma-separated paths, the first is the baseline (from {', '.join(PATHS)}; "
                        "default tflite-ref,tvm,model)")
    parser.add_argument("--input", metavar="X.npy", help="inputs (a batch along a leading axis), or zoo:NAME")
    parser.add_argument("--labels", metavar="Y.npy", help="integer labels: report accuracy and label changes")
    parser.add_argument("--limit", type=arguments.sample_limit, help="only the first N samples of --input")
    parser.add_argument("--seed", type=arguments.seed, default=0, help="seed of the random input (without --input)")
    parser.add_argument("--plot", metavar="HEATMAP.png", help="per-layer heatmap of the largest difference")


def _paths(text):
    paths = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not paths:
        raise ParameterError(f"--between takes paths from {', '.join(PATHS)}, not {', '.join(unknown) or 'nothing'}")
    if len(set(paths)) != len(paths):
        raise ParameterError(f"--between lists a path twice: {text}")
    return paths


def run(args):
    from ..frontends.tflite.runner import make_interpreter
    from ..zoo import resolve_model
    paths = _paths(args.between)
    path = resolve_model(args.model)
    progress = progress_printer()
    accelerators = resolve_accelerators(args.accel, _params(args), model_path=path, progress=progress)
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    detail = make_interpreter(path, "ref").get_input_details()[0]
    batch = load_inputs(args.input, detail, args.seed, args.limit)
    samples = [sample.reshape(detail["shape"]) for sample in batch]
    labels = check_labels(load_labels(args.labels), len(batch), args.limit is not None, args.labels) \
        if args.labels else None
    report = differential(path, paths, accelerators, dma, samples, labels, progress)
    _print(report)
    if args.plot:
        save_heatmap(args.plot, report)
        progress(f"wrote {args.plot}")
    if args.json:
        write_json(args.json, provenance("diff", None, None, dma, args.seed, accel=args.accel, **report.as_dict()))
    return 0


def _params(args):
    from ...accelerators.base import parse_params
    return parse_params(args.params)


def _print(report):
    baseline = report.paths[0]
    live = [p for p in report.paths[1:] if p in report.diffs]
    rows = []
    for index, op, _ in report.layers:
        row = [index, op]
        for p in live:
            diff = report.diffs[p][index]
            if not diff.mapped:
                row.append("unmapped")
            elif diff.shape_mismatch:
                row.append(f"shape {diff.shape_mismatch}")
            else:
                row.append(f"{diff.max_lsb:g} / {diff.mean_lsb:.3g} / {diff.share:.1%}" if diff.diverges else "=")
        rows.append(row)
    console.print(table(f"{report.model}: per-layer difference against {baseline} over {report.samples} sample(s) "
                        "(max LSB / mean LSB / share of elements)", ["#", "op", *live], rows))
    for p, reason in report.errors.items():
        console.print(f"[bold]{p}[/bold] cannot run {report.model}: {reason}")
    summary = []
    for p in live:
        first = report.first_divergent(p)
        where = "none (every mapped layer equal)" if first is None else \
            f"#{first} {report.layers[[i for i, _, _ in report.layers].index(first)][1]} {report.details.get(first, {})}"
        unmapped = sum(not d.mapped for d in report.diffs[p].values())
        summary.append([p, where, unmapped, f"{report.seconds.get(p, 0):.3f}",
                        *([report.labels[p]["changed"], f"{report.labels[p]['accuracy']:.2%}"] if report.labels else [])])
    columns = ["path", "first divergent layer", "unmapped layers", "inference s"]
    if report.labels:
        columns += ["labels changed", "accuracy"]
    console.print(table(f"divergence from {baseline} ({report.seconds.get(baseline, 0):.3f} s"
                        + (f", accuracy {report.labels[baseline]['accuracy']:.2%}" if report.labels else "") + ")",
                        columns, summary))
    verdicts = [[p, index, verdict] for p, found in report.localization.items() for index, verdict in found.items()]
    if verdicts:
        console.print(table("where each difference arises", ["path", "layer", "verdict"], verdicts))


def save_heatmap(path, report):
    """Paths x layers, colour = largest difference in LSB (log scale); unmapped layers hatched grey."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    live = [p for p in report.paths[1:] if p in report.diffs]
    grid = np.full((len(live), len(report.layers)), np.nan)
    for row, p in enumerate(live):
        for column, (index, _, _) in enumerate(report.layers):
            diff = report.diffs[p][index]
            if diff.mapped:
                grid[row, column] = diff.max_lsb if not diff.shape_mismatch else np.inf
    figure, axes = plt.subplots(figsize=(max(6, 0.25 * len(report.layers) + 2), 1 + 0.6 * max(1, len(live))))
    finite = grid[np.isfinite(grid) & (grid > 0)]
    shown = np.where(grid > 0, grid, np.nan)
    image = axes.imshow(np.where(np.isinf(shown), np.nan, shown), aspect="auto", cmap="viridis",
                        norm=LogNorm(vmin=max(finite.min(), 1e-6), vmax=finite.max()) if finite.size else None)
    for row in range(len(live)):
        for column in range(len(report.layers)):
            if np.isnan(grid[row, column]):
                axes.add_patch(plt.Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, hatch="//", color="grey"))
            elif grid[row, column] == 0:
                axes.add_patch(plt.Rectangle((column - 0.5, row - 0.5), 1, 1, color="#eeeeee"))
    axes.set_yticks(range(len(live)), live)
    axes.set_xticks(range(len(report.layers)), [f"{i} {op}" for i, op, _ in report.layers], rotation=90, fontsize=6)
    axes.set_title(f"{report.model}: largest difference from {report.paths[0]} (LSB; light grey = equal, "
                   "hatched = unmapped)", fontsize=8)
    if finite.size:
        figure.colorbar(image, ax=axes, label="max |difference| (LSB)")
    figure.tight_layout()
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(target)
