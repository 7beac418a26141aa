import json

import numpy as np
import pytest

from accelkit.sw.commands import main as cli
from tests_params import SMALL_PARAMS

SMALL = ",".join(f"{k}={v}" for k, v in SMALL_PARAMS.items())


def test_accelerators_lists_gemm_with_parameters(capsys, tmp_path):
    assert cli.main(["accelerators", "--json", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "gemm" in out and "k_max" in out
    record = json.loads((tmp_path / "a.json").read_text())
    gemm = next(a for a in record["accelerators"] if a["name"] == "gemm")
    assert {p["name"] for p in gemm["params"]} == {"rows", "cols", "data_width", "k_max", "a_depth"}


@pytest.mark.parametrize("argv", [
    ["gemm", "--m", "9", "--n", "7", "--k", "13"],
    ["fc", "--batch", "2", "--k", "30", "--n", "6", "--activation", "relu6"],
    ["conv2d", "--height", "7", "--width", "6", "--in-channels", "3", "--out-channels", "5", "--stride", "2",
     "--padding", "valid"],
])
def test_layer_writes_json_with_provenance(tmp_path, argv):
    path = tmp_path / "r.json"
    assert cli.main(["layer", *argv, "--params", SMALL, "--seed", "4", "--dma-bytes", "4", "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    for key in ("schema_version", "params", "seed", "dma", "tool_versions", "cycles", "macs", "utilization",
                "bit_exact", "estimated_cycles"):
        assert key in record, key
    assert record["bit_exact"] is True
    assert record["cycles"] == record["estimated_cycles"]
    assert record["dma"] == {"bytes_per_cycle": 4, "latency": 0}
    assert 0 < record["utilization"] <= 1


def test_layer_mismatch_prints_reproducer(monkeypatch, capsys, tmp_path):
    from accelkit.driver.kinds.gemm import Gemm
    # A reference that disagrees with the hardware must be reported, with a reproducer.
    real = Gemm.reference
    monkeypatch.setattr(Gemm, "reference", lambda self, x: real(self, x) ^ np.int8(1))
    path = tmp_path / "r.json"
    assert cli.main(["layer", "gemm", "--m", "3", "--n", "3", "--k", "3", "--params", SMALL, "--seed", "9",
                     "--json", str(path)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH at index (0, 0)" in out and "--seed 9" in out and "accelkit layer gemm --m 3" in out
    assert json.loads(path.read_text())["first_mismatch"]["index"] == [0, 0]


def test_bad_parameters_are_an_error_not_a_traceback(capsys):
    assert cli.main(["layer", "gemm", "--params", "rows=0"]) == 2
    assert "accelkit: error: rows must be in 1..64, not 0" in capsys.readouterr().err
    assert cli.main(["layer", "gemm", "--params", "rows"]) == 2
    assert cli.main(["layer", "gemm", "--k", "5000"]) == 2
    assert "exceeds k_max=2048" in capsys.readouterr().err


def test_console_entry_point_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(sys.executable).with_name("accelkit")
    result = subprocess.run([str(script), "layer", "gemm", "--m", "4", "--n", "4", "--k", "4", "--params", SMALL],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "yes" in result.stdout


def test_sim_speed_refuses_a_baseline_that_is_not_a_commit_before_building(capsys):
    from accelkit.sw.commands import main as cli
    assert cli.main(["bench", "sim-speed", "--baseline", "no-such-commit-xyz"]) == 2
    assert "--baseline 'no-such-commit-xyz' is not a commit" in capsys.readouterr().err
    assert cli.main(["bench", "sim-speed", "--routes", "cocotb"]) == 2
    assert "--routes must list verilator" in capsys.readouterr().err
