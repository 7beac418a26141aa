"""accelkit dse end to end on a small model: front, RTL confirmation, exported parameters that `run` accepts."""

import json

import pytest

pytest.importorskip("optuna")

from accelkit.sw.commands.main import main


def test_dse_confirms_on_rtl_and_exports_a_params_file(tmp_path, capsys):
    params_file, record, plot = tmp_path / "chosen.json", tmp_path / "dse.json", tmp_path / "front.png"
    # one point (the default 8x8 design, whose Verilator build the suite shares) and its neighbour in width
    code = main(["dse", "digits_cnn", "--space", "rows=8,cols=8,data_width=32|64,k_max=2048,a_depth=4096",
                 "--trials", "4", "--storage", str(tmp_path / "s.db"), "--runner", "serial", "--yosys", "0",
                 "--confirm", "1", "--export", str(params_file), "--json", str(record), "--plot", str(plot)])
    assert code == 0, capsys.readouterr().err[-2000:]
    result = json.loads(record.read_text())
    fastest = result["front"][0]
    assert result["rtl"][0]["confirmed"] and result["rtl"][0]["rtl_cycles"] == fastest["cycles"]
    assert result["rtl"][0]["outputs_equal_model"]
    exported = json.loads(params_file.read_text())
    assert exported["accelerator"] == "gemm" and exported["params"] == fastest["params"]
    assert plot.stat().st_size > 1000
    run_record = tmp_path / "run.json"
    assert main(["run", "digits_cnn", "--backend", "model", "--params-file", str(params_file),
                 "--json", str(run_record)]) == 0
    assert json.loads(run_record.read_text())["params"] == fastest["params"]


@pytest.mark.parametrize("argv, message", [
    (["dse", "digits_cnn", "--objectives", "latency"], "give two or more distinct names"),
    (["dse", "digits_cnn", "--objectives", "latency,speed"], "unknown: speed"),
    (["dse", "digits_cnn", "--space", "rows=0..0"], "leaves no legal value"),
    (["dse", "digits_cnn", "--accel", "nope"], "not an available accelerator"),
    (["run", "digits_cnn", "--backend", "model", "--params-file", "/nonexistent.json"], "no such file"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_params_file_for_another_accelerator_is_refused(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"accelerator": "mm2im", "params": {}}))
    assert main(["run", "digits_cnn", "--backend", "model", "--params-file", str(path)]) == 2
    assert "is for accelerator 'mm2im', which is not in --accel gemm" in capsys.readouterr().err
