"""`accelkit bench flexarray`: the flexible array against the systolic `gemm` array, and Bifrost's experiment.

Three tables, all from the closed-form cost models (exact against each design's
RTL cycle counter; ``--rtl`` re-runs the first part on Verilator with the small
designs), every flexarray output checked bit-exact against the layer's
TFLite-exact reference on the model backend:

1. *Irregular shapes*: flexarray's default design (16 multipliers, a 64-bit
   stream: ``dn_bw`` 8; 16 reduction lanes, each reaching a region of 8
   multipliers: ``rn_bw`` 16, ``reach`` 8) vs the 4x4 systolic `gemm` (16 PEs, 64-bit stream), both at
   8 bytes/cycle DMA. Utilization = the layer's MACs / (16 x cycles). `gemm`
   runs a depthwise layer with its own plan (block-diagonal GEMMs over channel
   groups, the group size its cost model finds best).
2. *Weight sparsity*: one GEMM at 0, 50 and 90% zero weights; flexarray maps the
   non-zeros only (SIGMA's flow), the systolic array multiplies every weight.
   Multiplies issued must equal the non-zero weights x rows. Beside the default
   design, the same array with 16 reduction lanes that each reach every adder
   node (``FULL_REACH``, as the default had until 5 December): a sparse fold
   holds at most ``rn_bw`` channels, and that bounds it.
   Then the zoo's pruned digits model (``digits_cnn_pruned``, 79.5% zero
   weights) against the dense ``digits_cnn``, cycles per inference.
3. *Bifrost*: AlexNet's (torchvision) conv and FC layers on a 128-multiplier
   flexarray with distribution and reduction bandwidth 64 (Bifrost's MAERI:
   128 multiplier switches, bandwidth 64), 64 bytes/cycle DMA, batch 1: the naive
   mapping with every tile size 1 against the searched mapping. Bifrost reports
   the naive mapping 51x (conv, mean) and 11x (FC) slower than its tuned ones on
   STONNE; these are this design's figures, not STONNE's.
"""

import math
import time

import numpy as np

from ...accelerators.base import get_accelerator
from ...accelerators.flexarray import compiler, cost, search
from ...driver.device import DmaTiming
from ...driver.kinds import get_kind
from ..reports.output import console, provenance, table

__all__ = ["flexarray_bench", "IRREGULAR", "SPARSE", "ALEXNET", "PRUNED", "FULL_REACH"]

#: (name, kind, shape) of the irregular set
IRREGULAR = (
    ("GEMV 1x256 -> 64", "fc", dict(batch=1, k=256, n=64)),
    ("GEMV 1x1000 -> 10", "fc", dict(batch=1, k=1000, n=10)),
    ("GEMM 7x13x29", "gemm", dict(m=7, n=13, k=29)),
    ("GEMM 3x100x17", "gemm", dict(m=3, n=100, k=17)),
    ("depthwise 14x14x32 k3", "depthwise_conv2d", dict(height=14, width=14, channels=32, kernel=3)),
    ("depthwise 28x28x16 k3 s2", "depthwise_conv2d", dict(height=28, width=28, channels=16, kernel=3, stride=2)),
    ("depthwise 14x14x8 k3 x2", "depthwise_conv2d", dict(height=14, width=14, channels=8, multiplier=2, kernel=3)),
    ("1x1 conv 28x28x3 -> 8", "conv2d", dict(height=28, width=28, in_channels=3, out_channels=8, kernel=1)),
    ("1x1 conv 14x14x4 -> 4", "conv2d", dict(height=14, width=14, in_channels=4, out_channels=4, kernel=1)),
    ("3x3 conv 7x7x2 -> 5", "conv2d", dict(height=7, width=7, in_channels=2, out_channels=5, kernel=3)),
)
#: the sparsity GEMM and its zero-weight fractions
SPARSE = (dict(m=64, n=64, k=256), (0.0, 0.5, 0.9))
#: AlexNet (torchvision) layers: (name, kind, shape); conv1 on a 227x227 input is its 224 + padding 2
ALEXNET = (
    ("conv1", "conv2d", dict(height=227, width=227, in_channels=3, out_channels=64, kernel=11, stride=4,
                             padding="VALID")),
    ("conv2", "conv2d", dict(height=27, width=27, in_channels=64, out_channels=192, kernel=5)),
    ("conv3", "conv2d", dict(height=13, width=13, in_channels=192, out_channels=384, kernel=3)),
    ("conv4", "conv2d", dict(height=13, width=13, in_channels=384, out_channels=256, kernel=3)),
    ("conv5", "conv2d", dict(height=13, width=13, in_channels=256, out_channels=256, kernel=3)),
    ("fc6", "fc", dict(batch=1, k=9216, n=4096)),
    ("fc7", "fc", dict(batch=1, k=4096, n=4096)),
    ("fc8", "fc", dict(batch=1, k=4096, n=1000)),
)

FLEX = {"multipliers": 16, "dn_bw": 8, "rn_bw": 16, "acc_depth": 256, "reach": 8}
SYSTOLIC = {"rows": 4, "cols": 4, "data_width": 64}
FLEX_SMALL = {"multipliers": 16, "dn_bw": 4, "rn_bw": 8, "acc_depth": 64}
SYSTOLIC_SMALL = {"rows": 4, "cols": 4, "data_width": 32, "k_max": 1024, "a_depth": 4096}
BIFROST = {"multipliers": 128, "dn_bw": 64, "rn_bw": 64, "acc_depth": 4096, "reach": 0}
#: the default array with 16 lanes, each reaching every adder node (the lane layout before lanes had a reach)
FULL_REACH = {**FLEX, "rn_bw": 16, "reach": 0}
#: the zoo's dense and pruned digits models
PRUNED = ("digits_cnn", "digits_cnn_pruned")


def _geomean(values):
    values = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else 0.0


def _systolic(gemm_design, layer, x, dma, device=None):
    """Cycles of ``layer`` on the systolic array (its own plan: depthwise as block-diagonal group GEMMs)."""
    plan = gemm_design.plan(layer, x.shape)
    if device is None:
        return gemm_design.estimate(plan, dma).cycles
    out, stats = gemm_design.run(plan, device, x)
    assert np.array_equal(out, layer.reference(x)), "systolic output differs from the reference"
    return stats.cycles


def _flex(flex, layer, x, dma, device=None):
    plan = flex.plan(layer, x.shape)
    if device is not None:
        out, stats = flex.run(plan, device, x)
    else:
        out, stats = flex.golden(plan, x), flex.estimate(plan, dma)
    return plan, stats, bool(np.array_equal(out, layer.reference(x)))


def irregular(flex, systolic, dma, rng, devices=None):
    rows = []
    for name, kind, shape in IRREGULAR:
        layer, (x,) = get_kind(kind).random(rng, **shape)
        plan, stats, exact = _flex(flex, layer, x, dma, devices and devices["flexarray"])
        systolic_cycles = _systolic(systolic, layer, x, dma, devices and devices["gemm"])
        macs = layer.macs(x.shape)
        rows.append({"shape": name, "kind": kind, "macs": macs, "flex_cycles": stats.cycles,
                     "flex_utilization": macs / (flex.pes * stats.cycles), "systolic_cycles": systolic_cycles,
                     "systolic_utilization": macs / (systolic.pes * systolic_cycles),
                     "speedup": systolic_cycles / stats.cycles, "bit_exact": exact,
                     "mapping": plan.schedule["mapping"], "config_bytes": plan.schedule["config_bytes"]})
    return rows


def sparsity(flex, systolic, dma, rng, wide=None):
    """The sparsity GEMM on ``flex`` (and on ``wide``, more reduction lanes, when given)."""
    shape, fractions = SPARSE
    layer, (x,) = get_kind("gemm").random(rng, **shape)
    dense_weights = layer.b.copy()
    rows = []
    for fraction in fractions:
        layer.b = (dense_weights * (rng.random(dense_weights.shape) >= fraction)).astype(np.int8)
        flex._plans.clear()
        plan, stats, exact = _flex(flex, layer, x, dma)
        systolic_cycles = _systolic(systolic, layer, x, dma)
        nonzero = int(np.count_nonzero(layer.b))
        row = {"zero_fraction": fraction, "nonzero_weights": nonzero, "flex_cycles": stats.cycles,
               "multiplies_issued": stats.array_macs, "nonzero_pairs": nonzero * shape["m"],
               "systolic_cycles": systolic_cycles, "bit_exact": exact, "mapping": plan.schedule["mapping"]}
        if wide is not None:
            wide._plans.clear()
            plan, stats, exact = _flex(wide, layer, x, dma)
            row.update(wide_cycles=stats.cycles, wide_bit_exact=exact, wide_mapping=plan.schedule["mapping"])
        rows.append(row)
    for row in rows:
        row["vs_dense"] = row["flex_cycles"] / rows[0]["flex_cycles"]
        if wide is not None:
            row["wide_vs_dense"] = row["wide_cycles"] / rows[0]["wide_cycles"]
            row["wide_vs_default_dense"] = row["wide_cycles"] / rows[0]["flex_cycles"]
    return rows


def pruned_model(flex, systolic, dma, seed, models=PRUNED):
    """Cycles per inference of the dense and the pruned digits model on ``flex`` and ``systolic`` (cost
    models, every offloaded layer checked bit-exact against its reference), layer by layer."""
    from ..execution.executors import open_executor
    from ..frontends.tflite.runner import one_inference
    from ..zoo import ZOO
    rows = []
    for name in models:
        row = {"model": name}
        for label, accelerator in (("flex", flex), ("systolic", systolic)):
            with open_executor(accelerator, "model", dma) as executor:
                model, _, outputs, expected = one_inference(ZOO / "models" / f"{name}.tflite", executor, seed)
            row[f"{label}_layers"] = [r.cycles for r in model.offloaded]
            row[f"{label}_cycles"] = sum(row[f"{label}_layers"])
            row[f"{label}_bit_exact"] = all(np.array_equal(a, b) for a, b in zip(outputs, expected))
        rows.append(row)
    for row in rows:
        row["vs_dense"] = row["flex_cycles"] / rows[0]["flex_cycles"]
    return rows


def bifrost(dma, rng, layers=ALEXNET):
    flex = get_accelerator("flexarray", BIFROST)
    design = flex.design
    rows = []
    for name, kind, shape in layers:
        layer, (x,) = get_kind(kind).random(rng, **shape)
        structure = compiler.structure_of(layer, x.shape)
        if kind == "fc":
            naive = compiler.Mapping(rows=1, channels=1, chunk=(1,))
        else:
            naive = compiler.Mapping(rows=1, channels=1, chunk=(1, 1, 1), box=(1, 1))
        started = time.perf_counter()
        searched = search.best_mapping(design, structure, dma=dma)
        seconds = time.perf_counter() - started
        cycles = {}
        for label, mapping in (("naive", naive), ("searched", searched)):
            program = compiler.compile_program(design, structure, mapping, skeleton=True)
            cycles[label] = cost.program_cycles(design, program, dma)
        macs = layer.macs(x.shape)
        rows.append({"layer": name, "macs": macs, "naive_cycles": cycles["naive"],
                     "searched_cycles": cycles["searched"], "speedup": cycles["naive"] / cycles["searched"],
                     "naive_utilization": macs / (design.multipliers * cycles["naive"]),
                     "searched_utilization": macs / (design.multipliers * cycles["searched"]),
                     "mapping": searched.as_dict(), "search_seconds": seconds})
    return rows


def flexarray_bench(args):
    """Run the three comparisons; print tables; return the JSON record."""
    rng = np.random.default_rng(args.seed)
    dma = DmaTiming(8, 0)
    record = provenance("bench flexarray", dma=dma, seed=args.seed, designs={"flexarray": FLEX, "gemm": SYSTOLIC,
                                                                          "bifrost": BIFROST,
                                                                          "full_reach": FULL_REACH})
    flex, systolic = get_accelerator("flexarray", FLEX), get_accelerator("gemm", SYSTOLIC)
    record["irregular"] = irregular(flex, systolic, dma, rng)
    record["sparsity"] = sparsity(flex, systolic, dma, rng, get_accelerator("flexarray", FULL_REACH))
    record["pruned_model"] = pruned_model(flex, systolic, dma, args.seed)
    if args.rtl:
        from ..execution.devices import open_device
        small_flex, small_gemm = get_accelerator("flexarray", FLEX_SMALL), get_accelerator("gemm", SYSTOLIC_SMALL)
        small_dma = DmaTiming(4, 0)
        devices = {"flexarray": open_device(small_flex, "verilator", small_dma),
                   "gemm": open_device(small_gemm, "verilator", small_dma)}
        try:
            record["irregular_rtl"] = irregular(small_flex, small_gemm, small_dma, np.random.default_rng(args.seed),
                                                devices)
        finally:
            for device in devices.values():
                device.close()
    record["bifrost"] = bifrost(DmaTiming(64, 0), rng)
    _print(record)
    return record


def _print(record):
    for key, title in (("irregular", f"irregular shapes, model ({FLEX['multipliers']} multipliers each, 8 B/cycle)"),
                       ("irregular_rtl", "irregular shapes on Verilator (16 multipliers each, 4 B/cycle)")):
        if key not in record:
            continue
        rows = record[key]
        console.print(table(title, ["shape", "flex cycles", "flex util", "systolic cycles", "systolic util",
                                    "speedup", "exact"],
                            [[r["shape"], f"{r['flex_cycles']:,}", f"{r['flex_utilization']:.1%}",
                              f"{r['systolic_cycles']:,}", f"{r['systolic_utilization']:.1%}",
                              f"{r['speedup']:.2f}x", "yes" if r["bit_exact"] else "NO"] for r in rows]))
        ratio = _geomean([r["flex_utilization"] / r["systolic_utilization"] for r in rows])
        console.print(f"geometric-mean utilization ratio flexarray / systolic: {ratio:.2f}x")
        record[key + "_utilization_ratio"] = ratio
    sparse_rows = record["sparsity"]
    wide = "wide_cycles" in sparse_rows[0]
    console.print(table("weight sparsity, GEMM 64x64x256", ["zero weights", "flex cycles", "vs dense",
                                                             "multiplies issued", "non-zero pairs",
                                                             "systolic cycles", "exact"]
                        + (["16 full-reach lanes: cycles", "vs its dense", "vs default dense", "exact"] if wide
                           else []),
                        [[f"{r['zero_fraction']:.0%}", f"{r['flex_cycles']:,}", f"{r['vs_dense']:.2f}",
                          f"{r['multiplies_issued']:,}", f"{r['nonzero_pairs']:,}", f"{r['systolic_cycles']:,}",
                          "yes" if r["bit_exact"] else "NO"]
                         + ([f"{r['wide_cycles']:,}", f"{r['wide_vs_dense']:.2f}", f"{r['wide_vs_default_dense']:.2f}",
                             "yes" if r["wide_bit_exact"] else "NO"] if wide else []) for r in sparse_rows]))
    if record.get("pruned_model"):
        console.print(table("pruned model, cycles per inference (model backend)",
                            ["model", "flex cycles", "vs dense", "flex per layer", "systolic cycles", "exact"],
                            [[r["model"], f"{r['flex_cycles']:,}", f"{r['vs_dense']:.2f}",
                              " / ".join(f"{c:,}" for c in r["flex_layers"]), f"{r['systolic_cycles']:,}",
                              "yes" if r["flex_bit_exact"] and r["systolic_bit_exact"] else "NO"]
                             for r in record["pruned_model"]]))
    rows = record["bifrost"]
    console.print(table("Bifrost's experiment: AlexNet on 128 multipliers, bandwidth 64",
                        ["layer", "naive cycles", "searched cycles", "speedup", "naive util", "searched util",
                         "mapping"],
                        [[r["layer"], f"{r['naive_cycles']:,}", f"{r['searched_cycles']:,}", f"{r['speedup']:.1f}x",
                          f"{r['naive_utilization']:.2%}", f"{r['searched_utilization']:.1%}",
                          _describe(r["mapping"])] for r in rows]))
    conv = [r["speedup"] for r in rows if r["layer"].startswith("conv")]
    fc = [r for r in rows if r["layer"].startswith("fc")]
    if conv:
        console.print(f"conv: mean speedup {sum(conv) / len(conv):.1f}x (Bifrost on STONNE: 51x)")
    if fc:
        total = sum(r["naive_cycles"] for r in fc) / sum(r["searched_cycles"] for r in fc)
        console.print(f"fc: aggregate speedup {total:.1f}x (Bifrost on STONNE: 11.1x)")


def _describe(mapping):
    box = f" box {mapping['box'][0]}x{mapping['box'][1]}" if mapping.get("box") else ""
    return (f"rows {mapping['rows']}{box}, channels {mapping['channels']}, chunk "
            f"{'x'.join(map(str, mapping['chunk']))}{' sparse' if mapping['sparse'] else ''}")
