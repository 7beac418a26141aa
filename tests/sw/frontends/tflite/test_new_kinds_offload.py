"""The zoo's depthwise and attention models through the LiteRT delegate, with the new kinds offloaded to gemm."""

import json

import pytest

from accelkit.sw.commands import main as cli


def _run(tmp_path, model, backend):
    path = tmp_path / f"{model}.json"
    code = cli.main(["run", model, "--backend", backend, "--compare", "ref", "--json", str(path)])
    return code, json.loads(path.read_text())


def _offloaded(record, op):
    return [layer for layer in record["layers"] if layer["op"] == op and layer["where"] == "accelerator"]


def test_transformer_block_attention_matmuls_run_bit_exact_on_rtl(tmp_path):
    code, record = _run(tmp_path, "transformer_block", "verilator")
    assert code == 0
    assert record["compare"]["output_bit_exact"] and record["compare"]["offloaded_layers_bit_exact"]
    matmuls = _offloaded(record, "BATCH_MATMUL")
    assert len(matmuls) == 2
    assert all(layer["bit_exact"] and layer["cycles"] > 0 for layer in matmuls)
    assert record["totals"]["share_of_macs_offloaded"] == 1.0


@pytest.mark.parametrize("backend", ["model", "verilator"])
def test_efficientnet_depthwise_layers_run_bit_exact(tmp_path, backend):
    code, record = _run(tmp_path, "efficientnet_tiny", backend)
    assert code == 0
    assert record["compare"]["output_bit_exact"] and record["compare"]["offloaded_layers_bit_exact"]
    depthwise = [layer for layer in record["layers"] if layer["op"] == "DEPTHWISE_CONV_2D"]
    assert len(depthwise) == 7 and all(layer["where"] == "accelerator" and layer["bit_exact"] for layer in depthwise)
    # one block-diagonal GEMM per group: only one product in `group` is useful, so utilization stays low
    assert all(0 < layer["utilization"] < 0.2 for layer in depthwise)
    assert record["totals"]["share_of_macs_offloaded"] == 1.0
