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
from accelkit.sw.dse.search import SearchConfig, finished, open_study, run_search
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


def test_pruned_trials_keep_the_reason_in_the_study(tmp_path):
    config = SearchConfig(accel="gemm", model="digits_cnn", board="pynq-z1", objectives=["latency", "dsp"],
                          clock_mhz=100.0, dma=[8, 0], space="rows=32|64,cols=64")
    study = run_search(config, str(tmp_path / "s.db"), trials=3, runner=SerialRunner(), sampler="random")
    trials = finished(study)
    assert len(trials) == 3
    assert all(t.state.name == "PRUNED" and "budget" in t.user_attrs["infeasible"] for t in trials)
    again = open_study(config, str(tmp_path / "s.db"))
    assert len(finished(again)) == 3


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
