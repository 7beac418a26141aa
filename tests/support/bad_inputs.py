"""The cases of issue 13 (bad input that crashed, hung, lied or raised a traceback), as data.

Each case is an ``accelkit`` command line with ``{tmp}`` and ``{small}``
placeholders, the outcome it must have now and a pattern its message must
match. ``make_files`` writes the files they point at. The regression test runs
them; ``scripts``-style callers can run the same list against another build
of accelkit to compare outcomes (the before/after table of the issue).
"""

from pathlib import Path

import numpy as np
import tflite

from accelkit.sw.frontends.tflite.single_op import Tensor, build_model
from accelkit.sw.llm.tiny import TINY_PATH
from tests_params import SMALL_PARAMS

SMALL = ",".join(f"{k}={v}" for k, v in SMALL_PARAMS.items())
GEMM8 = "layer gemm --m 8 --n 8 --k 16"
DIGITS = "run digits_cnn --backend model"
LLM = f"llm {TINY_PATH} --prompt hi --max-tokens 2 --backend model --accel bfp"
SMALL_LAYER = f"layer gemm --m 8 --n 8 --k 16 --params {SMALL}"

# (id, command, expected outcome, pattern in stderr)
CASES = [
    # crashes and hangs
    ("dma-bytes-2^32", f"{GEMM8} --dma-bytes 4294967296", "clean error", r"DMA bytes per cycle must be in 1\.\.4,096"),
    ("dma-latency-2^32+5", f"{GEMM8} --dma-latency 4294967301", "clean error", r"DMA latency \(cycles\) must be in 0\.\.65,536"),
    ("dma-latency-2^31", f"{GEMM8} --dma-latency 2147483648", "clean error", r"DMA latency \(cycles\) must be in"),
    ("dma-latency-1e9", f"{GEMM8} --dma-latency 1000000000", "clean error", r"not 1,000,000,000"),
    ("dma-latency-1e9-amaranth", f"{GEMM8} --dma-latency 1000000000 --backend amaranth", "clean error",
     r"not 1,000,000,000"),
    # a flat 1000-way input: the sum of exponentials overflows the reference kernel's division (it aborts)
    ("softmax-flat", "run {tmp}/softmax.tflite --input {tmp}/flat.npy", "clean error", r"killed by SIGABRT.*SOFTMAX"),
    ("softmax-flat-compare", "run {tmp}/softmax.tflite --input {tmp}/flat.npy --compare ref", "clean error",
     r"killed by SIGABRT"),
    ("softmax-flat-model", "run {tmp}/softmax.tflite --input {tmp}/flat.npy --backend model", "clean error",
     r"killed by SIGABRT"),
    ("softmax-flat-tvm", "run {tmp}/softmax.tflite --input {tmp}/flat.npy --backend model --frontend tvm "
     "--compare ref", "clean error", r"killed by SIGABRT"),
    ("softmax-flat-optimized", "run {tmp}/softmax.tflite --input {tmp}/flat.npy --backend model "
     "--cpu-kernels optimized", "success", ""),
    ("softmax-peaked", "run {tmp}/softmax.tflite --input {tmp}/peaked.npy --backend model --compare ref",
     "success", ""),
    # a softmax input scale near 1e-9: the reference kernel's Prepare aborts whatever the input
    ("softmax-tiny-scale", "run {tmp}/softmax_tiny.tflite", "clean error",
     r"operator 0 \(SOFTMAX\) has beta x input scale = 1e-09, at most 2\^-26"),
    ("softmax-tiny-scale-tvm", "run {tmp}/softmax_tiny.tflite --backend model --frontend tvm --compare ref",
     "clean error", r"at most 2\^-26"),
    # a per-channel input: LiteRT hands SOFTMAX a per-tensor scale of 0 and its Prepare aborts
    ("softmax-per-channel", "run {tmp}/softmax_per_channel.tflite --backend model --compare ref", "clean error",
     r"operator 0 \(SOFTMAX\) .*quantized per channel, 2 scales"),
    ("softmax-tiny-scale-optimized", "run {tmp}/softmax_tiny.tflite --backend model --cpu-kernels optimized",
     "success", ""),
    # silently wrong
    ("labels-5-for-3", f"{DIGITS} --input {{tmp}}/x3.npy --labels {{tmp}}/labels5.npy", "clean error",
     r"5 labels for 3 input sample"),
    ("labels-float", f"{DIGITS} --input {{tmp}}/x3.npy --labels {{tmp}}/labels_float.npy", "clean error",
     r"are float64; integer class indices"),
    ("labels-4d", f"{DIGITS} --input {{tmp}}/x3.npy --labels {{tmp}}/labels_4d.npy", "clean error",
     r"have shape \[3, 1, 1, 1\]"),
    ("output-dir", f"{DIGITS} --output {{tmp}}/folder", "clean error", r"--output path .* is a directory"),
    ("trace-unwritable", f"{SMALL_LAYER} --trace {{tmp}}/notes.txt/wave.fst", "clean error",
     r"--trace path .* cannot be written: .*notes.txt' is a file, not a folder"),
    ("trace-model-backend", f"{GEMM8} --backend model --trace {{tmp}}/wave.fst", "clean error",
     r"--trace needs a simulator"),
    ("clock-negative", f"{DIGITS} --clock-mhz -1", "clean error", r"clock \(MHz\) must be positive"),
    ("clock-nan", f"{DIGITS} --clock-mhz nan", "clean error", r"clock \(MHz\) must be positive"),
    ("conv2d-dilation-0", "layer conv2d --backend model --dilation 0", "clean error",
     r"--dilation: layer size must be in 1\.\.65,536, not 0"),
    ("tconv-kernel-0", "layer tconv --accel mm2im --backend model --kernel 0", "clean error",
     r"--kernel: layer size must be in 1"),
    ("cycle-budget-0", f"{GEMM8} --backend model --cycle-budget 0", "clean error", r"cycle budget must be in 1\.\."),
    ("cycle-budget-negative", f"{GEMM8} --backend model --cycle-budget -1", "clean error", r"cycle budget must be in"),
    ("limit-0", f"{DIGITS} --input zoo:digits_test_x --limit 0", "clean error", r"sample limit must be in 1\.\."),
    ("limit-negative", f"{DIGITS} --input zoo:digits_test_x --limit -1", "clean error", r"sample limit must be in"),
    ("cycle-budget-2^64", f"{GEMM8} --cycle-budget 18446744073709551616", "clean error",
     r"cycle budget must be in 1\.\.9,223,372,036,854,775,807"),
    ("params-twice", f"{GEMM8} --backend model --params rows=8,rows=4", "clean error",
     r"parameter rows is given twice \(rows=8 and rows=4\)"),
    ("params-name-not-a-choice", f"{GEMM8} --backend model --params rows=eight", "clean error",
     r"rows must be an integer, not 'eight'"),
    ("flexarray-rn-unknown", "layer gemm --accel flexarray --backend model --params rn=fanout", "clean error",
     r"rn must be one of fan, seq, art \(or 0\.\.2\), not 'fanout'"),
    ("flexarray-tree-too-wide", "layer gemm --accel flexarray --backend model --params dn=tree,multipliers=8,dn_bw=16,"
     "rn_bw=4", "clean error", r"dn=tree needs dn_bw \(16\) <= multipliers \(8\)"),
    # tracebacks
    ("model-stride-0", "run {tmp}/stride0.tflite --backend model", "clean error",
     r"operator 0 \(CONV_2D\): stride \(1, 0\); each must be a positive integer"),
    ("model-stride-0-tvm", "run {tmp}/stride0.tflite --backend model --frontend tvm", "clean error",
     r"stride \(1, 0\)"),
    # an operator's output pointed at a weight buffer: LiteRT wrote into read-only memory (SIGSEGV)
    ("model-output-constant", "run {tmp}/output_constant.tflite --backend model", "clean error",
     r"operator 2 \(CONV_2D\) writes tensor \d+ .*holds constant data"),
    ("model-output-constant-tvm", "run {tmp}/output_constant.tflite --backend model --frontend tvm", "clean error",
     r"holds constant data"),
    ("empty-batch", f"{DIGITS} --input {{tmp}}/x0.npy", "clean error", r"holds no sample"),
    ("empty-batch-tvm", f"{DIGITS} --frontend tvm --input {{tmp}}/x0.npy", "clean error", r"holds no sample"),
    ("nan-input-compare", "run {tmp}/float_fc.tflite --backend model --compare ref --input {tmp}/nan.npy",
     "clean error", r"holds nan at index \[0, 0\]; inputs must be finite"),
    ("labels-text", f"{DIGITS} --input {{tmp}}/x3.npy --labels {{tmp}}/notes.txt", "clean error",
     r"labels .*notes.txt is not a \.npy file"),
    ("labels-pickle", f"{DIGITS} --input {{tmp}}/x3.npy --labels {{tmp}}/pickled.npy", "clean error",
     r"holds Python objects"),
    ("clock-0", f"{DIGITS} --clock-mhz 0", "clean error", r"clock \(MHz\) must be positive"),
    ("gemm-k-0", "layer gemm --backend model --k 0", "clean error", r"--k: layer size must be in 1"),
    ("gemm-m-negative", "layer gemm --backend model --m -1", "clean error", r"--m: layer size must be in 1"),
    ("kernel-negative", "layer conv2d --backend model --kernel -3", "clean error", r"--kernel: layer size"),
    ("conv2d-stride-0", "layer conv2d --backend model --stride 0", "clean error", r"--stride: layer size"),
    ("tconv-without-mm2im", "layer tconv --backend model", "clean error",
     r"gemm does not run tconv layers; it runs"),
    ("json-unwritable", f"{SMALL_LAYER} --json {{tmp}}/notes.txt/r.json", "clean error", r"--json path .* cannot be written: .* is a file, not a folder"),
    ("json-dir", f"{SMALL_LAYER} --json {{tmp}}/folder", "clean error", r"--json path .* is a directory"),
    ("output-unwritable", f"{DIGITS} --output {{tmp}}/notes.txt/o.npy", "clean error", r"--output path .* cannot be written"),
    ("quantize-output-dir", "quantize digits_cnn --method pot --output {tmp}/folder", "clean error",
     r"--output path .* is a directory"),
    # misleading messages
    ("input-text", f"{DIGITS} --input {{tmp}}/notes.txt", "clean error", r"is not a \.npy file"),
    ("stride-negative", "layer conv2d --backend model --stride -1", "clean error", r"--stride: layer size must be in 1"),
    ("model-huge-shape", "run {tmp}/huge.tflite --backend model", "clean error",
     r"bytes, more than the 2,147,483,647 a tensor may hold"),
    ("params-own-prefix", f"{DIGITS} --params gemm.rows=4", "success", ""),
    # found by the CLI campaign once it covered llm, dse and export
    ("llm-temperature-nan", f"{LLM} --temperature nan", "clean error", r"temperature must be a finite number"),
    ("llm-top-k-negative", f"{LLM} --temperature 1 --top-k -3", "clean error", r"top_k must be an integer >= 0"),
    ("dse-storage-under-file", "dse digits_cnn --accel gemm --board pynq-z1 --storage {tmp}/notes.txt/d.db",
     "clean error", r"--storage path .* cannot be written: .* is a file, not a folder"),
    ("dse-storage-not-sqlite", "dse digits_cnn --accel gemm --board pynq-z1 --storage {tmp}/notes.txt", "clean error",
     r"--storage .* is not an SQLite database"),
    ("export-out-under-file", "export {tmp}/notes.txt/project --board pynq-z1", "clean error",
     r"OUT/ .* cannot be written"),
    ("layer-quantizer-lowercase", "layer block_matmul --accel bfp --backend model --format q4_0 --k 256 --n 8 --m 2 "
     "--quantizer avx2", "success", ""),
    ("export-out-is-file", "export {tmp}/notes.txt --board pynq-z1", "clean error", r"OUT/ .* is a file"),
    # accelkit prune
    ("prune-sparsity-1", "prune digits_cnn --sparsity 1 --output {tmp}/p.tflite", "clean error",
     r"sparsity must be in \[0, 1\)"),
    ("prune-sparsity-nan", "prune digits_cnn --sparsity nan --output {tmp}/p.tflite", "clean error",
     r"sparsity must be in \[0, 1\)"),
    ("prune-not-tflite", "prune {tmp}/notes.txt --sparsity 0.5 --output {tmp}/p.tflite", "clean error",
     r"not a TFLite model"),
    ("prune-missing", "prune {tmp}/missing.tflite --sparsity 0.5 --output {tmp}/p.tflite", "clean error",
     r"neither a file nor a bundled model"),
    ("prune-output-dir", "prune digits_cnn --sparsity 0.5 --output {tmp}/folder", "clean error",
     r"--output path .* is a directory"),
]


def softmax_model(scale, classes, rows=1):
    """An int8 SOFTMAX over ``classes`` inputs of the given scale (flat when the scale is tiny).

    ``scale`` may be a list (one per row): an input quantized per channel.
    """
    scales = scale if isinstance(scale, list) else [scale]
    def options(builder):
        tflite.SoftmaxOptionsStart(builder)
        tflite.SoftmaxOptionsAddBeta(builder, 1.0)
        return tflite.SoftmaxOptionsEnd(builder)
    tensors = [Tensor("x", [rows, classes], tflite.TensorType.INT8, scales, [0] * len(scales)),
               Tensor("y", [rows, classes], tflite.TensorType.INT8, [1 / 256], [-128])]
    return build_model(tensors=tensors, opcode=tflite.BuiltinOperator.SOFTMAX, op_version=2,
                       options_type=tflite.BuiltinOptions.SoftmaxOptions, build_options=options,
                       inputs=[0], outputs=[1])


def make_files(folder):
    """Write every file the cases refer to into ``folder``."""
    from accelkit.sw.verification.fuzz import field_value, model_fields, set_field
    from accelkit.sw.zoo import resolve_array, resolve_model
    from tflite_single_op import float_fully_connected_model
    folder = Path(folder)
    (folder / "folder").mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("not an array\n")
    np.save(folder / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    x = np.load(resolve_array("zoo:digits_test_x"))
    np.save(folder / "x3.npy", x[:3])
    np.save(folder / "x0.npy", x[:0])
    np.save(folder / "labels5.npy", np.arange(5))
    np.save(folder / "labels_float.npy", np.linspace(0, 2, 3))
    np.save(folder / "labels_4d.npy", np.zeros((3, 1, 1, 1), np.int64))
    np.save(folder / "nan.npy", np.full((1, 4), np.nan, np.float32))
    (folder / "softmax.tflite").write_bytes(softmax_model(0.1, 1000))
    (folder / "softmax_tiny.tflite").write_bytes(softmax_model(1e-9, 1000))
    (folder / "softmax_per_channel.tflite").write_bytes(softmax_model([0.1, 0.2], 10, rows=2))
    np.save(folder / "flat.npy", np.zeros((1, 1000), np.int8))
    peaked = np.zeros((1, 1000), np.int8)
    peaked[0, 7] = 100
    np.save(folder / "peaked.npy", peaked)
    (folder / "float_fc.tflite").write_bytes(float_fully_connected_model(weights=np.eye(3, 4), bias=np.zeros(3)))
    digits = resolve_model("digits_cnn").read_bytes()
    fields = {f.name: f for f in model_fields(digits)}
    (folder / "stride0.tflite").write_bytes(set_field(digits, fields["operators[0].options.stride_w"], 0))
    from accelkit.sw.frontends.tflite.model import read_model
    first = read_model(digits).inputs[0]
    huge = set_field(digits, fields[f"tensors[{first}].shape[1]"], 1 << 20)
    huge = set_field(huge, fields[f"tensors[{first}].shape[2]"], 1 << 20)
    (folder / "huge.tflite").write_bytes(huge)
    # the third convolution's 128-byte output pointed at a 128-byte constant (the fuzz campaign's mutant 1827
    # did this to a MEAN): the shapes agree, so only the constant-output check catches it
    model = read_model(digits)
    conv = model.ops[2]
    output = model.tensors[conv.outputs[0]]
    size = output.dtype.itemsize * int(np.prod(output.shape))
    same_size = next(t.index for t in model.tensors if t.is_constant and t.data.nbytes == size)
    (folder / "output_constant.tflite").write_bytes(set_field(
        digits, fields[f"tensors[{output.index}].buffer"], field_value(digits, fields[f"tensors[{same_size}].buffer"])))
    return folder


def argv(command, folder):
    return command.format(tmp=folder, small=SMALL).split()
