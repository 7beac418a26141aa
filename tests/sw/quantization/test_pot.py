"""Power-of-two weight quantization: weights on the grid, a model LiteRT still runs, exact on the GEMM RTL."""

import json

import numpy as np
import pytest

from accelkit.sw.commands import main as cli
from accelkit.sw.quantization.pot import encode, pot_levels, project, quantize_model
from accelkit.sw.frontends.tflite.model import read_model
from accelkit.sw.zoo import ZOO

DIGITS = ZOO / "models" / "digits_cnn.tflite"


def test_grids():
    assert pot_levels("pot").tolist() == [0, 1, 2, 4, 8, 16, 32, 64]
    apot = pot_levels("apot")
    assert 96 in apot and 80 in apot and 7 not in apot and apot.max() == 96
    assert project(np.array([-100, -3, 0, 5, 47, 50]), pot_levels("pot")).tolist() == [-64, -2, 0, 4, 32, 64]


def test_encoding_nibbles():
    # 0 -> 0; -4 = sign 1, e 2 -> 0b1011; 3 = 2 + 1 -> (e 1, e 0) -> 0x2, 0x1
    assert encode(np.array([0, -4]), 1).tolist() == [0xB0]
    assert encode(np.array([3]), 2).tolist() == [0x12]
    with pytest.raises(Exception, match="not on the 2-term power-of-two grid"):
        encode(np.array([7]), 2)


@pytest.mark.parametrize("method", ["pot", "apot", "msq"])
def test_quantized_model_is_on_the_grid_and_bit_exact_on_rtl(tmp_path, method):
    out = tmp_path / f"{method}.tflite"
    side = quantize_model(DIGITS, out, method)
    model = read_model(out)
    levels = set(pot_levels(method).tolist())
    for layer in side["layers"]:
        op = model.ops[layer["index"]]
        weights = model.tensors[op.inputs[1]].data.reshape(layer["channels"], -1).astype(int)
        uniform = set(side["encodings"][str(layer["index"])]["uniform_rows"]) if method == "msq" else set()
        for row, values in enumerate(weights):
            if row not in uniform:
                assert set(np.abs(values).tolist()) <= levels
        assert layer["pot_channels"] == layer["channels"] - len(uniform)
    if method == "msq":
        assert any(side["encodings"][str(layer["index"])]["uniform_rows"] for layer in side["layers"])
    record = tmp_path / "r.json"
    assert cli.main(["run", str(out), "--input", "zoo:digits_test_x", "--labels", "zoo:digits_test_y",
                     "--limit", "120", "--compare", "ref", "--json", str(record)]) == 0
    result = json.loads(record.read_text())
    assert result["compare"]["output_bit_exact"] and result["compare"]["offloaded_layers_bit_exact"]
    assert result["accuracy"]["accelerator"] == result["accuracy"]["cpu_reference"] > 0.9
    # the same model on the shift-PE accelerator, its design taken from the side file
    assert cli.main(["run", str(out), "--accel", "potacc", "--input", "zoo:digits_test_x", "--limit", "40",
                     "--compare", "ref", "--json", str(record)]) == 0
    result = json.loads(record.read_text())
    assert result["accelerator"] == "potacc" and result["params"]["terms"] == (1 if method == "pot" else 2)
    assert result["params"]["mult_cols"] == (3 if method == "msq" else 0)
    gemm_layers = [r for r in result["layers"] if r["op"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert all(r["where"] == "accelerator" for r in gemm_layers)
    assert result["compare"]["output_bit_exact"] and result["compare"]["offloaded_layers_bit_exact"]


def test_potacc_declines_an_int8_model_with_reasons(tmp_path):
    record = tmp_path / "r.json"
    assert cli.main(["run", str(DIGITS), "--accel", "potacc", "--limit", "2", "--json", str(record)]) == 0
    layers = json.loads(record.read_text())["layers"]
    assert all(r["where"] == "cpu" for r in layers)
    assert any("off the 1-term power-of-two grid" in (r.get("reason") or "") for r in layers)


def test_energy_model_adds_compute_and_movement():
    from accelkit.sw.benchmarks.potacc_shift_pe import ENERGY_PJ, energy_pj
    from accelkit.sw.hardware.synthesis import ResourceEstimate
    resources = ResourceEstimate("xc7", lut=1000, ff=0, dsp=2, bram36=1.0, cells={}, mul_cells_before_mapping=0)
    compute, movement = energy_pj(resources, cycles=10, bytes_moved=4)
    assert compute == pytest.approx(10 * (1000 * ENERGY_PJ["lut"] + 2 * ENERGY_PJ["dsp"] + ENERGY_PJ["bram36"]))
    assert movement == pytest.approx(4 * ENERGY_PJ["dram_byte"])


def test_float_model_is_refused(tmp_path):
    from tflite_single_op import float_fully_connected_model
    path = tmp_path / "f.tflite"
    path.write_bytes(float_fully_connected_model(weights=np.ones((2, 3)), bias=np.zeros(2)))
    assert cli.main(["quantize", str(path), "--method", "pot", "--output", str(tmp_path / "o.tflite")]) == 2


def test_bench_potacc_compares_designs_on_a_tiny_array(tmp_path):
    """The whole comparison on 2x3 arrays and four digits: RTL, Yosys, energy, bit-exactness."""
    path = tmp_path / "potacc.json"
    assert cli.main(["bench", "potacc", "--params", "rows=2,cols=3,k_max=512,a_depth=512", "--samples", "4",
                     "--json", str(path)]) == 0
    results = {(r["method"], r["accelerator"]): r for r in json.loads(path.read_text())["results"]}
    assert len(results) == 6 and all(r["bit_exact"] and r["layers_offloaded"] == 5 for r in results.values())
    for method in ("pot", "apot"):
        assert results[method, "potacc"]["pe_array"]["mul_cells_before_mapping"] == 0
        assert results[method, "gemm"]["pe_array"]["mul_cells_before_mapping"] == 6
    assert results["msq", "potacc"]["pe_array"]["mul_cells_before_mapping"] == 2    # 1 multiplier column x 2 rows
    # 4-bit weights, two words a beat (an odd K pads its last beat)
    assert results["pot", "potacc"]["weight_bytes"] <= 0.51 * results["pot", "gemm"]["weight_bytes"]
    assert results["pot", "potacc"]["cycles"] < results["pot", "gemm"]["cycles"]
    assert all(r["energy_nj"]["total"] > 0 for r in results.values())
