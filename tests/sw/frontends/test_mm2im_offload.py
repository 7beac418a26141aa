"""TRANSPOSE_CONV offload through the TFLite delegate, accelerator lists, and the tconv sweep."""

import json

import numpy as np
import pytest


from accelkit.errors import ParameterError                          # noqa: E402
from accelkit.sw.commands import main as cli                                          # noqa: E402
from accelkit.sw.execution.accelerator_lists import resolve_accelerators                   # noqa: E402
from accelkit.sw.benchmarks.mm2im_tconv import sweep_configs                    # noqa: E402
from accelkit.sw.frontends.tflite.frontend import to_layer                     # noqa: E402
from accelkit.sw.frontends.tflite.model import read_model                      # noqa: E402
from accelkit.sw.zoo import resolve_model                            # noqa: E402

MM2IM_SMALL = "mm2im.rows=4,mm2im.cols=4,mm2im.acc_depth=512,gemm.rows=4,gemm.cols=4"


def test_front_end_reads_transpose_conv():
    model = read_model(resolve_model("dcgan_tiny"))
    layers = [to_layer(op, model.tensors) for op in model.ops if op.op == "TRANSPOSE_CONV"]
    assert [layer.stride for layer in layers] == [(2, 2), (1, 1), (2, 2), (2, 2)]
    assert [layer.output_shape for layer in layers] == [(1, 8, 8, 32), (1, 8, 8, 32), (1, 16, 16, 16), (1, 32, 32, 3)]
    assert all(layer.bias is not None and layer.filter_scales.size == layer.filters.shape[0] for layer in layers)


def test_generator_on_mm2im_and_gemm_rtl_is_bit_exact(tmp_path):
    path = tmp_path / "dcgan.json"
    code = cli.main(["run", "dcgan_tiny", "--accel", "mm2im,gemm", "--params", MM2IM_SMALL, "--compare", "ref",
                     "--json", str(path)])
    record = json.loads(path.read_text())
    assert code == 0 and record["compare"]["output_bit_exact"] and record["compare"]["offloaded_layers_bit_exact"]
    by_op = {}
    for layer in record["layers"]:
        by_op.setdefault(layer["op"], set()).add(layer.get("accelerator", layer["where"]))
    assert by_op["TRANSPOSE_CONV"] == {"mm2im"} and by_op["FULLY_CONNECTED"] == {"gemm"}
    assert by_op["TANH"] == {"cpu"}
    assert record["params"] == {"mm2im": {"rows": 4, "cols": 4, "data_width": 64, "w_depth": 1024, "in_depth": 512,
                                          "acc_depth": 512},
                                "gemm": {"rows": 4, "cols": 4, "data_width": 64, "k_max": 2048, "a_depth": 4096}}


def test_gemm_alone_leaves_transpose_conv_on_the_cpu(tmp_path):
    path = tmp_path / "gemm.json"
    assert cli.main(["run", "dcgan_tiny", "--backend", "model", "--compare", "ref", "--json", str(path)]) == 0
    layers = json.loads(path.read_text())["layers"]
    tconv = [layer for layer in layers if layer["op"] == "TRANSPOSE_CONV"]
    assert tconv and all(layer["where"] == "cpu" and "does not run tconv" in layer["reason"] for layer in tconv)


def test_accelerator_list_parameters():
    mm2im, gemm = resolve_accelerators("mm2im,gemm", {"rows": 4, "gemm.cols": 2})
    assert (mm2im.params["rows"], mm2im.params["cols"], gemm.params["rows"], gemm.params["cols"]) == (4, 8, 4, 2)
    with pytest.raises(ParameterError, match="no accelerator in --accel mm2im,gemm has a parameter 'k'"):
        resolve_accelerators("mm2im,gemm", {"k": 1})
    with pytest.raises(ParameterError, match="not in --accel"):
        resolve_accelerators("mm2im,gemm", {"potato.rows": 1})
    with pytest.raises(ParameterError, match="twice"):
        resolve_accelerators("gemm,gemm", {})
    assert cli.main(["run", "dcgan_tiny", "--accel", "mm2im,nosuch", "--backend", "model"]) == 2


def test_sweep_is_seeded_and_valid():
    first, again = sweep_configs(20, seed=4), sweep_configs(20, seed=4)
    assert [c[1] for c in first] == [c[1] for c in again]
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(first, again))
    assert {c[2].kernel[0] for c in sweep_configs(260, 0)} == set(range(1, 8))
    assert {c[2].stride[0] for c in sweep_configs(260, 0)} == {1, 2, 3}


def test_tconv_bench_subset(tmp_path):
    path = tmp_path / "tconv.json"
    assert cli.main(["bench", "tconv", "--count", "16", "--rtl", "3", "--params", "rows=4,cols=4,acc_depth=512",
                     "--seed", "3", "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    summary = record["summary"]
    assert summary["configurations"] == 16 and summary["bit_exact"] == summary["supported"] == 16
    assert summary["rtl"]["bit_exact"] == summary["rtl"]["cycles_equal_cost_model"] == 3
    assert summary["rtl"]["gemm_bit_exact"] == summary["rtl"]["gemm_cycles_equal_cost_model"] == 3
    speedups = [c["speedup"] for c in record["configurations"]]
    assert summary["worst"]["speedup"] == min(speedups) and summary["best"]["speedup"] == max(speedups)
    assert all(c["ineffectual_macs_avoided"] == c["zero_insertion_macs"] - c["effective_macs"] >= 0
               for c in record["configurations"])


def test_layer_command_runs_tconv(tmp_path):
    path = tmp_path / "layer.json"
    assert cli.main(["layer", "tconv", "--accel", "mm2im", "--params", "rows=4,cols=4,acc_depth=512", "--height", "5",
                     "--width", "4", "--in-channels", "6", "--out-channels", "5", "--kernel", "3", "--stride", "2",
                     "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["bit_exact"] and record["cycles"] == record["estimated_cycles"]
    assert cli.main(["layer", "conv2d", "--accel", "mm2im", "--backend", "model"]) == 2
