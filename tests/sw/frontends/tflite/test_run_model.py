"""Whole models through the LiteRT delegate on the RTL simulation (few shared runs), and bad input."""

import json

import numpy as np
import pytest

from accelkit.sw.commands import main as cli
from accelkit.sw.zoo import ZOO
from tflite_single_op import conv2d_model, float_fully_connected_model, fully_connected_model

DIGITS = str(ZOO / "models" / "digits_cnn.tflite")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One run of the held-out digits through the 8x8 GEMM RTL, compared with BUILTIN_REF."""
    path = tmp_path_factory.mktemp("digits") / "r.json"
    code = cli.main(["run", "digits_cnn", "--input", "zoo:digits_test_x", "--labels", "zoo:digits_test_y",
                     "--compare", "ref", "--json", str(path), "--output", str(path.with_name("out.npy"))])
    return code, json.loads(path.read_text()), path


def test_digits_accuracy_equals_cpu_and_is_bit_exact(digits_run):
    code, record, _ = digits_run
    assert code == 0
    assert record["compare"] == {"reference": "BUILTIN_REF", "output_bit_exact": True,
                                 "offloaded_layers_bit_exact": True}
    assert record["accuracy"]["accelerator"] == record["accuracy"]["cpu_reference"] > 0.9
    assert record["accuracy"]["samples"] == 360
    assert record["totals"]["share_of_macs_offloaded"] > 0.9


def test_digits_report_has_every_layer_with_provenance(digits_run, tmp_path):
    _, record, path = digits_run
    assert path.with_suffix(".png").stat().st_size > 1000
    for key in ("schema_version", "params", "dma", "tool_versions", "seed", "backend"):
        assert key in record
    layers = record["layers"]
    assert [layer["op"] for layer in layers] == ["CONV_2D"] * 3 + ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED",
                                                                   "SOFTMAX"]
    offloaded = [layer for layer in layers if layer["where"] == "accelerator"]
    assert all(layer["cycles"] > 0 and 0 < layer["utilization"] <= 1 and layer["bit_exact"] for layer in offloaded)
    assert record["totals"]["accelerator_cycles"] == sum(layer["cycles"] for layer in offloaded)
    assert all(layer["reason"] for layer in layers if layer["where"] == "cpu")
    assert np.load(path.with_name("out.npy")).shape == (360, 10)


def test_adjacent_delegated_layers_share_a_partition():
    from accelkit.accelerators.gemm import GemmAccelerator
    from accelkit.sw.execution.executors import open_executor
    from accelkit.sw.frontends.tflite.runner import DelegatedModel
    with open_executor(GemmAccelerator(), "verilator") as executor:
        model = DelegatedModel(DIGITS, executor)
        partitions = model.delegate.partitions
        assert [p.nodes for p in partitions] == [[0, 1, 2], [4, 5]]
        assert partitions[0].internal and partitions[1].internal   # tensors the delegate holds itself
        x = np.load(ZOO / "data" / "digits_test_x.npy")[:1]
        assert model.invoke(x)[0].shape == (1, 10)


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("content, message", [
    (b"not a model at all, just text", "not a TFLite"),
    (b"", "empty"),
])
def test_non_tflite_files_are_refused(tmp_path, capsys, content, message):
    assert cli.main(["run", _write(tmp_path, "bad.tflite", content)]) == 2
    assert message in capsys.readouterr().err


def test_truncated_model_is_refused(tmp_path, capsys):
    data = open(DIGITS, "rb").read()
    assert cli.main(["run", _write(tmp_path, "cut.tflite", data[:len(data) // 2])]) == 2
    err = capsys.readouterr().err
    assert "accelkit: error:" in err and "truncated" in err.lower()


def test_float_model_runs_on_the_cpu_and_says_so(tmp_path, capsys):
    model = float_fully_connected_model(weights=np.ones((3, 4)), bias=np.zeros(3))
    out = tmp_path / "out.npy"
    assert cli.main(["run", _write(tmp_path, "float.tflite", model), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "runs fully on the CPU" in printed and "FLOAT32, not int8" in printed
    assert np.load(out).shape == (1, 3)


def _fc(rng, weight_scales, k=20, n=6):
    return fully_connected_model(input_shape=(1, k), weights_int8=rng.integers(-127, 128, (n, k), dtype=np.int8),
                                 bias_int32=rng.integers(-500, 500, n, dtype=np.int32), input_scale=0.02,
                                 input_zero_point=3, weight_scales=weight_scales, output_scale=0.3,
                                 output_zero_point=-5)


def test_declined_layers_stay_on_the_cpu_with_the_reason(tmp_path, capsys):
    rng = np.random.default_rng(0)
    # Grouped convolution (input has twice the filter's channels): the front end declines it.
    grouped = conv2d_model(input_shape=(1, 6, 6, 4), filters_int8=rng.integers(-127, 128, (4, 3, 3, 2), dtype=np.int8),
                           bias_int32=np.zeros(4, np.int32), input_scale=0.05, input_zero_point=0,
                           filter_scales=np.full(4, 0.01), output_scale=0.1, output_zero_point=0)
    path = tmp_path / "grouped.json"
    assert cli.main(["run", _write(tmp_path, "grouped.tflite", grouped), "--compare", "ref",
                     "--json", str(path)]) == 0
    layer = json.loads(path.read_text())["layers"][0]
    assert layer["where"] == "cpu" and "grouped convolution" in layer["reason"]
    # K beyond the design's k_max: the accelerator's check function declines it.
    deep = _fc(rng, 0.01, k=40)
    path = tmp_path / "deep.json"
    assert cli.main(["run", _write(tmp_path, "deep.tflite", deep), "--params", "k_max=16,a_depth=16",
                     "--compare", "ref", "--json", str(path)]) == 0
    layer = json.loads(path.read_text())["layers"][0]
    assert layer["where"] == "cpu" and "exceeds k_max=16" in layer["reason"]
    assert "CPU: reduction depth K=40 exceeds k_max=16" in capsys.readouterr().out


def test_per_tensor_and_per_channel_fc_offloaded_bit_exact(tmp_path):
    rng = np.random.default_rng(1)
    for scales in (0.01, rng.uniform(0.005, 0.02, 6)):
        path = tmp_path / "fc.json"
        assert cli.main(["run", _write(tmp_path, "fc.tflite", _fc(rng, scales)), "--compare", "ref",
                         "--json", str(path)]) == 0
        record = json.loads(path.read_text())
        assert record["layers"][0]["where"] == "accelerator" and record["compare"]["output_bit_exact"]


@pytest.mark.parametrize("array, message", [
    (np.zeros((5, 8, 8, 2), np.int8), "has shape [5, 8, 8, 2], but the model expects [1, 8, 8, 1]"),
    (np.zeros((1, 8, 8, 1), np.float32), "has dtype float32, but the model expects int8"),
])
def test_wrong_input_shape_or_dtype(tmp_path, capsys, array, message):
    path = tmp_path / "x.npy"
    np.save(path, array)
    assert cli.main(["run", "digits_cnn", "--input", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_unknown_model_name(capsys):
    assert cli.main(["run", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert "neither a file nor a bundled model (" in err and "digits_cnn, " in err and "mobilenet_v2" in err


def test_mobilenet_v2_every_offloaded_layer_and_output_bit_exact(mobilenet_rtl_run):
    code, record = mobilenet_rtl_run
    assert code == 0
    offloaded = [layer for layer in record["layers"] if layer["where"] == "accelerator"]
    assert {layer["op"] for layer in offloaded} == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert len(offloaded) == 53 and all(layer["bit_exact"] for layer in offloaded)
    assert record["compare"]["output_bit_exact"]
    depthwise = [layer for layer in record["layers"] if layer["op"] == "DEPTHWISE_CONV_2D"]
    assert len(depthwise) == 17 and all(layer["where"] == "accelerator" for layer in depthwise)
    assert record["totals"]["share_of_macs_offloaded"] == 1.0
