"""Result files are written whole or not at all."""

import json

import numpy as np
import pytest

from accelkit.sw.commands import main as cli
from accelkit.sw.reports.output import replacing, save_arrays, write_json


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with replacing(path) as handle:
            handle.write(b'{"half": ')
            raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_arrays_go_exactly_where_asked(tmp_path):
    save_arrays(tmp_path / "out", [np.arange(3)])                 # numpy alone would write out.npy
    assert np.array_equal(np.load(tmp_path / "out"), np.arange(3))
    save_arrays(tmp_path / "two.npz", [np.arange(2), np.ones(2)])
    assert len(np.load(tmp_path / "two.npz").files) == 2


def test_a_failed_run_writes_no_result_file(tmp_path, capsys):
    from accelkit.sw.verification.fuzz import model_fields, set_field
    from accelkit.sw.zoo import resolve_model
    data = resolve_model("digits_cnn").read_bytes()
    stride = next(f for f in model_fields(data) if f.name == "operators[1].options.stride_h")
    model = tmp_path / "bad.tflite"
    model.write_bytes(set_field(data, stride, 0))
    out = tmp_path / "results"
    code = cli.main(["run", str(model), "--backend", "model", "--json", str(out / "r.json"),
                     "--output", str(out / "y.npy")])
    assert code == 2 and "stride (0, 2)" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_a_good_run_writes_its_files(tmp_path):
    code = cli.main(["run", "digits_cnn", "--backend", "model", "--json", str(tmp_path / "r.json"),
                     "--output", str(tmp_path / "y.npy")])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.png", "y.npy"]
    assert np.load(tmp_path / "y.npy").shape == (1, 10)
