"""The row-tile closed form of the GEMM cost model equals the step-by-step recurrence it replaces."""

import random

import pytest

from accelkit.accelerators.gemm import cost
from accelkit.driver.device import DmaTiming


@pytest.mark.parametrize("seed", range(3))
def test_closed_form_equals_the_loop(seed, monkeypatch):
    rng = random.Random(seed)
    cases = []
    for _ in range(300):
        params = {"rows": rng.choice([1, 2, 3, 4, 8, 16]), "cols": rng.choice([1, 2, 5, 8, 16]),
                  "data_width": rng.choice([8, 16, 32, 64, 128, 256]), "k_max": 2048, "a_depth": 4096}
        dma = DmaTiming(rng.choice([1, 2, 4, 8, 16, 64]), rng.choice([0, 0, 3, 40]))
        cases.append((params, rng.choice([16, 17, 40, 300]), rng.randint(1, 4), rng.choice([1, 2, 9, 300]), dma))
    fast = [cost.job_cycles(*case) for case in cases]
    cost._job_cycles.cache_clear()
    monkeypatch.setattr(cost, "_CLOSED_FORM_FROM", 1 << 30)     # every row tile stepped through
    slow = [cost.job_cycles(*case) for case in cases]
    cost._job_cycles.cache_clear()
    assert fast == slow
