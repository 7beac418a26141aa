"""Fuzzing accelkit's command line and model reader: only success or a clean error is acceptable.

Two campaigns, both seeded:

* **models**: structure-aware mutations of bundled .tflite files. The
  flatbuffer is walked with the ``tflite`` schema bindings to find where each
  field that matters lies (tensor shapes, types, buffer and tensor indices,
  opcodes, strides, dilations, filter sizes, quantization arrays, vector
  lengths, buffer offsets) and one is overwritten in place with a value chosen
  to hurt (0, -1, 2^31 - 1, NaN ...); byte flips and truncations are mixed in.
  Each mutant runs through ``accelkit run --backend model`` on the LiteRT or
  the TVM front end.
* **cli**: random argument sets through every command, drawn from valid
  values, boundaries, huge and non-numeric values and hostile paths; they
  never ask for a design that is not built yet (no Verilator or Yosys runs).

Each case runs in a child process with a time bound and is classified
(:data:`OUTCOMES`): success, clean error, traceback, internal error, signal,
hang. The child is forked from a process that has already imported accelkit,
LiteRT (and TVM when needed), so a case costs its own work, not start-up.
"""

import dataclasses
import functools
import inspect
import json
import math
import os
import re
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

__all__ = ["OUTCOMES", "FAILURES", "Outcome", "Case", "model_fields", "mutate_model", "set_field",
           "run_cases", "model_cases", "cli_cases", "summarize", "fuzz"]

OUTCOMES = ("success", "clean error", "traceback", "internal error", "signal", "hang")
FAILURES = ("traceback", "internal error", "signal", "hang")

# --------------------------------------------------------------------------
# Where the fields of a .tflite flatbuffer lie

_FORMATS = {"Int8": "<b", "Uint8": "<B", "Int16": "<h", "Uint16": "<H", "Int32": "<i", "Uint32": "<I",
            "Int64": "<q", "Uint64": "<Q", "Float32": "<f", "Float64": "<d", "Bool": "<?"}


@functools.lru_cache(maxsize=None)
def _accessor(cls, method):
    """(vtable slot, element format, is_vector) of a generated accessor, read from its source."""
    source = inspect.getsource(getattr(cls, method))
    slot = int(re.search(r"Offset\((\d+)\)", source).group(1))
    types = re.findall(r"number_types\.(\w+)Flags", source)
    element = next((t for t in types if t in _FORMATS), None)
    return slot, (_FORMATS[element] if element else None), "Vector(o)" in source


_SCALARS = {}


def _scalar_fields(cls):
    """Scalar fields of a generated table class: {snake name: (slot, format)}."""
    if cls not in _SCALARS:
        found = {}
        for name, member in vars(cls).items():
            if name.startswith("_") or not callable(member):
                continue
            try:
                parameters = inspect.signature(member).parameters
                source = inspect.getsource(member)
            except (TypeError, ValueError, OSError):
                continue
            if len(parameters) != 1 or "o + self._tab.Pos" not in source or "Vector(o)" in source:
                continue
            slot, fmt, _ = _accessor(cls, name)
            if fmt:
                found[re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()] = (slot, fmt)
        _SCALARS[cls] = found
    return _SCALARS[cls]


@dataclasses.dataclass(frozen=True)
class Field:
    """One mutable value in a model file: a name, its byte position, its struct format, a category."""

    name: str
    position: int
    fmt: str
    category: str


def _scalar(table, cls, method):
    slot, fmt, _ = _accessor(cls, method)
    offset = table._tab.Offset(slot)
    return (table._tab.Pos + offset, fmt) if offset else None


def _vector(table, cls, method):
    """(position of the length word, first element position, count, element format) or None."""
    slot, fmt, _ = _accessor(cls, method)
    offset = table._tab.Offset(slot)
    if not offset:
        return None
    start = table._tab.Vector(offset)
    return start - 4, start, table._tab.VectorLen(offset), fmt


def _add_vector(fields, table, cls, method, name, category, length_category="offset", limit=16):
    found = _vector(table, cls, method)
    if not found:
        return
    length_at, start, count, fmt = found
    fields.append(Field(f"{name}.length", length_at, "<I", length_category))
    size = struct.calcsize(fmt)
    for j in range(min(count, limit)):
        fields.append(Field(f"{name}[{j}]", start + j * size, fmt, category))


def _option_category(name):
    for word in ("stride", "dilation", "filter"):
        if word in name:
            return word
    return "options"


def model_fields(data):
    """Every field of ``data`` (a .tflite file's bytes) the structure-aware mutator aims at."""
    import tflite
    model = tflite.Model.GetRootAs(data, 0)
    fields = []
    for j in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(j)
        for method, key in (("BuiltinCode", "builtin_code"), ("DeprecatedBuiltinCode", "deprecated_builtin_code"),
                            ("Version", "version")):
            at = _scalar(code, tflite.OperatorCode, method)
            if at:
                fields.append(Field(f"operator_codes[{j}].{key}", *at, "opcode"))
    graph = model.Subgraphs(0)
    _add_vector(fields, graph, tflite.SubGraph, "Inputs", "subgraph.inputs", "tensor index")
    _add_vector(fields, graph, tflite.SubGraph, "Outputs", "subgraph.outputs", "tensor index")
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        name = f"tensors[{i}]"
        _add_vector(fields, tensor, tflite.Tensor, "Shape", f"{name}.shape", "shape", "shape")
        for method, key, category in (("Type", "type", "type"), ("Buffer", "buffer", "buffer index")):
            at = _scalar(tensor, tflite.Tensor, method)
            if at:
                fields.append(Field(f"{name}.{key}", *at, category))
        quantization = tensor.Quantization()
        if quantization is not None:
            q = tflite.QuantizationParameters
            _add_vector(fields, quantization, q, "Scale", f"{name}.quantization.scale", "quantization",
                        "quantization")
            _add_vector(fields, quantization, q, "ZeroPoint", f"{name}.quantization.zero_point", "quantization",
                        "quantization")
            at = _scalar(quantization, q, "QuantizedDimension")
            if at:
                fields.append(Field(f"{name}.quantization.quantized_dimension", *at, "quantization"))
    option_names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        name = f"operators[{k}]"
        at = _scalar(op, tflite.Operator, "OpcodeIndex")
        if at:
            fields.append(Field(f"{name}.opcode_index", *at, "opcode"))
        _add_vector(fields, op, tflite.Operator, "Inputs", f"{name}.inputs", "tensor index")
        _add_vector(fields, op, tflite.Operator, "Outputs", f"{name}.outputs", "tensor index")
        at = _scalar(op, tflite.Operator, "BuiltinOptionsType")
        if at:
            fields.append(Field(f"{name}.builtin_options_type", *at, "opcode"))
        table = op.BuiltinOptions()
        cls = getattr(tflite, option_names.get(op.BuiltinOptionsType(), ""), None)
        if table is not None and cls is not None:
            options = cls()
            options.Init(table.Bytes, table.Pos)
            for key, (slot, fmt) in _scalar_fields(cls).items():
                offset = options._tab.Offset(slot)
                if offset:
                    fields.append(Field(f"{name}.options.{key}", options._tab.Pos + offset, fmt,
                                        _option_category(key)))
    for b in range(model.BuffersLength()):
        buffer = model.Buffers(b)
        found = _vector(buffer, tflite.Buffer, "Data")
        if found:
            fields.append(Field(f"buffers[{b}].data.length", found[0], "<I", "offset"))
        for method, key in (("Offset", "offset"), ("Size", "size")):
            at = _scalar(buffer, tflite.Buffer, method)
            if at:
                fields.append(Field(f"buffers[{b}].{key}", *at, "offset"))
    return fields


def set_field(data, field, value):
    """``data`` (bytes) with ``field`` overwritten by ``value`` (clipped to the field's range)."""
    out = bytearray(data)
    struct.pack_into(field.fmt, out, field.position, _fit(value, field.fmt))
    return bytes(out)


def field_value(data, field):
    return struct.unpack_from(field.fmt, data, field.position)[0]


def _fit(value, fmt):
    code = fmt[-1]
    if code in "fd":
        return float(value)
    if code == "?":
        return bool(value)
    bits = struct.calcsize(fmt) * 8
    if code.islower():
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1
    return int(min(max(int(value), low), high))


def _hostile_value(rng, original, fmt):
    if fmt[-1] in "fd":
        choices = [0.0, -1.0, math.nan, math.inf, -math.inf, 1e-30, 1e30, 1e-9,
                   original * 2 if math.isfinite(original) else 1.0, -original if math.isfinite(original) else 0.5]
        return choices[rng.integers(len(choices))]
    choices = [0, -1, 1, 2, 3, 5, 127, 128, 255, 256, 1000, 65535, 65536, (1 << 31) - 1, -(1 << 31), 1 << 32,
               original + 1, original - 1, original * 2, original * 1000, int(rng.integers(-1000, 1000))]
    return choices[rng.integers(len(choices))]


def mutate_model(data, rng, fields=None):
    """One mutant of ``data``: (bytes, description, category of what was hit)."""
    fields = model_fields(data) if fields is None else fields
    kind = rng.random()
    if kind < 0.75 and fields:
        count = 1 if rng.random() < 0.8 else 2
        out, names, category = data, [], None
        by_category = {}
        for field in fields:
            by_category.setdefault(field.category, []).append(field)
        categories = sorted(by_category)
        for _ in range(count):
            # a category first, then a field in it: the few strides must not drown among the scales
            group = by_category[categories[rng.integers(len(categories))]]
            field = group[rng.integers(len(group))]
            original = field_value(data, field)
            value = _hostile_value(rng, original, field.fmt)
            out = set_field(out, field, value)
            names.append(f"{field.name}: {original!r} -> {_fit(value, field.fmt)!r}")
            category = category or field.category
        return out, "; ".join(names), category
    if kind < 0.9:
        out = bytearray(data)
        flips = int(rng.integers(1, 9))
        positions = rng.integers(0, len(out), flips)
        for position in positions:
            out[position] ^= 1 << int(rng.integers(8))
        return bytes(out), f"{flips} bit flip(s) at {sorted(int(p) for p in positions)[:4]}", "byte flip"
    cut = int(rng.integers(0, len(data)))
    return data[:cut], f"truncated to {cut} of {len(data)} bytes", "truncation"


# --------------------------------------------------------------------------
# Running cases in time-bounded children


@dataclasses.dataclass
class Case:
    """One command to try: ``argv`` for ``accelkit`` and where it came from."""

    argv: list
    what: str = ""
    category: str = ""
    timeout: float = 60.0
    env: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Outcome:
    """How a case ended."""

    case: Case
    kind: str
    code: int | None
    seconds: float
    stderr: str = ""
    stdout: str = ""

    @property
    def failed(self):
        return self.kind in FAILURES


def classify(code, signalled, timed_out, stderr):
    """The outcome class of one finished (or killed) child."""
    if timed_out:
        return "hang"
    if signalled:
        return "signal"
    if "internal error" in stderr:
        return "internal error"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if code == 0:
        return "success"
    return "clean error"


def _program():
    """The installed ``accelkit`` program's entry function.

    Found through its console-script entry point, as a shell finds the program:
    the fuzzer drives the command line from outside and imports no command module.
    """
    from importlib.metadata import entry_points
    found = [entry for entry in entry_points(group="console_scripts", name="accelkit")]
    if not found:
        raise RuntimeError("the accelkit program is not installed (pip install -e .)")
    return found[0].load()


def _child(case, out_path, err_path):
    """Body of a forked child: run ``accelkit`` with output to files, exit with its code."""
    code = 70
    try:
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(err, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        os.environ.update(case.env)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        import faulthandler
        faulthandler.disable()          # a test runner's handler would dump the parent's stack on a signal
        try:
            code = _program()([str(a) for a in case.argv])
        except SystemExit as exit_:          # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 2
    except BaseException:                    # noqa: BLE001 - reported through stderr like any escape
        import traceback
        traceback.print_exc()
        code = 71
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 0)


def run_cases(cases, workers=2, progress=None, executable=None):
    """Run ``cases``, ``workers`` at a time, each in its own child; returns their Outcomes in order.

    Children are forked from this process (accelkit already imported) unless
    ``executable`` names an ``accelkit`` program to start instead.
    """
    outcomes = [None] * len(cases)
    pending = list(enumerate(cases))
    running = {}
    scratch = Path(tempfile.mkdtemp(prefix="accelkit-fuzz-"))
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                index, case = pending.pop(0)
                out_path, err_path = scratch / f"{index}.out", scratch / f"{index}.err"
                started = time.monotonic()
                if executable:
                    pid = _spawn(executable, case, out_path, err_path)
                else:
                    for stream in (sys.stdout, sys.stderr):
                        stream.flush()
                    pid = os.fork()
                    if pid == 0:
                        _child(case, out_path, err_path)
                running[pid] = (index, case, started, out_path, err_path)
            time.sleep(0.01)
            for pid, (index, case, started, out_path, err_path) in list(running.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                timed_out = False
                if not done:
                    if time.monotonic() - started < case.timeout:
                        continue
                    os.kill(pid, signal.SIGKILL)
                    _, status = os.waitpid(pid, 0)
                    timed_out = True
                del running[pid]
                stderr = _read(err_path)
                signalled = os.WIFSIGNALED(status) and not timed_out
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
                outcomes[index] = Outcome(case, classify(code, signalled, timed_out, stderr),
                                          code if not signalled else -os.WTERMSIG(status),
                                          time.monotonic() - started, stderr, _read(out_path))
                if progress and sum(o is not None for o in outcomes) % 100 == 0:
                    progress(f"{sum(o is not None for o in outcomes)}/{len(cases)} cases")
    finally:
        for pid in running:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for path in scratch.iterdir():
            path.unlink()
        scratch.rmdir()
    return outcomes


def _spawn(executable, case, out_path, err_path):
    import subprocess
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen([*executable, *map(str, case.argv)], stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **case.env})
    return process.pid


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------
# The two campaigns

#: Bundled models the model campaign mutates (small enough that TVM compiles them in seconds).
BASE_MODELS = ("digits_cnn", "transpose_mlp", "dcgan_tiny", "resnet_tiny")


def model_cases(count, seed, folder, tvm_share=0.15, tvm=True):
    """``count`` mutated models written to ``folder``, each with the ``run`` case that tries it."""
    from ..zoo import resolve_model
    rng = np.random.default_rng(seed)
    bases = {name: resolve_model(name).read_bytes() for name in BASE_MODELS}
    fields = {name: model_fields(data) for name, data in bases.items()}
    cases = []
    for i in range(count):
        name = BASE_MODELS[rng.integers(len(BASE_MODELS))]
        data, what, category = mutate_model(bases[name], rng, fields[name])
        path = Path(folder) / f"mutant{i:05d}_{name}.tflite"
        path.write_bytes(data)
        frontend = "tvm" if tvm and rng.random() < tvm_share else "tflite"
        accel = "mm2im,gemm" if name == "dcgan_tiny" and rng.random() < 0.5 else "gemm"
        argv = ["run", str(path), "--backend", "model", "--frontend", frontend, "--accel", accel]
        if rng.random() < 0.2:
            argv += ["--compare", "ref"]
        cases.append(Case(argv, f"{name}: {what}", category, timeout=180.0 if frontend == "tvm" else 60.0))
    return cases


def _hostile_files(folder):
    """Files the CLI campaign points flags at: wrong kinds, wrong contents, unwritable places."""
    folder = Path(folder)
    files = {}
    (folder / "dir").mkdir(exist_ok=True)
    files["dir"] = folder / "dir"
    files["text"] = folder / "notes.txt"
    files["text"].write_text("not an array\n")
    files["pickle"] = folder / "pickled.npy"
    np.save(files["pickle"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    files["empty"] = folder / "empty.npy"
    files["empty"].write_bytes(b"")
    files["labels_float"] = folder / "labels_float.npy"
    np.save(files["labels_float"], np.linspace(0, 9, 16))
    files["labels_long"] = folder / "labels_long.npy"
    np.save(files["labels_long"], np.arange(5) % 10)
    files["labels_4d"] = folder / "labels_4d.npy"
    np.save(files["labels_4d"], np.zeros((2, 1, 1, 1), np.int64))
    files["digits_x3"] = folder / "x3.npy"
    from ..zoo import resolve_array
    x = np.load(resolve_array("zoo:digits_test_x"))
    np.save(files["digits_x3"], x[:3])
    files["digits_empty"] = folder / "x0.npy"
    np.save(files["digits_empty"], x[:0])
    files["digits_float"] = folder / "xf.npy"
    np.save(files["digits_float"], np.full(x[:2].shape, np.nan, np.float32))
    from ..llm.tiny import TINY_PATH
    files["gguf"] = TINY_PATH
    files["gguf_cut"] = folder / "cut.gguf"
    files["gguf_cut"].write_bytes(TINY_PATH.read_bytes()[:200_000])
    files["trace_bad"] = folder / "bad_trace"
    (folder / "bad_trace.jsonl").write_text('{"format": "accelkit-trace", "version": 1}\n{not json\n')
    (folder / "bad_trace.npz").write_bytes(b"PK\x03\x04 not a zip")
    files["json_list"] = folder / "list.json"
    files["json_list"].write_text("[1, 2, 3]\n")
    files["under_file"] = files["text"] / "out.json"
    files["proc"] = Path("/proc/accelkit-fuzz/out.json")
    return files


def _integer_value(rng, valid):
    choices = [valid, valid, valid, 0, -1, 1, 2 ** 31, 2 ** 32 + 5, 2 ** 63, 2 ** 64, -(2 ** 63), "abc", "",
               "nan", "inf", "1e3", "0x10", "3.5", " 7", "-0"]
    return choices[rng.integers(len(choices))]


def _path_value(rng, files, folder, suffix):
    choices = [str(Path(folder) / f"out{rng.integers(1 << 30)}{suffix}"), str(files["dir"]), str(files["under_file"]),
               str(files["proc"]), "", str(Path(folder) / "new" / "deeper" / f"r{suffix}")]
    return choices[rng.integers(len(choices))]


# Designs the CLI campaign may run on a simulator: the tests' small GEMM (built by the suite).
_SMALL_GEMM = "rows=4,cols=4,data_width=32,k_max=64,a_depth=256"
_BAD_PARAMS = ("rows=8,rows=4", "rows=0", "cols=abc", "nope=1", "rows", "rows=1e3", "k_max=-1",
               "rows=99999999999999999999", "=4", "gemm.rows=4,rows=8", "rows=-0x8")
_PARAM_SETS = ("", "", "rows=3", "gemm.rows=4", "mm2im.rows=4", "rows=8,,cols=8", "rows=0x8", *_BAD_PARAMS)


def cli_cases(count, seed, folder):
    """``count`` random argument sets over every command (no new Verilator or Yosys builds)."""
    rng = np.random.default_rng(seed)
    files = _hostile_files(folder)
    cases = []
    pick = lambda options: options[rng.integers(len(options))]      # noqa: E731
    for i in range(count):
        command = pick(("layer", "layer", "layer", "run", "run", "run", "diff", "accelerators", "quantize",
                        "resources", "bench", "llm", "llm", "layer", "dse", "export", "replay", "prune"))
        argv, category = [command], command
        if command == "accelerators":
            if rng.random() < 0.8:
                argv += ["--json", _path_value(rng, files, folder, ".json")]
        elif command == "layer":
            op = pick(("gemm", "fc", "conv2d", "tconv", "gemm", "conv2d", "block_matmul"))
            argv.append(op)
            if op == "block_matmul":
                argv += ["--backend", "model", "--accel", pick(("bfp", "bfp", "bfp", "gemm")),
                         "--params", pick(("", "", "lanes=16", "lanes=0", "lanes=33", *_BAD_PARAMS)),
                         "--format", pick(("Q8_0", "Q4_0", "Q2_K", "Q3_K", "Q4_K", "Q6_K", "Q9_9", ""))]
                for flag, valid in (("--n", 8), ("--k", 256), ("--m", 2), ("--seed", 1)):
                    if rng.random() < 0.5:
                        argv += [flag, _integer_value(rng, valid)]
                if rng.random() < 0.2:
                    argv += ["--quantizer", pick(("ref", "avx2", "nope"))]
                if rng.random() < 0.3:
                    argv += ["--json", _path_value(rng, files, folder, ".json")]
                cases.append(Case(argv, " ".join(map(str, argv)), "layer block_matmul", timeout=120.0))
                continue
            backend = pick(("model", "model", "model", "verilator"))
            accel = "mm2im" if op == "tconv" and rng.random() < 0.8 else pick(("gemm", "gemm", "mm2im", "nope"))
            params = _SMALL_GEMM if backend == "verilator" and accel == "gemm" else pick(_PARAM_SETS)
            if backend == "verilator" and accel != "gemm":
                backend = "model"
            argv += ["--backend", backend, "--accel", accel, "--params", params]
            limit = 16 if backend == "verilator" else 40
            flags = {"gemm": ("--m", "--n", "--k"), "fc": ("--batch", "--k", "--n")}.get(
                op, ("--batch", "--height", "--width", "--in-channels", "--out-channels", "--kernel", "--stride",
                     "--dilation"))
            for flag in flags:
                if rng.random() < 0.6:
                    valid = int(rng.integers(1, 4 if flag in ("--kernel", "--stride", "--dilation", "--batch")
                                             else limit))
                    argv += [flag, _integer_value(rng, valid)]
            if op in ("conv2d", "tconv") and rng.random() < 0.3:
                argv += ["--padding", pick(("same", "VALID", "full"))]
            for flag, valid in (("--dma-bytes", 8), ("--dma-latency", 2), ("--seed", 3), ("--cycle-budget", 100000)):
                if rng.random() < 0.25:
                    argv += [flag, _integer_value(rng, valid)]
            if rng.random() < 0.15:
                argv += ["--trace", pick(("w.fst", "w.vcd", "w.txt", str(files["dir"]), str(files["under_file"])))]
            if rng.random() < 0.3:
                argv += ["--json", _path_value(rng, files, folder, ".json")]
            category = f"layer {op}"
        elif command == "run":
            model = pick(("digits_cnn", "digits_cnn", "transpose_mlp", "dcgan_tiny", str(files["text"]),
                          str(files["dir"]), "no_such_model", str(files["pickle"])))
            argv += [model, "--backend", "model", "--accel", pick(("gemm", "gemm", "mm2im,gemm", "gemm,gemm", ""))]
            if rng.random() < 0.3:
                argv += ["--params", pick(_PARAM_SETS)]
            if rng.random() < 0.15:
                argv += ["--frontend", "tvm"]
            if rng.random() < 0.3:
                argv += ["--input", pick(("zoo:digits_test_x", str(files["digits_x3"]), str(files["digits_empty"]),
                                          str(files["digits_float"]), str(files["text"]), str(files["pickle"]),
                                          str(files["empty"]), "zoo:nope"))]
            if rng.random() < 0.25:
                argv += ["--labels", pick(("zoo:digits_test_y", str(files["labels_float"]), str(files["labels_long"]),
                                           str(files["labels_4d"]), str(files["pickle"]), str(files["text"])))]
            for flag, valid in (("--limit", 3), ("--seed", 1), ("--clock-mhz", 100), ("--dma-bytes", 8),
                                ("--dma-latency", 1)):
                if rng.random() < 0.2:
                    argv += [flag, _integer_value(rng, valid)]
            if rng.random() < 0.2:
                argv += ["--compare", "ref"]
            if rng.random() < 0.2:
                argv += ["--cpu-kernels", pick(("ref", "optimized", "fast"))]
            for flag, suffix in (("--output", ".npy"), ("--json", ".json")):
                if rng.random() < 0.25:
                    argv += [flag, _path_value(rng, files, folder, suffix)]
            category = "run"
        elif command == "diff":
            argv += [pick(("digits_cnn", "digits_cnn", "transpose_mlp", str(files["text"]), "no_such_model")),
                     "--between", pick(("tflite-ref,model", "model,tflite-ref", "tflite-ref,tflite-ref", "nope", "",
                                        "tflite-ref"))]
            for flag, valid in (("--limit", 2), ("--seed", 1), ("--dma-bytes", 8)):
                if rng.random() < 0.25:
                    argv += [flag, _integer_value(rng, valid)]
            if rng.random() < 0.3:
                argv += ["--input", pick(("zoo:digits_test_x", str(files["digits_x3"]), str(files["digits_empty"]),
                                          str(files["text"]), str(files["pickle"])))]
            if rng.random() < 0.2:
                argv += ["--labels", pick(("zoo:digits_test_y", str(files["labels_long"]), str(files["labels_4d"]),
                                           str(files["text"])))]
            for flag, suffix in (("--plot", ".png"), ("--json", ".json")):
                if rng.random() < 0.25:
                    argv += [flag, _path_value(rng, files, folder, suffix)]
        elif command == "quantize":
            argv += [pick(("digits_cnn", "digits_cnn", "dcgan_tiny", str(files["text"]), "nope")),
                     "--method", pick(("pot", "apot", "msq", "int3")),
                     "--output", _path_value(rng, files, folder, ".tflite")]
        elif command == "prune":
            argv += [pick(("digits_cnn", "digits_cnn_pruned", "dcgan_tiny", str(files["text"]), "nope")),
                     "--sparsity", pick(("0.8", "0", "0.999", "1", "-0.1", "nan", "inf", "half"))]
            if rng.random() < 0.3:
                argv += ["--layer", pick(("5=0", "4=0.5", "3=0.5", "99=0.1", "5", "x=0.2", "5=1.5"))]
            if rng.random() < 0.3:
                argv += ["--granularity", pick(("channel", "layer", "block"))]
            argv += ["--output", _path_value(rng, files, folder, ".tflite")]
            if rng.random() < 0.3:
                argv += ["--json", _path_value(rng, files, folder, ".json")]
        elif command == "resources":
            # a valid design would start Yosys: always include one value that must be refused first
            poison = int(rng.integers(2))
            argv += ["--accel", pick(("gemm", "nope", "mm2im")),
                     "--params", pick(_BAD_PARAMS) if poison == 0 else _SMALL_GEMM]
            argv += ["--json", _path_value(rng, files, folder, ".json") if poison == 0 else
                     pick((str(files["dir"]), str(files["under_file"]), str(files["proc"]), ""))]
        elif command == "llm":
            # the model backend only (the RTL route would build the bfp design); the tiny model is cheap
            argv += [pick((str(files["gguf"]), str(files["gguf"]), str(files["gguf"]), str(files["gguf_cut"]),
                           str(files["text"]), str(files["dir"]), "no_such.gguf")),
                     "--backend", "model", "--accel", pick(("bfp", "bfp", "gemm", "nope")),
                     "--prompt", pick(("the capital of France is", "", "hi", "\u00fc\u00fc 12345 !!", "x" * 300))]
            if rng.random() < 0.3:
                argv += ["--params", pick(("lanes=16", "lanes=0", "lanes=99", *_BAD_PARAMS))]
            for flag, valid in (("--max-tokens", 2), ("--seed", 1), ("--top-k", 5), ("--dma-bytes", 8)):
                if rng.random() < 0.3:
                    argv += [flag, _integer_value(rng, valid)]
            for flag, values in (("--temperature", ("0", "0.8", "nan", "inf", "-1", "1e-300")),
                                 ("--top-p", ("1", "0.5", "0", "2", "nan")), ("--clock-mhz", ("100", "0", "nan")),
                                 ("--quantizer", ("ref", "avx2", "nope"))):
                if rng.random() < 0.2:
                    argv += [flag, pick(values)]
            if rng.random() < 0.3:
                argv += ["--json", _path_value(rng, files, folder, ".json")]
        elif command == "dse":
            # a valid search runs for minutes: every set carries one value that must be refused first
            argv += [pick(("digits_cnn", "digits_cnn", str(files["text"]), "no_such_model")),
                     "--accel", pick(("gemm", "potacc", "mm2im", "nope")),
                     "--board", pick(("pynq-z1", "kv260", "ecp5-85f"))]
            argv += pick((["--trials", pick(("0", "-1", "abc", "1e9"))],
                          ["--objectives", pick(("latency", "nope,dsp", "", "latency,latency", "latency,,dsp"))],
                          ["--space", pick(("rows=0..3", "nope=1", "rows=5..2", "rows=", "rows=1..2000000"))],
                          ["--min-clock-mhz", pick(("-1", "nan", "0"))], ["--workers", pick(("0", "-2", "x"))],
                          ["--yosys", "-1"], ["--confirm", "-1"], ["--dma-bytes", "0"],
                          ["--reuse", pick((str(files["text"]), str(files["dir"]), "missing.db"))],
                          ["--storage", pick((str(files["dir"]), str(files["under_file"]), str(files["text"])))],
                          ["--export", pick((str(files["dir"]), str(files["under_file"]), str(files["proc"])))],
                          ["--plot", pick((str(files["dir"]), str(files["under_file"])))]))
        elif command == "export":
            board = pick(("pynq-z1", "pynq-z2", "kv260", "ulx3s-85f", "nope"))
            argv += [_path_value(rng, files, folder, ""), "--board", board]
            if rng.random() < 0.4:
                argv += ["--params", pick(_PARAM_SETS)]
            if rng.random() < 0.3:
                argv += ["--accel", pick(("gemm", "mm2im", "nope"))]
            if rng.random() < 0.2:
                argv += ["--params-file", pick((str(files["json_list"]), str(files["text"]), "missing.json",
                                                str(files["dir"])))]
            if rng.random() < 0.2:
                argv += ["--model", pick(("digits_cnn", "no_such_model", str(files["text"])))]
            poison = pick((["--clock-mhz", pick(("0", "-5", "nan", "1e9"))], ["--baud", pick(("0", "-5", "x"))],
                           ["--params", pick(_BAD_PARAMS)], []))
            if board == "ulx3s-85f" and not poison:
                poison = ["--clock-mhz", "0"]       # a valid ECP5 export builds a bitstream (tens of minutes)
            argv += poison
        elif command == "replay":
            argv += [pick((str(files["text"]), str(Path(folder) / "no_trace"), str(files["dir"]), str(files["trace_bad"]),
                           str(files["pickle"]).removesuffix(".npy")))]
            if rng.random() < 0.4:
                argv += ["--accel", pick(("gemm", "nope", "mm2im"))]
            if rng.random() < 0.3:
                argv += ["--backend", pick(("verilator", "amaranth", "cocotb"))]
        else:
            name = pick(("sim-speed", "model", "utilization", "fidelity", "scalesim", "potacc", "tconv", "mutate",
                         "fuzz", "nope"))
            argv += [name]
            # benchmarks are long: every set carries one refused value, so they stop before any work
            poison = pick((["--size", pick(("0", "-1", "abc", str(2 ** 40)))],
                           ["--repeat", pick(("0", "-5", "x"))], ["--count", pick(("0", "-1", "1e9"))],
                           ["--dma-bytes", pick(("0", str(2 ** 32)))], ["--dma-latency", pick(("-1", str(2 ** 31)))],
                           ["--json", pick((str(files["dir"]), str(files["under_file"]), str(files["proc"])))]))
            argv += poison
            category = "bench"
        cases.append(Case(argv, " ".join(map(str, argv)), category, timeout=120.0))
    return cases


def summarize(outcomes):
    """Counts by outcome and by category (the fields hit), and the failures."""
    by_kind = Counter(o.kind for o in outcomes)
    by_category = {}
    for outcome in outcomes:
        row = by_category.setdefault(outcome.case.category or "-", Counter())
        row[outcome.kind] += 1
    failures = [{"argv": [str(a) for a in o.case.argv], "what": o.case.what, "kind": o.kind, "code": o.code,
                 "stderr_tail": o.stderr[-1500:]} for o in outcomes if o.failed]
    return {"cases": len(outcomes), "outcomes": {k: by_kind.get(k, 0) for k in OUTCOMES},
            "by_category": {k: dict(v) for k, v in sorted(by_category.items())},
            "seconds": sum(o.seconds for o in outcomes), "failures": failures}


def fuzz(models=200, cli=100, seed=0, workers=2, tvm=True, progress=None, keep=None):
    """Both campaigns; returns ``{"models": summary, "cli": summary}``.

    ``keep`` names a folder to keep the mutated models and scratch files in
    (default: a temporary one, removed afterwards).
    """
    import shutil
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="accelkit-fuzz-files-"))
    folder.mkdir(parents=True, exist_ok=True)
    _preload(tvm)
    try:
        result = {}
        if models:
            cases = model_cases(models, seed, folder, tvm=tvm)
            started = time.monotonic()
            result["models"] = summarize(run_cases(cases, workers, progress))
            result["models"]["wall_seconds"] = time.monotonic() - started
        if cli:
            cases = cli_cases(cli, seed + 1, folder)
            started = time.monotonic()
            previous = os.getcwd()
            os.chdir(folder)            # relative output names land in the scratch folder
            try:
                result["cli"] = summarize(run_cases(cases, workers, progress))
            finally:
                os.chdir(previous)
            result["cli"]["wall_seconds"] = time.monotonic() - started
        return result
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _preload(tvm):
    """Import what every child needs once, in the parent, so forked children start warm."""
    entry = _program()
    sys.modules[entry.__module__].build_parser()     # imports every command module
    from ..frontends.tflite import delegate, runner   # noqa: F401
    from ai_edge_litert import interpreter            # noqa: F401
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    if tvm:
        try:
            import tvm as _tvm                         # noqa: F401
            from ..frontends.tvm import runner as _tvm_runner   # noqa: F401
        except ImportError:
            pass


def dump(result, path):
    Path(path).write_text(json.dumps(result, indent=1))
