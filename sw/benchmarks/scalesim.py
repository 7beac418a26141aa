"""`accelkit bench scalesim`: accelkit's RTL cycles next to SCALE-Sim's for the same CONV_2D layers.

For each CONV_2D layer of the chosen models, one inference on the accelerator (``--backend``,
the RTL by default) gives accelkit's cycles: the hardware CYCLES counter, from the start write
to the last output beat, data movement included. SCALE-Sim (``pip install scalesim==3.0.0``,
an optional dependency) simulates the same layers on a systolic array of the same rows x cols
with its output-stationary dataflow ("os").

What SCALE-Sim is given
-----------------------
* Topology: IFMAP height/width, filter height/width, channels, filters, stride. SCALE-Sim has
  no padding parameter (its output size is ceil((H - kh + s) / s)), so each IFMAP is given as
  (out - 1) * stride + kernel: the SAME-padded size (MobileNetV2's 224x224 stride-2 input
  becomes 225x225) or, for VALID, the input without the rows no window reaches. Its GEMM
  (M = output pixels, N = filters, K = kh * kw * cin) is then the one accelkit ran; this is
  checked per layer. Batch > 1, dilation and unequal strides cannot be expressed; such layers
  are listed as not compared.
* Buffers: IFMAP SRAM = the A buffer (a_depth x rows bytes, 32 kB by default), filter SRAM =
  the two B halves (2 x k_max x cols bytes, 32 kB), OFMAP SRAM 1 kB, SCALE-Sim's smallest
  (accelkit has none: results leave the PEs' result registers through the requantizer
  and a one-row output register to the output stream). SCALE-Sim splits every SRAM into an active and a prefetch
  half and counts whole kB.
* Bandwidth: USER mode, with the IFMAP fill, the filter fill and the OFMAP drain each at
  min(DMA bytes/cycle, stream beat bytes) one-byte words per cycle (8 by default). SCALE-Sim's
  DRAM latency is one cycle whatever ``--dma-latency`` says.
* SCALE-Sim 3.0.0 fails under NumPy >= 2.4 (int() of a one-element array, upstream issue
  #160); its workers give two of its modules a max() that unwraps such arrays.

Columns: "compute" is SCALE-Sim's Total Cycles - Stall Cycles (operands assumed in SRAM),
"total" its Total Cycles (with the DRAM stalls of its memory model), "+prefetch" its Total
Cycles (incl. prefetch), which adds the initial SRAM fill and the final OFMAP drain. Layers are
TFLite operator indices.

Why the numbers differ
----------------------
Measured with the defaults: 8x8, 64-bit stream, 8 bytes/cycle, k_max 2048, a_depth 4096,
before the gemm core registered its buffer outputs and PE products for timing: a tile's
readout now starts two cycles later (27 cycles after its last step, not 25), so the figures
below are two cycles per tile low until the benchmark is rerun.

1. Not the mapping. SCALE-Sim's os puts output pixels (M) on the array rows and filters (N) on
   the columns and walks column folds outermost, as accelkit does with its row tiles and
   column tiles, so the fold counts are identical (1568 x 4 for MobileNetV2 layer 0).

2. What a tile costs. SCALE-Sim charges each fold K + rows + cols - 2 cycles (K steps, skew,
   drain) and never overlaps two folds: its compute column equals folds x (K + 14) - 1 on all
   38 measured layers (it reports the last cycle's index). accelkit overlaps tiles (the tile
   flags travel with the operands), but a PE has one result register, so a tile's last step
   waits until the previous tile is out of it: rows + cols + 1 = 17 cycles for the operands
   to cross the array, then the rows go one by one through the requantizer into the output
   register, one beat each; the result registers are free once the last row is loaded, 25
   cycles after the last step. A tile costs max(K, 25) cycles: accelkit is ahead per tile
   when K > 11, behind when K < 11.
   * digits layer 0 (64 x 16 x 9, 16 tiles): SCALE-Sim 16 x 23 - 1 = 367; accelkit
     72 (A block) + 1 + 25 (parameters and B of the first column tile) + 8 (the first
     tile's other steps) + 16 x 25 + 1 (the output register) = 507.
   * MobileNetV2 layer 6 (3136 x 144 x 24, 7056 tiles): SCALE-Sim 7056 x 38 - 1 = 268,127;
     accelkit 186,003, of which 7056 x 25 = 176,400 are tiles and 9,408 the A blocks.
   * MobileNetV2 layer 61 (49 x 1280 x 320, 1120 tiles): SCALE-Sim 1120 x 334 - 1 = 374,079;
     accelkit 2,240 (A block) + 1 + 336 (first B tile) + 1120 x 320 + 25 (last readout) =
     361,002: the 14-cycle fill and drain SCALE-Sim charges per fold (15,680) is hidden.

3. Data movement the compute column leaves out. accelkit's single input stream carries, per
   job, the A block (M tiles x K words of the host's im2col), all of it before the first
   step, then per column tile 16 beats of requantization parameters (bias, two multiplier
   words, shifts) and K beats of B, double-buffered behind the previous column tile.
   * Few column tiles, large M: the A block dominates. MobileNetV2 layer 2 (12544 x 16 x 32,
     13 jobs of at most 4096 / 32 = 128 row tiles): 50,176 cycles of A blocks + 100,352
     steps + 962 of job start and end = 151,490, against SCALE-Sim's 144,255.
   * One row tile: the B and parameter stream is the bound. digits layer 2 (4 x 32 x 288):
     each column tile needs 304 beats in and computes for 288 cycles: 1,828 against 1,207.
   SCALE-Sim's +prefetch column charges only the first SRAM fill, on two ports of their own
   (digits layer 2: the whole 9,216-byte filter, 1,152 cycles, + 1,207 + a 15-cycle OFMAP
   drain = 2,374), and it moves no per-channel parameters at all.

4. No post-processing in SCALE-Sim. accelkit's outputs leave through bias, per-channel
   requantization, output zero point and clamp, one row per cycle into an output register;
   that readout is the 8 in the 25-cycle floor of point 2. SCALE-Sim drains raw outputs into
   its OFMAP SRAM inside the rows term of each fold.

5. SCALE-Sim's stalls describe its memory model, not accelkit's DMA. With 16 kB active
   halves, its read buffer serves a miss by prefetching forward through the operand in a
   fixed order, wrapping round, until the address arrives; data reused across folds that
   has slid out of the active half costs a lap of the operand. Over MobileNetV2's CONV_2D
   layers it reads 74.9 MB of IFMAP and 122.1 MB of filter from DRAM, where accelkit streams
   6.96 MB in. Layer 61 reads 85.95 MB for a 409,600-byte filter (210 laps); its total,
   10,760,233, is that volume at 8 bytes/cycle (10,743,808) and 30 x accelkit's cycles.
   Layers whose operands stay resident (15, 24, 26, 38 and their repeats) have no stalls.
   Upstream issue #130 also questions 3.0.0's USER-mode stall arithmetic. Read "total" as
   SCALE-Sim's verdict on its own 16 kB double-buffered SRAMs, not as an estimate of accelkit.

6. Smaller effects: SCALE-Sim's separate IFMAP and filter ports give it twice accelkit's input
   bandwidth; it models no DMA latency; its cycle figure is the last cycle's index.

Totals measured: MobileNetV2, 35 CONV_2D layers: accelkit 5,178,688 cycles, SCALE-Sim compute
5,527,693 (accelkit / SCALE-Sim 0.94), total 24,286,887. digits_cnn, 3 layers: 3,961 against
2,837 (1.40), 4,779 with SCALE-Sim's prefetch.
"""

import builtins
import contextlib
import csv
import io
import math
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib import metadata
from pathlib import Path

from ...accelerators.base import get_accelerator, parse_params
from ...driver.device import DmaTiming
from ...errors import ModelError, ParameterError, ToolchainError
from ..reports.output import console, progress_printer, provenance, table

__all__ = ["scalesim_bench", "conv_layers", "scalesim_settings", "config_text", "topology_row",
           "os_compute_cycles", "SCALESIM_VERSION"]

#: The release this benchmark was written against: its report columns and configuration keys are read by name.
SCALESIM_VERSION = "3.0.0"

_INSTALL = (f"the scalesim benchmark needs SCALE-Sim: pip install scalesim=={SCALESIM_VERSION} "
            "(into accelkit's environment, e.g. .venv/bin/pip install scalesim==3.0.0; "
            "it is an optional benchmark dependency, not needed to build or test accelkit)")

# SCALE-Sim writes its reports to <top path>/<run name>/.
_RUN_NAME = "accelkit"


def _require_scalesim():
    """SCALE-Sim's installed version; ToolchainError when its Python API cannot be imported."""
    try:
        from scalesim.scale_sim import scalesim  # noqa: F401  (the API the workers use)
    except ImportError as error:
        raise ToolchainError(f"{_INSTALL} ({error})") from None
    try:
        return metadata.version("scalesim")
    except metadata.PackageNotFoundError:
        return "unknown"


def conv_layers(model):
    """The CONV_2D layers of a ``read_model`` model as SCALE-Sim conv topology entries.

    SCALE-Sim computes the output size as ceil((H - kh + s) / s) with no padding, so the
    IFMAP is given as (oh - 1) * s + kh: the padded size for SAME, and for VALID the input
    trimmed of the rows no window reaches (passing H itself would give one output too many
    whenever (H - kh) is not a multiple of s). Layers SCALE-Sim cannot express carry
    ``reason`` instead of a topology.
    """
    layers = []
    for op in model.ops:
        if op.op != "CONV_2D":
            continue
        x = model.tensors[op.inputs[0]].shape
        w = model.tensors[op.inputs[1]].shape
        y = model.tensors[op.outputs[0]].shape
        stride = tuple(op.options.get("stride", (1, 1)))
        dilation = tuple(op.options.get("dilation", (1, 1)))
        entry = {"index": op.index, "input": list(x), "output": list(y), "filter": list(w),
                 "stride": list(stride), "padding": op.options.get("padding", "SAME"), "reason": ""}
        if len(x) != 4 or len(w) != 4 or len(y) != 4:
            entry["reason"] = f"unexpected ranks: input {x}, filter {w}, output {y}"
        elif x[0] != 1:
            entry["reason"] = f"batch {x[0]}: SCALE-Sim's conv topology has no batch dimension"
        elif dilation != (1, 1):
            entry["reason"] = f"dilation {dilation}: SCALE-Sim has no dilation"
        elif stride[0] != stride[1]:
            entry["reason"] = f"stride {stride}: SCALE-Sim's conv topology has one stride for both axes"
        elif x[3] != w[3]:
            entry["reason"] = f"grouped convolution ({x[3]} input channels, filters of {w[3]})"
        if entry["reason"]:
            layers.append(entry)
            continue
        cout, kh, kw, cin = w
        _, oh, ow, _ = y
        s = stride[0]
        entry["topology"] = {"ifmap_h": (oh - 1) * s + kh, "ifmap_w": (ow - 1) * s + kw, "filter_h": kh,
                             "filter_w": kw, "channels": cin, "num_filters": cout, "stride": s}
        entry["gemm_shape"] = [oh * ow, cout, kh * kw * cin]
        layers.append(entry)
    return layers


def topology_row(name, t):
    # SCALE-Sim drops the last comma-separated field of every row, hence the trailing comma; a
    # name containing "DP" would be expanded as a depthwise layer, which "conv_op<n>" never does.
    return (f"{name}, {t['ifmap_h']}, {t['ifmap_w']}, {t['filter_h']}, {t['filter_w']}, {t['channels']}, "
            f"{t['num_filters']}, {t['stride']},")


def _shape_key(row):
    return row.split(",", 1)[1]


_TOPOLOGY_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,")


def scalesim_settings(params, dma):
    """SCALE-Sim's architecture settings for an accelerator's parameters and DMA timing.

    Buffers: the A buffer is ``a_depth`` words of ``rows`` bytes and becomes the IFMAP SRAM;
    the two B halves of ``k_max`` words of ``cols`` bytes become the filter SRAM; accelkit
    has no output SRAM (results go from the PEs' result registers to the stream), so the
    OFMAP SRAM gets SCALE-Sim's smallest size. SCALE-Sim takes whole kB and double-buffers
    every SRAM half/half. Bandwidth: the core takes at most one stream beat per cycle, so
    the useful DMA rate is min(bytes/cycle, beat bytes); SCALE-Sim's words are one byte.
    """
    try:
        rows, cols = params["rows"], params["cols"]
    except KeyError as missing:
        raise ParameterError(f"the scalesim benchmark maps a rows x cols array; this accelerator has no {missing} "
                             "parameter") from None
    a_bytes = params.get("a_depth", 0) * rows
    b_bytes = 2 * params.get("k_max", 0) * cols
    beat = params.get("data_width", 8 * dma.bytes_per_cycle) // 8
    bandwidth = min(dma.bytes_per_cycle, beat)
    return {"array": [rows, cols], "dataflow": "os",
            "accelkit_buffers": {"a_bytes": a_bytes, "b_bytes": b_bytes, "output_bytes": 0},
            "ifmap_sram_kb": max(1, math.ceil(a_bytes / 1024)), "filter_sram_kb": max(1, math.ceil(b_bytes / 1024)),
            "ofmap_sram_kb": 1, "active_buffer_fraction": 0.5, "word_bytes": 1,
            "bandwidth_mode": "USER", "ifmap_bw": bandwidth, "filter_bw": bandwidth, "ofmap_bw": bandwidth,
            "dram_read_latency": 1}


def config_text(settings, run_name=_RUN_NAME):
    """A SCALE-Sim 3.0.0 configuration file.

    In USER bandwidth mode SCALE-Sim 3.0.0 fills the IFMAP and filter SRAMs at the
    [layout] section's IfmapSRAMBankBandwidth / FilterSRAMBankBandwidth and drains the
    OFMAP SRAM at the first Bandwidth value, so all three are set. No [network_presets]
    section: 3.0.0 reads its TopologyCsvLoc from the wrong section; the topology is
    passed to the API instead.
    """
    rows, cols = settings["array"]
    return f"""[general]
run_name = {run_name}

[run_presets]
InterfaceBandwidth = USER
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = {settings['ifmap_sram_kb']}
FilterSramSzkB = {settings['filter_sram_kb']}
OfmapSramSzkB = {settings['ofmap_sram_kb']}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {settings['dataflow']}
Bandwidth = {settings['ofmap_bw']}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = {settings['ifmap_bw']}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = {settings['filter_bw']}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
"""


def os_compute_cycles(m, n, k, rows, cols):
    """SCALE-Sim's stall-free OS cycles: every fold (one rows x cols output tile) takes
    K + rows + cols - 2 cycles (K operand steps, skew in, outputs drained) with no overlap
    between folds; SCALE-Sim reports the index of the last cycle, hence the - 1."""
    return math.ceil(m / rows) * math.ceil(n / cols) * (k + rows + cols - 2) - 1


@contextlib.contextmanager
def _scalar_max():
    """Let SCALE-Sim 3.0.0 run on NumPy >= 2.4.

    Its read buffer and scratchpad take ``int(max(cycles))`` of an (n, 1) array; Python's
    max returns a one-element row, and NumPy 2.4 refuses int() of a 1-d array
    (scalesim-project/SCALE-Sim#160, fix proposed in #162). The two modules get a max()
    that unwraps a one-element array result; no value changes.
    """
    import numpy as np
    import scalesim.memory.double_buffered_scratchpad_mem as scratchpad
    import scalesim.memory.read_buffer as read_buffer

    def unwrapped_max(*args, **kwargs):
        result = builtins.max(*args, **kwargs)
        return result.reshape(-1)[0] if isinstance(result, np.ndarray) and result.size == 1 else result

    modules = (scratchpad, read_buffer)
    saved = [m.__dict__.get("max") for m in modules]
    for module in modules:
        module.max = unwrapped_max
    try:
        yield
    finally:
        for module, old in zip(modules, saved):
            if old is None:
                del module.max
            else:
                module.max = old


def _report_rows(path):
    """A SCALE-Sim report CSV as {layer id: {column: number}} (its header cells carry spaces)."""
    with open(path, newline="") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f)]
    header = rows[0]
    return {int(row[0]): {name: float(value) for name, value in zip(header[1:], row[1:]) if name}
            for row in rows[1:] if row and row[0]}


def _simulate(workdir, config, row):
    """Run one topology row through SCALE-Sim in its own process; its report figures, and seconds."""
    from scalesim.scale_sim import scalesim
    workdir = Path(workdir)
    workdir.mkdir(parents=True)
    (workdir / "scale.cfg").write_text(config)
    (workdir / "topology.csv").write_text(f"{_TOPOLOGY_HEADER}\n{row}\n")
    # 3.0.0 opens a layout file even when custom layouts are off; a header is enough.
    (workdir / "layout.csv").write_text("Layer name,\n")
    started = time.perf_counter()
    chatter = io.StringIO()
    try:
        with _scalar_max(), contextlib.redirect_stdout(chatter):
            sim = scalesim(save_disk_space=True, verbose=False, config=str(workdir / "scale.cfg"),
                           topology=str(workdir / "topology.csv"), layout=str(workdir / "layout.csv"),
                           input_type_gemm=False)
            sim.run_scale(top_path=str(workdir / "out"))
    except (Exception, SystemExit) as error:   # SCALE-Sim exits on bad input; report what it said
        raise RuntimeError(f"SCALE-Sim failed on {row!r}: {type(error).__name__}: {error}; "
                           f"it printed: {chatter.getvalue()[-2000:]}") from None
    seconds = time.perf_counter() - started
    reports = workdir / "out" / _RUN_NAME
    compute = _report_rows(reports / "COMPUTE_REPORT.csv")[0]
    access = _report_rows(reports / "DETAILED_ACCESS_REPORT.csv")[0]
    total, stalls = int(compute["Total Cycles"]), int(compute["Stall Cycles"])
    return {"compute_cycles": total - stalls, "stall_cycles": stalls, "total_cycles": total,
            "total_with_prefetch": int(compute["Total Cycles (incl. prefetch)"]),
            "mapping_efficiency": compute["Mapping Efficiency %"] / 100,
            "compute_utilization": compute["Compute Util %"] / 100,
            "ifmap_dram_reads": int(access["DRAM IFMAP Reads"]),
            "filter_dram_reads": int(access["DRAM Filter Reads"]),
            "ofmap_dram_writes": int(access["DRAM OFMAP Writes"]),
            "ifmap_prefetch_cycles": -int(access["DRAM IFMAP Start Cycle"]),
            "filter_prefetch_cycles": -int(access["DRAM Filter Start Cycle"]),
            "seconds": seconds}


def _run_scalesim(rows, config, workdir, progress):
    """SCALE-Sim figures for each distinct topology row, one process per row (they are independent).

    Rows are submitted in the order given; the caller puts the biggest first so that the
    slowest runs do not start last.
    """
    results = {}
    workers = max(1, min(len(rows), os.cpu_count() or 1))
    # spawn, not fork: the parent holds LiteRT and simulator state and threads that a fork would copy.
    # Like any spawn pool, this needs the caller's main module to be import-safe (the CLI is).
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_simulate, str(Path(workdir) / f"run{i}"), config, row): row
                   for i, row in enumerate(rows)}
        for done, future in enumerate(as_completed(futures), 1):
            row = futures[future]
            try:
                results[row] = future.result()
            except Exception as error:   # a SCALE-Sim failure, or its worker process died (e.g. out of memory)
                raise ToolchainError(f"SCALE-Sim run of {row!r} failed: {error}") from None
            progress(f"SCALE-Sim {done}/{len(rows)}: {row.split(',')[0]} "
                     f"({results[row]['seconds']:.0f} s)")
    return results


def _layer_row(layer):
    s, a = layer["scalesim"], layer["accelkit"]
    m, n, k = layer["gemm_shape"]
    return [layer["index"], m, n, k, f"{layer['folds'][0]}x{layer['folds'][1]}", a["cycles"], s["compute_cycles"],
            s["stall_cycles"], s["total_cycles"], s["total_with_prefetch"],
            a["cycles"] / s["compute_cycles"], a["cycles"] / s["total_cycles"]]


def scalesim_bench(args):
    """Per CONV_2D layer: accelkit's RTL cycles next to SCALE-Sim's for the same array size and dataflow."""
    from ..frontends.tflite.runner import one_inference
    from ..execution.executors import open_executor
    from ..frontends.tflite.model import read_model
    from ..zoo import resolve_model
    version = _require_scalesim()
    accelerator = get_accelerator(args.accel, parse_params(args.params))
    dma = DmaTiming(args.dma_bytes, args.dma_latency)
    settings = scalesim_settings(accelerator.params, dma)
    rows, cols = settings["array"]
    progress = progress_printer()
    if version != SCALESIM_VERSION:
        progress(f"SCALE-Sim {version} is installed; this benchmark reads the reports of {SCALESIM_VERSION}")
    names = [name.strip() for name in (args.models or "mobilenet_v2").split(",") if name.strip()]
    paths = {name: resolve_model(name) for name in names}

    # accelkit: one RTL inference per model; the records of offloaded layers carry cycles and the GEMM shape
    rtl = {}
    with open_executor(accelerator, args.backend, dma, progress=progress) as executor:
        for name in names:
            progress(f"{name} on {args.backend}")
            model, _, _, _ = one_inference(paths[name], executor, args.seed)
            rtl[name] = {r.index: r for r in model.offloaded if r.op == "CONV_2D"}

    # SCALE-Sim: the same layers; layers of identical shape give identical figures and are simulated once
    per_model, skipped, distinct, work = {}, {}, {}, {}
    for name in names:
        per_model[name], skipped[name] = [], []
        for layer in conv_layers(read_model(paths[name])):
            record = rtl[name].get(layer["index"])
            if record is None:
                layer["reason"] = layer["reason"] or "not offloaded to the accelerator (runs on the CPU)"
            if layer["reason"]:
                skipped[name].append({"index": layer["index"], "reason": layer["reason"]})
                continue
            if list(record.extra["gemm_shape"]) != layer["gemm_shape"]:
                raise ModelError(f"{name} layer {layer['index']}: the accelerator ran GEMM "
                                 f"{record.extra['gemm_shape']}, the topology gives {layer['gemm_shape']}")
            layer["row"] = topology_row(f"conv_op{layer['index']}", layer["topology"])
            layer["accelkit"] = {"cycles": record.cycles, "busy_cycles": record.extra.get("busy_cycles", 0),
                                 "stall_cycles": record.stall_cycles, "bytes_in": record.bytes_in,
                                 "bytes_out": record.bytes_out, "jobs": record.jobs}
            distinct.setdefault(_shape_key(layer["row"]), layer["row"])
            work[layer["row"]] = math.prod(layer["gemm_shape"])
            per_model[name].append(layer)
    progress(f"SCALE-Sim {version}: {len(distinct)} distinct layer shapes "
             "(its Python memory model takes minutes on mobilenet_v2)")
    with tempfile.TemporaryDirectory(prefix="accelkit-scalesim-") as workdir:
        figures = _run_scalesim(sorted(distinct.values(), key=lambda row: -work[row]), config_text(settings),
                                workdir, progress)
    by_key = {_shape_key(row): value for row, value in figures.items()}

    accelkit_column = "accelkit cost model" if args.backend == "model" else "accelkit RTL"
    results = {}
    for name in names:
        layers = []
        for layer in per_model[name]:
            m, n, k = layer["gemm_shape"]
            s = dict(by_key[_shape_key(layer["row"])])
            s.pop("seconds")
            expected = os_compute_cycles(m, n, k, rows, cols)
            layers.append({
                "index": layer["index"], "gemm_shape": layer["gemm_shape"],
                "folds": [math.ceil(m / rows), math.ceil(n / cols)],
                "tflite": {"input": layer["input"], "output": layer["output"], "filter": layer["filter"],
                           "stride": layer["stride"], "padding": layer["padding"]},
                "scalesim_topology": layer["topology"], "accelkit": layer["accelkit"], "scalesim": s,
                "scalesim_os_formula": expected, "formula_matches": expected == s["compute_cycles"],
                "rtl_over_scalesim_compute": layer["accelkit"]["cycles"] / s["compute_cycles"],
                "rtl_over_scalesim_total": layer["accelkit"]["cycles"] / s["total_cycles"]})
        totals = {"accelkit_cycles": sum(x["accelkit"]["cycles"] for x in layers),
                  **{f"scalesim_{key}": sum(x["scalesim"][key] for x in layers)
                     for key in ("compute_cycles", "stall_cycles", "total_cycles", "total_with_prefetch",
                                 "ifmap_dram_reads", "filter_dram_reads", "ofmap_dram_writes")},
                  "accelkit_bytes_in": sum(x["accelkit"]["bytes_in"] for x in layers),
                  "accelkit_bytes_out": sum(x["accelkit"]["bytes_out"] for x in layers)}
        results[name] = {"layers": layers, "skipped": skipped[name], "totals": totals}

        table_rows = [_layer_row(x) for x in layers]
        if layers:
            table_rows.append(["total", "", "", "", "", totals["accelkit_cycles"], totals["scalesim_compute_cycles"],
                               totals["scalesim_stall_cycles"], totals["scalesim_total_cycles"],
                               totals["scalesim_total_with_prefetch"],
                               totals["accelkit_cycles"] / totals["scalesim_compute_cycles"],
                               totals["accelkit_cycles"] / totals["scalesim_total_cycles"]])
        console.print(table(
            f"{name}: CONV_2D layers, {accelerator!r} ({args.backend}) vs SCALE-Sim {version} "
            f"{rows}x{cols} os, {settings['ifmap_bw']} B/cycle",
            ["layer", "M", "N", "K", "folds", accelkit_column, "SCALE-Sim compute", "SCALE-Sim stalls",
             "SCALE-Sim total", "SCALE-Sim +prefetch", "RTL / compute", "RTL / total"], table_rows))
        matching = sum(x["formula_matches"] for x in layers)
        console.print(f"SCALE-Sim compute = row folds x col folds x (K + {rows} + {cols} - 2) - 1 on {matching} of "
                      f"{len(layers)} layers. Data moved: accelkit {totals['accelkit_bytes_in']:,} B in, "
                      f"{totals['accelkit_bytes_out']:,} B out; SCALE-Sim DRAM reads "
                      f"{totals['scalesim_ifmap_dram_reads']:,} B IFMAP + {totals['scalesim_filter_dram_reads']:,} B "
                      f"filter, {totals['scalesim_ofmap_dram_writes']:,} B OFMAP writes.")
        for item in skipped[name]:
            console.print(f"  layer {item['index']} not compared: {item['reason']}")

    notes = [
        "SAME padding: SCALE-Sim has no padding; each IFMAP is given as (out - 1) * stride + kernel so "
        "SCALE-Sim's output size equals TFLite's",
        "SCALE-Sim compute = Total Cycles - Stall Cycles of its COMPUTE_REPORT; total = Total Cycles; "
        "incl. prefetch = Total Cycles (incl. prefetch) (adds the initial SRAM fill and the final OFMAP drain)",
        "SCALE-Sim has separate IFMAP and filter DRAM ports, each at the DMA rate; accelkit has one input "
        "stream for A, B and the requantization parameters",
        "SCALE-Sim's DRAM read latency is 1 cycle (no Ramulator trace)"
        + (f"; accelkit's DMA latency is {dma.latency}" if dma.latency else ""),
        "identical layer shapes are simulated by SCALE-Sim once",
    ]
    return provenance("bench scalesim", accelerator, args.backend, dma, args.seed, scalesim_version=version,
                      scalesim_settings=settings, models=results, notes=notes)
