"""The sweep runners: same results in the same order on every runner; bad choices are clear errors."""

import importlib.util
import os

import pytest

from accelkit.errors import ParameterError
from accelkit.sw.execution.runners import LocalRunner, SerialRunner, open_runner


def _square_and_pid(x):
    return x * x, os.getpid()


@pytest.mark.parametrize("runner", [SerialRunner(), LocalRunner(workers=2)], ids=["serial", "local"])
def test_map_keeps_order_and_reports_progress(runner):
    seen = []
    with runner:
        results = runner.map(_square_and_pid, range(7), progress=lambda done, total: seen.append((done, total)))
    assert [r[0] for r in results] == [x * x for x in range(7)]
    assert seen[-1] == (7, 7) and len(seen) == 7
    if runner.workers > 1:
        assert all(pid != os.getpid() for _, pid in results), "a local runner runs items in worker processes"


def test_bad_runner_choices_are_errors():
    with pytest.raises(ParameterError, match="unknown runner 'cluster'"):
        open_runner("cluster")
    with pytest.raises(ParameterError, match="needs --runner ray"):
        open_runner("local", address="10.0.0.1:6379")
    with pytest.raises(ParameterError, match="workers must be a positive integer, not 0"):
        LocalRunner(workers=0)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'accelkit[ray]')")
def test_ray_runner_on_a_local_instance():
    from accelkit.driver.device import DmaTiming
    from accelkit.sw.verification.conformance import check_sweep
    accelerator, cases = _sweep_cases()
    seen = []
    with open_runner("ray", workers=2) as runner:
        results = runner.map(_square_and_pid, range(43), progress=lambda done, total: seen.append((done, total)))
        spread = check_sweep(accelerator, "model", cases, dma=DmaTiming(4, 1), runner=runner)
    assert [r[0] for r in results] == [x * x for x in range(43)]      # items go in chunks, come back in order
    assert seen[-1] == (43, 43)
    # a conformance sweep on Ray workers: the same verdicts and cycles as in this process
    assert _summary(spread) == _summary(check_sweep(accelerator, "model", cases, dma=DmaTiming(4, 1)))


def _sweep_cases():
    from accelkit.accelerators.base import registry
    from accelkit.sw.verification.conformance import sweep
    cls = registry()["gemm"]
    accelerator = cls(**cls.small_params)
    return accelerator, sweep(accelerator, "conv2d", 5, 5, {"max_dim": 9, "max_k": 12})


def _summary(results):
    return [(r.case.name, r.bit_exact, r.cycles, r.estimated_cycles) for r in results]


def test_conformance_and_tconv_sweeps_give_the_same_results_on_worker_processes():
    from accelkit.driver.device import DmaTiming
    from accelkit.sw.benchmarks.mm2im_tconv import evaluate_config, sweep_configs
    from accelkit.sw.verification.conformance import check_sweep
    import functools
    accelerator, cases = _sweep_cases()
    with LocalRunner(workers=2) as runner:
        spread = check_sweep(accelerator, "model", cases, dma=DmaTiming(4, 1), runner=runner)
        configs = sweep_configs(4, 3)
        call = functools.partial(evaluate_config, {"rows": 2, "cols": 3, "data_width": 32, "w_depth": 64,
                                                   "in_depth": 16, "acc_depth": 32},
                                 {"rows": 2, "cols": 3, "data_width": 32}, (4, 1))
        tconv = runner.map(call, configs)
    alone = check_sweep(accelerator, "model", cases, dma=DmaTiming(4, 1))
    assert _summary(spread) == _summary(alone) and len(spread) == 5
    assert all(r.bit_exact and r.cycles == r.estimated_cycles for r in spread)
    assert tconv == [call(config) for config in configs]
    assert [r["index"] for r in tconv] == [0, 1, 2, 3]


def test_run_spreads_a_batch_over_workers_with_the_same_results(tmp_path, monkeypatch):
    import json
    import numpy as np
    from accelkit.sw.commands import main as cli, run as run_cmd
    monkeypatch.setattr(run_cmd, "SPREAD_SECONDS", 0.0)      # spread even this small batch

    def run(runner):
        path = tmp_path / f"{runner}.json"
        assert cli.main(["run", "digits_cnn", "--backend", "model", "--input", "zoo:digits_test_x", "--labels",
                         "zoo:digits_test_y", "--limit", "9", "--compare", "ref", "--runner", runner, "--workers",
                         "2", "--json", str(path), "--output", str(tmp_path / f"{runner}.npy")]) == 0
        return json.loads(path.read_text()), np.load(tmp_path / f"{runner}.npy")
    (alone, alone_out), (spread, spread_out) = run("serial"), run("local")
    assert alone["totals"]["workers"] == 1 and spread["totals"]["workers"] == 2
    assert np.array_equal(alone_out, spread_out) and alone_out.shape == (9, 10)
    assert alone["accuracy"] == spread["accuracy"] and spread["compare"]["offloaded_layers_bit_exact"]
    assert alone["layers"] == spread["layers"]
