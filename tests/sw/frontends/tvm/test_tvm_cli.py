"""`accelkit run --frontend tvm`: the TVM path behind the same command, report and JSON as the LiteRT path."""

import json

import pytest

from accelkit.sw.commands import main as cli
from optional import need_tvm

need_tvm()



def test_digits_through_tvm_on_rtl(tmp_path):
    path = tmp_path / "digits.json"
    code = cli.main(["run", "digits_cnn", "--frontend", "tvm", "--input", "zoo:digits_test_x", "--labels",
                     "zoo:digits_test_y", "--limit", "40", "--compare", "ref", "--json", str(path)])
    record = json.loads(path.read_text())
    assert code == 0
    assert record["frontend"] == "tvm" and record["tvm"]["version"] == "0.27.0.post1"
    assert record["compare"]["offloaded_layers_bit_exact"] and record["compare"]["output_bit_exact"]
    assert record["accuracy"]["accelerator"] == record["accuracy"]["cpu_reference"]
    assert [layer["index"] for layer in record["layers"] if layer["where"] == "accelerator"] == [0, 1, 2, 4, 5]


def test_mobilenet_through_tvm_does_not_fail_on_float_cpu_layers(tmp_path, capsys):
    """TVM's CPU layers are float: the output differs from BUILTIN_REF, which is reported, not an error."""
    path = tmp_path / "mnv2.json"
    assert cli.main(["run", "mobilenet_v2", "--frontend", "tvm", "--backend", "model", "--compare", "ref",
                     "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["compare"]["offloaded_layers_bit_exact"] and record["totals"]["layers_offloaded"] == 53
    assert record["compare"]["output_max_difference"] == 0 or "TVM runs the CPU layers in float" in capsys.readouterr().out


def test_importer_refusal_is_an_error_message(capsys):
    assert cli.main(["run", "transpose_mlp", "--frontend", "tvm"]) == 2
    err = capsys.readouterr().err
    assert "accelkit: error:" in err and "quantized BATCH_MATMUL" in err and "Traceback" not in err


def test_flexarray_batch_matmul_model_through_tvm_is_refused_with_a_message(capsys):
    """flexarray offloads BATCH_MATMUL on the LiteRT path; TVM's importer cannot import it: a clear error."""
    assert cli.main(["run", "transformer_block", "--frontend", "tvm", "--accel", "flexarray", "--backend",
                     "model"]) == 2
    err = capsys.readouterr().err
    assert "accelkit: error:" in err and "quantized BATCH_MATMUL" in err and "LiteRT delegate" in err
    assert "Traceback" not in err


def test_potacc_through_tvm_takes_pot_layers_and_declines_int8(tmp_path):
    from accelkit.sw.quantization.pot import quantize_model
    from accelkit.sw.zoo import ZOO
    pot = tmp_path / "digits_apot.tflite"
    quantize_model(ZOO / "models" / "digits_cnn.tflite", pot, "apot")
    path = tmp_path / "apot.json"
    assert cli.main(["run", str(pot), "--frontend", "tvm", "--accel", "potacc", "--input", "zoo:digits_test_x",
                     "--limit", "10", "--compare", "ref", "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["params"]["terms"] == 2
    assert record["compare"]["offloaded_layers_bit_exact"] and record["totals"]["layers_offloaded"] == 5
    assert cli.main(["run", "digits_cnn", "--frontend", "tvm", "--accel", "potacc", "--backend", "model",
                     "--limit", "1", "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["totals"]["layers_offloaded"] == 0
    assert any("power-of-two grid" in (layer.get("reason") or "") for layer in record["layers"])


@pytest.mark.parametrize("model, expected", [
    ("dcgan_tiny", {"FULLY_CONNECTED": "gemm", "TRANSPOSE_CONV": "mm2im"}),
    ("digits_cnn", {"CONV_2D": "gemm", "FULLY_CONNECTED": "gemm"}),          # potacc declines int8 weights
    ("digits_cnn_pot", {"CONV_2D": "potacc", "FULLY_CONNECTED": "potacc"}),
])
def test_accelerator_list_through_tvm_first_claimer_wins(tmp_path, model, expected):
    accel = "mm2im,gemm" if model == "dcgan_tiny" else "potacc,gemm"
    path = tmp_path / "r.json"
    assert cli.main(["run", model, "--frontend", "tvm", "--accel", accel, "--backend", "model",
                     "--compare", "ref", "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    claimed = {(layer["op"], layer.get("accelerator")) for layer in record["layers"] if layer["op"] in expected}
    assert claimed == set(expected.items())
    assert record["compare"]["offloaded_layers_bit_exact"]
