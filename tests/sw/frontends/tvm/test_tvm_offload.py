"""TVM (Relax) BYOC offload: the importer's int8 chains matched, layers recovered, results vs the LiteRT path.

Semantics being tested: an offloaded layer computes TFLite's integer result
(the accelerator's fixed-point requantization, the same driver code the LiteRT
delegate calls), whereas the layers TVM keeps on the CPU run the importer's
float dequantize -> op -> quantize approximation, which can differ from LiteRT's
reference kernels by one LSB per layer (more after several layers).
"""

import numpy as np
import pytest

from accelkit.errors import ModelError, SimulationTimeout
from optional import need_tvm

need_tvm()

from accelkit.accelerators.gemm import GemmAccelerator          # noqa: E402
from accelkit.driver.device import DmaTiming                    # noqa: E402
from accelkit.driver.quant import activation_range              # noqa: E402
from accelkit.sw.execution.executors import DeviceExecutor, ModelExecutor  # noqa: E402
from accelkit.sw.reports.model_report import print_report, totals       # noqa: E402
from accelkit.sw.frontends.tflite.frontend import to_layer                # noqa: E402
from accelkit.sw.frontends.tflite.runner import DelegatedModel            # noqa: E402
from accelkit.sw.frontends.tvm.partition import get_patterns_with_prefix, partition_for_accelkit, relax_kinds  # noqa: E402
from accelkit.sw.frontends.tvm.runner import TvmModel, import_tflite, relax_ops  # noqa: E402
from accelkit.sw.zoo import ZOO                                 # noqa: E402

DIGITS = ZOO / "models" / "digits_cnn.tflite"
MOBILENET = ZOO / "models" / "mobilenet_v2.tflite"
CLOCK = 100e6


def _model_executor(**params):
    """Golden model + cost model: the same layer objects, no simulation (fast)."""
    return ModelExecutor(GemmAccelerator(**params), DmaTiming(8, 0))


@pytest.fixture(scope="module")
def digits_data():
    return np.load(ZOO / "data" / "digits_test_x.npy"), np.load(ZOO / "data" / "digits_test_y.npy")


def test_patterns_are_registered_per_accelerator_op():
    names = {str(p.name) for p in get_patterns_with_prefix("accelkit.gemm.")}
    assert names == {f"accelkit.gemm.{op}" for op in GemmAccelerator.kinds if op in relax_kinds()}


def test_importer_emits_the_quantized_chains_the_patterns_expect():
    mod, origins, model = import_tflite(DIGITS)
    ops = relax_ops(mod)
    conv = ["relax.dequantize", "relax.dequantize", "relax.nn.conv2d", "relax.dequantize", "relax.add",
            "relax.quantize", "relax.clip"]
    assert ops[:7] == conv
    fc = ["relax.dequantize", "relax.permute_dims", "relax.dequantize", "relax.matmul", "relax.dequantize",
          "relax.add", "relax.quantize"]
    start = ops.index("relax.reshape") + 1
    assert ops[start:start + 7] == fc
    # every conv2d / matmul call is attributed to its TFLite operator
    assert sorted((o.index, o.op) for o in origins.values()) == [
        (0, "CONV_2D"), (1, "CONV_2D"), (2, "CONV_2D"), (4, "FULLY_CONNECTED"), (5, "FULLY_CONNECTED")]


def test_recovered_layers_equal_the_tflite_front_ends():
    """Weights, bias, scales, zero points, stride, padding, activation: as the LiteRT path builds them."""
    with _model_executor() as executor:
        tvm_model = TvmModel(DIGITS, executor)
    by_origin = tvm_model.info.by_origin()
    assert sorted(by_origin) == [0, 1, 2, 4, 5]
    for index, entry in by_origin.items():
        op = tvm_model.model.ops[index]
        expected = to_layer(op, tvm_model.model.tensors)
        assert type(entry.layer) is type(expected)
        for name, value in vars(expected).items():
            got = getattr(entry.layer, name)
            if name == "activation":     # only the clamp survives the import (RELU/RELU6 may coincide)
                assert activation_range(got, expected.output_scale, expected.output_zero_point) == \
                    activation_range(value, expected.output_scale, expected.output_zero_point)
            elif isinstance(value, np.ndarray) or isinstance(got, np.ndarray):
                assert np.array_equal(np.asarray(got), np.asarray(value)), (index, name)
            else:
                assert got == value, (index, name)


def test_digits_offloaded_equals_litert_delegate_on_all_held_out_digits(digits_data):
    """360 digits: TVM with offload == LiteRT delegate, bit for bit; accuracy unchanged on every path."""
    xs, ys = digits_data
    with _model_executor() as executor:
        offloaded = TvmModel(DIGITS, executor)
        delegated = DelegatedModel(DIGITS, executor)
        cpu = TvmModel(DIGITS)
        assert [r.index for r in offloaded.offloaded] == [r.index for r in delegated.offloaded] == [0, 1, 2, 4, 5]
        outputs = {"tvm": [], "litert": [], "tvm_cpu": []}
        for x in xs:
            x = x[None]
            outputs["tvm"].append(offloaded.invoke(x)[0])
            outputs["litert"].append(delegated.invoke(x)[0])
            outputs["tvm_cpu"].append(cpu.invoke(x)[0])
    out = {k: np.concatenate(v).astype(np.int64) for k, v in outputs.items()}
    assert np.array_equal(out["tvm"], out["litert"])
    # TVM's own CPU lowering requantizes in float: measured up to 8 LSB apart at the softmax
    # output (a 1-LSB logit difference, amplified), on 5 of 3600 values; never the top-1.
    assert np.abs(out["tvm_cpu"] - out["tvm"]).max() <= 8
    accuracy = {k: float(np.mean(v.argmax(axis=1) == ys)) for k, v in out.items()}
    assert accuracy["tvm"] == accuracy["litert"] == accuracy["tvm_cpu"] > 0.9
    assert [r.cycles for r in offloaded.offloaded] == [r.cycles for r in delegated.offloaded]


def test_digits_on_rtl_matches_litert_delegate(device_pool, digits_data):
    """A few digits on the Verilator RTL: same outputs and same simulated cycles as the LiteRT delegate."""
    accelerator, device = device_pool({})
    executor = DeviceExecutor(accelerator, device)
    offloaded = TvmModel(DIGITS, executor)
    delegated = DelegatedModel(DIGITS, executor)
    try:
        for x in digits_data[0][:12]:
            assert np.array_equal(offloaded.invoke(x[None])[0], delegated.invoke(x[None])[0])
            assert [r.cycles for r in offloaded.offloaded] == [r.cycles for r in delegated.offloaded]
    finally:
        offloaded.close()
    records = [r.as_dict(CLOCK) for r in offloaded.records]
    summary = totals(records, CLOCK)
    assert summary["layers_offloaded"] == 5 and summary["share_of_macs_offloaded"] == 1.0
    assert all(r["cycles"] > 0 and 0 < r["utilization"] <= 1 for r in records if r["where"] == "accelerator")
    assert all(r["reason"] for r in records if r["where"] == "cpu")
    print_report("digits_cnn through TVM", records, summary)


def test_declined_layers_stay_on_the_cpu_with_the_accelerators_reason():
    """k_max=16: the check function (Accelerator.plan) declines K > 16; TVM keeps those on the CPU."""
    mod, origins, _ = import_tflite(DIGITS)
    partitioned, info = partition_for_accelkit(mod, "gemm", {"k_max": 16, "a_depth": 16}, origins=origins)
    ops = relax_ops(partitioned)
    assert sum(op.startswith("call_dps_packed:") for op in ops) == 1          # only the K=9 first conv
    assert ops.count("relax.nn.conv2d") == 2 and ops.count("relax.matmul") == 2
    assert {d.origin: d.reason for d in info.declined} == {
        1: "reduction depth K=144 exceeds k_max=16", 2: "reduction depth K=288 exceeds k_max=16",
        4: "reduction depth K=128 exceeds k_max=16", 5: "reduction depth K=64 exceeds k_max=16"}
    with _model_executor(k_max=16, a_depth=16) as executor:
        tvm_model = TvmModel(DIGITS, executor)
        delegated = DelegatedModel(DIGITS, executor)
        assert [(r.where, r.reason) for r in tvm_model.records] == [(r.where, r.reason) for r in delegated.records]
        x = np.load(ZOO / "data" / "digits_test_x.npy")[:1]
        assert tvm_model.invoke(x)[0].shape == (1, 10)


def test_mobilenet_v2_on_rtl(mobilenet_rtl_run):
    """The one TVM MobileNetV2 run on the Verilator RTL (about 5.3 M simulated cycles)."""
    import time
    from accelkit.sw.execution.executors import open_executor
    _, lite = mobilenet_rtl_run                     # the LiteRT delegate's run of the same design
    x = np.random.default_rng(0).integers(-128, 128, (1, 224, 224, 3), dtype=np.int8)
    with open_executor(GemmAccelerator(), "verilator") as executor:
        model = TvmModel(MOBILENET, executor)
        model.info.keep_inputs = True
        started = time.perf_counter()
        out = model.invoke(x)[0]
        run_seconds = time.perf_counter() - started
        model.close()
    cpu = TvmModel(MOBILENET)
    cpu_out = cpu.invoke(x)[0]
    print(f"MobileNetV2 via TVM: import {model.import_seconds:.2f} s, partition+compile {model.compile_seconds:.2f} s, "
          f"VM load {model.load_seconds:.2f} s, run {run_seconds:.2f} s (simulation {executor.run_seconds:.2f} s); "
          f"CPU-only compile {cpu.compile_seconds:.2f} s")
    lite_offloaded = {r["index"]: r for r in lite["layers"] if r["where"] == "accelerator"}
    assert sorted(r.index for r in model.offloaded) == sorted(lite_offloaded)
    assert len(lite_offloaded) == 53
    assert all(r.cycles == lite_offloaded[r.index]["cycles"] for r in model.offloaded)
    # DEPTHWISE_CONV_2D (a grouped conv2d in Relax) is offloaded on both paths
    assert all(r.where == "accelerator" for r in model.records if r.op == "DEPTHWISE_CONV_2D")
    # every offloaded layer is TFLite-exact on the input it was given ...
    for entry in model.info.offloaded:
        assert np.array_equal(entry.last_output.reshape(-1), entry.layer.reference(entry.last_input).reshape(-1))
    # ... but the CPU part (depthwise, ADD, MEAN, SOFTMAX) is TVM's float lowering, so the
    # outputs of a deep model drift from the no-offload build and from LiteRT (tens of LSB at
    # the softmax of this random-weight model; measured 16 vs the no-offload build).
    assert out.shape == cpu_out.shape == (1, 1000)
    summary = totals([r.as_dict(CLOCK) for r in model.records], CLOCK)
    assert summary["accelerator_cycles"] == lite["totals"]["accelerator_cycles"]
    assert summary["share_of_macs_offloaded"] > 0.9


def test_importer_refusal_is_a_model_error(capsys):
    with pytest.raises(ModelError) as caught:
        TvmModel(ZOO / "models" / "transpose_mlp.tflite")
    message = str(caught.value)
    assert "BATCH_MATMUL #6" in message and "Relax TFLite importer" in message and "LiteRT" in message


def test_not_a_model_is_a_model_error(tmp_path):
    path = tmp_path / "bad.tflite"
    path.write_bytes(b"not a model at all, just text")
    with pytest.raises(ModelError, match="not a TFLite"):
        TvmModel(path)


def test_wrong_input_is_a_model_error():
    model = TvmModel(DIGITS)
    with pytest.raises(ModelError, match=r"must be int8 \[1, 8, 8, 1\], not float32"):
        model.invoke(np.zeros((1, 8, 8, 1), np.float32))


class _FailingExecutor(ModelExecutor):
    def run(self, plan, *inputs, cycle_budget=None):
        raise SimulationTimeout("no done within 10 cycles", budget=10)


def test_an_offloaded_layers_exception_reaches_the_caller_unchanged():
    # TVM turns exceptions of packed functions into RuntimeError; the runner re-raises the original.
    executor = _FailingExecutor(GemmAccelerator(), DmaTiming(8, 0))
    model = TvmModel(DIGITS, executor)
    with pytest.raises(SimulationTimeout, match="no done within 10 cycles"):
        model.invoke(np.zeros((1, 8, 8, 1), np.int8))
    model.close()


def test_two_models_do_not_share_kernels():
    """Symbols are unique per partition, so two designs in one process each serve their own layers."""
    with _model_executor() as small, _model_executor(rows=4, cols=4) as other:
        a, b = TvmModel(DIGITS, small), TvmModel(DIGITS, other)
        assert not set(a.info.symbols) & set(b.info.symbols)
        x = np.load(ZOO / "data" / "digits_test_x.npy")[:1]
        assert np.array_equal(a.invoke(x)[0], b.invoke(x)[0])
        assert [r.cycles for r in a.offloaded] != [r.cycles for r in b.offloaded]   # different arrays


def _relax_conv_chain(share_input=False):
    """The importer's int8 conv chain written by hand (optionally leaking the dequantized input)."""
    from tvm import relax
    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 6, 6, 4), "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            xd = bb.emit(relax.op.dequantize(x, relax.const(0.05, "float32"), relax.const(3, "int32")))
            w = relax.const(rng.integers(-127, 128, (3, 3, 4, 8), dtype=np.int8))        # HWIO
            scales = relax.const(rng.uniform(0.005, 0.02, 8).astype("float32"))
            wd = bb.emit(relax.op.dequantize(w, scales, relax.const(0, "int32"), axis=3))
            y = bb.emit(relax.op.nn.conv2d(xd, wd, strides=[2, 2], padding=[0, 0, 1, 1], data_layout="NHWC",
                                           kernel_layout="HWIO"))
            bias = relax.const(rng.integers(-500, 500, 8, dtype=np.int32))
            y = bb.emit(relax.op.add(y, bb.emit(relax.op.dequantize(bias, relax.const(0.001, "float32"),
                                                                    relax.const(0, "int32")))))
            q = bb.emit(relax.op.quantize(y, relax.const(0.2, "float32"), relax.const(-5, "int32"), out_dtype="int8"))
            q = bb.emit(relax.op.clip(q, -5, 127))                   # RELU at zero point -5
            out = bb.emit_output(relax.Tuple([q, bb.emit(relax.op.add(xd, xd))]) if share_input else q)
        bb.emit_func_output(out)
    return bb.get()


def test_partition_api_on_a_hand_built_module_runs_tflite_exact():
    import tvm
    from tvm import relax
    partitioned, info = partition_for_accelkit(_relax_conv_chain(), "gemm", {"rows": 4, "cols": 4})
    assert relax_ops(partitioned) == [f"call_dps_packed:{info.symbols[0]}"]
    (entry,) = info.offloaded
    assert (entry.layer.padding, entry.layer.stride, entry.layer.activation) == ("SAME", (2, 2), "RELU")
    info.bind(_model_executor(rows=4, cols=4))
    try:
        vm = relax.VirtualMachine(tvm.compile(partitioned, "llvm"), tvm.cpu())
        x = np.random.default_rng(1).integers(-128, 128, (1, 6, 6, 4), dtype=np.int8)
        assert np.array_equal(vm["main"](tvm.runtime.tensor(x)).numpy(), entry.layer.reference(x))
    finally:
        info.unbind()


def test_a_chain_whose_intermediate_is_shared_is_declined():
    partitioned, info = partition_for_accelkit(_relax_conv_chain(share_input=True), "gemm")
    assert not info.offloaded and "relax.nn.conv2d" in relax_ops(partitioned)
    assert [d.reason for d in info.declined] == ["an intermediate value of the chain is also used outside it"]


def _single_op_cases():
    from tflite_single_op import conv2d_model, float_fully_connected_model, fully_connected_model
    rng = np.random.default_rng(7)

    def conv(cin=3, cout=5, k=3, groups_in=None, **options):
        return conv2d_model(input_shape=(1, 9, 8, groups_in or cin),
                            filters_int8=rng.integers(-127, 128, (cout, k, k, cin), dtype=np.int8),
                            bias_int32=rng.integers(-800, 800, cout, dtype=np.int32), input_scale=0.04,
                            input_zero_point=-3, filter_scales=rng.uniform(0.004, 0.02, cout), output_scale=0.15,
                            output_zero_point=4, **options)

    def fc(scales, bias=True, **options):
        return fully_connected_model(input_shape=(2, 24), weights_int8=rng.integers(-127, 128, (7, 24), dtype=np.int8),
                                     bias_int32=rng.integers(-500, 500, 7, dtype=np.int32) if bias else None,
                                     input_scale=0.03, input_zero_point=5, weight_scales=scales, output_scale=0.2,
                                     output_zero_point=-6, **options)
    def depthwise(channels=4, **shape):
        from accelkit.driver.kinds.depthwise_conv2d import KIND
        from accelkit.sw.frontends.tflite.kind_models import depthwise_conv2d_model
        layer, (x,) = KIND.random(rng, height=9, width=8, channels=channels, **shape)
        return depthwise_conv2d_model(layer, x.shape)

    return {
        "depthwise SAME": (depthwise(), "accelerator"),
        "depthwise multiplier 2 VALID stride 2": (depthwise(multiplier=2, padding="VALID", stride=2), "accelerator"),
        "depthwise one channel multiplier 3 dilation 2 RELU6": (
            depthwise(channels=1, multiplier=3, dilation=2, activation="RELU6"), "accelerator"),
        "conv SAME": (conv(), "accelerator"),
        "conv VALID stride 2": (conv(padding="VALID", stride=(2, 2)), "accelerator"),
        "conv SAME stride 2x1 dilation 2": (conv(stride=(2, 1), dilation=(2, 2)), "accelerator"),
        "conv 1x1 RELU6": (conv(k=1, activation="RELU6"), "accelerator"),
        "conv RELU_N1_TO_1": (conv(activation="RELU_N1_TO_1"), "accelerator"),
        "conv grouped": (conv(cin=2, cout=4, groups_in=4), "grouped convolution"),
        "fc per-tensor RELU": (fc(0.01, activation="RELU"), "accelerator"),
        "fc per-channel": (fc(rng.uniform(0.005, 0.02, 7)), "accelerator"),
        "fc no bias": (fc(0.01, bias=False), "accelerator"),
        # The support builder writes float tensors with empty (not absent) quantization vectors, which
        # TVM 0.27's importer indexes unguarded: a ModelError naming the importer, where LiteRT runs it.
        "fc float": (float_fully_connected_model(weights=np.ones((3, 4)), bias=np.zeros(3)), ModelError),
    }


@pytest.mark.parametrize("case", list(_single_op_cases()))
def test_single_op_models_offload_as_the_litert_path_does(tmp_path, case):
    data, expected = _single_op_cases()[case]
    path = tmp_path / "op.tflite"
    path.write_bytes(data)
    with _model_executor() as executor:
        if expected is ModelError:
            with pytest.raises(ModelError, match="Relax TFLite importer cannot import op.tflite"):
                TvmModel(path, executor)
            return
        tvm_model, delegated = TvmModel(path, executor), DelegatedModel(str(path), executor)
        (record,) = tvm_model.records
        if expected == "accelerator":
            assert record.where == delegated.records[0].where == "accelerator"
        else:
            assert record.where == "cpu" and expected in record.reason
        rng = np.random.default_rng(3)
        for _ in range(3):
            x = rng.integers(-128, 128, tuple(tvm_model.input_detail["shape"]), dtype=np.int8)
            got, want = tvm_model.invoke(x)[0].astype(np.int64), delegated.invoke(x)[0]
            if record.where == "accelerator":
                assert np.array_equal(got, want)          # TFLite's integer result, bit for bit
            else:
                assert np.abs(got - want).max() <= 1      # TVM's float lowering: within one LSB
