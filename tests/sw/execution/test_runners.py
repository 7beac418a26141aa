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
    seen = []
    with open_runner("ray", workers=2) as runner:
        results = runner.map(_square_and_pid, range(43), progress=lambda done, total: seen.append((done, total)))
    assert [r[0] for r in results] == [x * x for x in range(43)]      # items go in chunks, come back in order
    assert seen[-1] == (43, 43)
