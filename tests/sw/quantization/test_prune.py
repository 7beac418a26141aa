"""Magnitude pruning (`accelkit prune`): the smallest weights become the zero point, the model stays valid."""

import json

import numpy as np
import pytest

from accelkit.errors import ModelError, ParameterError
from accelkit.sw.commands import main as cli
from accelkit.sw.frontends.tflite.model import read_model
from accelkit.sw.quantization.prune import prune_model
from accelkit.sw.zoo import ZOO

DIGITS = ZOO / "models" / "digits_cnn.tflite"


def _weights(model, index):
    op = model.ops[index]
    return model.tensors[op.inputs[1]]


@pytest.mark.parametrize("granularity", ["channel", "layer"])
def test_smallest_weights_become_the_zero_point(tmp_path, granularity):
    out = tmp_path / "p.tflite"
    result = prune_model(DIGITS, out, 0.7, {5: 0.0}, granularity)
    dense, pruned = read_model(DIGITS), read_model(out)
    assert out.stat().st_size == DIGITS.stat().st_size
    assert [r["index"] for r in result["layers"]] == [0, 1, 2, 4, 5]
    for report in result["layers"]:
        before, after = _weights(dense, report["index"]), _weights(pruned, report["index"])
        w, p = before.data.astype(np.int64), after.data.astype(np.int64)
        zero = after.zero_points.reshape([-1] + [1] * (w.ndim - 1))
        changed = w != p
        assert np.all(p[changed] == np.broadcast_to(zero, w.shape)[changed])   # only ever set to the zero point
        rows = w.reshape(w.shape[0], -1) if granularity == "channel" else w.reshape(1, -1)
        kept = p.reshape(rows.shape) != 0
        if report["index"] == 5:
            assert not changed.any()
            continue
        target = round(0.7 * rows.shape[1])
        assert np.all((~kept).sum(axis=1) >= target)          # ties at zero may add a few
        # every kept weight is at least as large (in real units) as every pruned one of its row
        scale = np.broadcast_to(before.scales.reshape([-1] + [1] * (w.ndim - 1)), w.shape).reshape(rows.shape)
        magnitude = np.abs(rows) * scale
        for row, keep, mag in zip(rows, kept, magnitude):
            if keep.any() and (~keep).any():
                assert mag[keep].min() >= mag[~keep].max()
    # everything but the weights is unchanged
    for a, b in zip(dense.tensors, pruned.tensors):
        assert a.shape == b.shape and a.name == b.name
        if a.is_constant and all(a.index != dense.ops[r["index"]].inputs[1] for r in result["layers"]):
            assert np.array_equal(a.data, b.data)


def test_pruned_model_runs_bit_exact_on_the_gemm_array(tmp_path):
    out, record = tmp_path / "p.tflite", tmp_path / "r.json"
    assert cli.main(["prune", "digits_cnn", "--sparsity", "0.5", "--output", str(out), "--json", str(record)]) == 0
    summary = json.loads(record.read_text())
    assert summary["zeros"] / summary["weights"] == pytest.approx(0.5, abs=0.01)
    assert cli.main(["run", str(out), "--backend", "model", "--input", "zoo:digits_test_x", "--labels",
                     "zoo:digits_test_y", "--limit", "40", "--compare", "ref", "--json", str(record)]) == 0
    result = json.loads(record.read_text())
    assert result["compare"]["output_bit_exact"] and result["compare"]["offloaded_layers_bit_exact"]


def test_bad_input_says_why(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a model, but long enough to be read as one")
    out = str(tmp_path / "o.tflite")
    with pytest.raises(ModelError, match="does not exist"):
        prune_model(tmp_path / "missing.tflite", out, 0.5)
    with pytest.raises(ModelError, match="not a TFLite model"):
        prune_model(text, out, 0.5)
    for value in (1.0, -0.1, float("nan"), "x"):
        with pytest.raises(ParameterError, match=r"sparsity must be"):
            prune_model(DIGITS, out, value)
    with pytest.raises(ParameterError, match="operator 3, which has no int8 weights to prune"):
        prune_model(DIGITS, out, 0.5, {3: 0.5})
    # the command line: usage errors (exit 2) and clean errors, never a traceback
    cases = [(["prune", str(tmp_path / "missing.tflite"), "--sparsity", "0.5", "--output", out],
              "neither a file nor a bundled model"),
             (["prune", str(text), "--sparsity", "0.5", "--output", out], "not a TFLite model"),
             (["prune", "digits_cnn", "--sparsity", "1", "--output", out], r"sparsity must be in \[0, 1\)"),
             (["prune", "digits_cnn", "--sparsity", "-0.2", "--output", out], r"sparsity must be in \[0, 1\)"),
             (["prune", "digits_cnn", "--sparsity", "half", "--output", out], "sparsity must be a number"),
             (["prune", "digits_cnn", "--sparsity", "0.5", "--layer", "5", "--output", out], "INDEX=SPARSITY")]
    for argv, message in cases:
        try:
            code = cli.main(argv)
        except SystemExit as exit_:          # argparse's usage errors
            code = exit_.code
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, (argv, err)
        assert __import__("re").search(message, err), (argv, err)
    assert not (tmp_path / "o.tflite").exists()


def test_zoo_pruned_model_is_about_80_percent_zeros():
    model = read_model(ZOO / "models" / "digits_cnn_pruned.tflite")
    dense = read_model(DIGITS)
    weights = zeros = 0
    for op in model.ops:
        if op.op in ("CONV_2D", "FULLY_CONNECTED"):
            tensor = _weights(model, op.index)
            weights += tensor.data.size
            zeros += int(np.count_nonzero(tensor.data == 0))
            assert tensor.data.shape == _weights(dense, op.index).data.shape
    assert 0.78 <= zeros / weights <= 0.82
