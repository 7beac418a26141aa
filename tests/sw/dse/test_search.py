"""accelkit dse: a sweep killed with SIGKILL resumes with no finished trial lost; pruning keeps its reason."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

from accelkit.errors import ParameterError
from accelkit.accelerators.base import registry
from accelkit.sw.dse.boards import get_board
from accelkit.sw.dse.evaluate import Evaluator, load_workload
from accelkit.sw.dse.search import SearchConfig, feasible, finished, open_study, run_search
from accelkit.sw.dse.space import SearchSpace
from accelkit.sw.execution.runners import SerialRunner

TINY = "rows=2|4,cols=2|4|8,data_width=32|64,k_max=512|1024,a_depth=1024|2048"


def _finished_rows(db):
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT number, state FROM trials WHERE state IN ('COMPLETE', 'PRUNED') "
                                  "ORDER BY number").fetchall()


def _dse(db, trials):
    return [sys.executable, "-m", "accelkit.sw.commands.main", "dse", "digits_cnn", "--space", TINY,
            "--trials", str(trials), "--storage", str(db), "--runner", "serial", "--yosys", "0", "--confirm", "0",
            "--sampler", "random"]


def test_a_killed_sweep_resumes_without_losing_finished_trials(tmp_path):
    db = tmp_path / "sweep.db"
    child = subprocess.Popen(_dse(db, 400), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if db.exists():
                try:
                    if len(_finished_rows(db)) >= 6:
                        break
                except sqlite3.OperationalError:    # tables not made yet, or the writer holds the lock
                    pass
            assert child.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("the sweep finished no trial in 240 s")
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    before = _finished_rows(db)
    assert 6 <= len(before) < 400
    target = len(before) + 5
    resumed = subprocess.run(_dse(db, target), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = _finished_rows(db)
    assert set(before) <= set(after), "a trial finished before the kill was lost or changed"
    assert len(after) == target


def _evaluator():
    return Evaluator(accel="gemm", workload=load_workload("digits_cnn"), board=get_board("pynq-z1"))


def test_infeasible_points_are_pruned_with_their_reason(tmp_path):
    evaluator = _evaluator()
    assert "over the pynq-z1's budget" in evaluator.evaluate({"rows": 64, "cols": 64}).infeasible
    assert "DSP" in evaluator.evaluate({"rows": 64, "cols": 64}).infeasible
    assert "invalid parameters: a_depth (256) must be at least k_max" in \
        evaluator.evaluate({"k_max": 512, "a_depth": 256}).infeasible
    small_k = evaluator.evaluate({"k_max": 16, "a_depth": 16}).infeasible
    assert small_k.startswith("cannot run layer") and "exceeds k_max=16" in small_k
    good = evaluator.evaluate({"rows": 4, "cols": 4})
    assert good.infeasible is None and good.cycles > 0 and good.energy_uj > 0
    # the cost model's own figure: the model backend's estimate, summed over the layers
    accelerator = registry()["gemm"](rows=4, cols=4)
    from accelkit.driver.device import DmaTiming
    expected = sum(accelerator.estimate(accelerator.plan(layer, *shapes), DmaTiming()).cycles
                   for _, layer, shapes in evaluator.workload.layers)
    assert good.cycles == expected


def test_infeasible_trials_keep_the_reason_and_their_constraint_violations(tmp_path):
    config = SearchConfig(accel="gemm", model="digits_cnn", board="pynq-z1", objectives=["latency", "dsp"],
                          clock_mhz=100.0, dma=[8, 0], space="rows=32|64,cols=64,k_max=2048,a_depth=4096")
    study = run_search(config, str(tmp_path / "s.db"), trials=3, runner=SerialRunner(), sampler="nsga2")
    trials = finished(study)
    assert len(trials) == 3
    for trial in trials:
        # costed and told with its violations, so the sampler learns how far out of bounds it is
        assert trial.state.name == "COMPLETE" and "budget" in trial.user_attrs["infeasible"]
        assert trial.values[1] == trial.user_attrs["result"]["resources"]["dsp"] > 220
        assert trial.system_attrs["constraints:dsp"] == pytest.approx(trial.values[1] / 220 - 1)
        assert not feasible(trial)
    assert study.best_trials == [], "the front holds feasible points only"
    again = open_study(config, str(tmp_path / "s.db"))
    assert len(finished(again)) == 3


def test_constrained_search_front_is_feasible_and_learns_from_unrunnable_points(tmp_path):
    config = SearchConfig(accel="gemm", model="digits_cnn", board="pynq-z1", objectives=["latency", "dsp"],
                          clock_mhz=100.0, dma=[8, 0], space="rows=4|32,cols=8|64,k_max=16|512,a_depth=1024")
    study = run_search(config, str(tmp_path / "c.db"), trials=14, runner=SerialRunner(), sampler="nsga2")
    states = {t.state.name for t in finished(study)}
    unrunnable = [t for t in finished(study) if t.user_attrs.get("infeasible", "").startswith("cannot run layer")]
    assert unrunnable, "k_max=16 cannot run digits_cnn's convolutions"
    for trial in unrunnable:    # told with the share of layers it cannot run, not pruned
        assert trial.state.name == "COMPLETE" and 0 < trial.system_attrs["constraints:layers"] <= 1
    assert study.best_trials and all(feasible(t) for t in study.best_trials)
    assert states == {"COMPLETE"}


def test_a_required_clock_prunes_with_the_measured_fmax(monkeypatch):
    from accelkit.sw.dse import evaluate, resources
    points = [{"params": {"rows": 2, "cols": 2, "data_width": 32}, "fmax_mhz": 90.0, "source": "ECP5-85F P&R"},
              {"params": {"rows": 16, "cols": 16, "data_width": 64}, "fmax_mhz": 60.0, "source": "ECP5-85F P&R"}]
    monkeypatch.setattr(evaluate, "fmax_model", lambda name: resources.FmaxModel(name, points))
    evaluator = Evaluator(accel="gemm", workload=load_workload("digits_cnn"), board=get_board("pynq-z1"),
                          min_clock_mhz=75)
    small, large = evaluator.evaluate({"rows": 2, "cols": 4}), evaluator.evaluate({"rows": 16, "cols": 8})
    assert small.infeasible is None and small.fmax_mhz == 90.0 and small.violations["clock"] < 0
    assert "under the required clock: Fmax 60.0 MHz (ECP5-85F P&R of the nearest measured design) < 75 MHz" \
        in large.infeasible
    assert large.violations["clock"] == pytest.approx(0.2) and large.cycles > 0      # still costed
    with pytest.raises(ParameterError, match="no placed-and-routed Fmax is recorded for 'mm2im'"):
        resources.FmaxModel("mm2im", [])


def test_place_route_of_the_chosen_design_with_the_tool_mocked(tmp_path, monkeypatch, capsys):
    import json
    from accelkit.sw.commands.main import main
    from accelkit.sw.dse import resources
    from accelkit.sw.hardware import figures, timing
    ran, fmax = [], [71.5]

    def fake_timing(verilog, top, progress=None, **options):
        ran.append(top)
        return timing.TimingResult(top=top, fmax_mhz=fmax[0], target_mhz=100.0, path_from="a", path_to="b",
                                   path_logic_ns=5.0, path_routing_ns=8.0, utilisation={}, per_seed={1: 71.5})
    monkeypatch.setattr(timing, "ecp5_timing", fake_timing)
    # the conversion behind figures.design_verilog, which other modules bind by name when imported
    monkeypatch.setattr(figures, "convert_verilog", lambda *args, **options: "module m; endmodule")
    monkeypatch.setenv("ACCELKIT_CACHE", str(tmp_path / "cache"))
    shipped = resources._calibration()
    # the Yosys points as shipped, no Fmax point: only what is measured here
    monkeypatch.setattr(resources, "_calibration", lambda: {name: {k: v for k, v in entry.items() if k != "fmax"}
                                                            for name, entry in shipped.items()})
    resources.fmax_model.cache_clear()

    def dse(*extra):
        out = tmp_path / "d.json"
        code = main(["dse", "digits_cnn", "--space", "rows=2|4,cols=2|4,k_max=2048,a_depth=4096", "--trials", "4",
                     "--storage", str(tmp_path / "p.db"), "--runner", "serial", "--yosys", "0", "--confirm", "0",
                     "--json", str(out), *extra])
        return code, json.loads(out.read_text()) if code in (0, 1) else None
    assert dse("--min-clock-mhz", "80")[0] == 2, "no Fmax measured yet: a required clock is refused"
    code, record = dse("--place-route")
    assert code == 0 and ran == ["accelkit_gemm"] and record["place_route"]["fmax_mhz"] == 71.5
    chosen = record["place_route"]["params"]
    assert resources.fmax_model("gemm").estimate(chosen) == (71.5, "ECP5-85F P&R, this design")
    # the measured point now prunes: every point's nearest measured design is the one at 71.5 MHz
    code, record = dse("--min-clock-mhz", "80")
    assert record["summary"]["feasible"] == 0
    assert record["summary"]["infeasible_by_reason"] == {"under the required clock": 4}
    # the model lets a design through that its own place and route then fails: the command fails
    fmax[0] = 65.0
    code, record = dse("--min-clock-mhz", "70", "--place-route")
    assert record["summary"]["feasible"] == 4
    assert record["place_route"]["model_fmax_mhz"] == 71.5 and record["place_route"]["fmax_mhz"] == 65.0
    assert code == 1 and not record["place_route"]["meets_required_clock"]
    resources.fmax_model.cache_clear()


def test_space_is_checked_against_the_declaration():
    cls = registry()["gemm"]
    assert SearchSpace(cls, "rows=2..8").choices["rows"] == list(range(2, 9))
    assert SearchSpace(cls, "k_max=100..1000").choices["k_max"] == [128, 256, 512]
    with pytest.raises(ParameterError, match="does not declare"):
        SearchSpace(cls, "depth=4")
    with pytest.raises(ParameterError, match="power of two"):
        SearchSpace(cls, "k_max=100|128")
    with pytest.raises(ParameterError, match="leaves no legal value"):
        SearchSpace(cls, "rows=100..200")
