"""The driver's cycle budget comes from cost.cycle_bound, which must never be below the exact cost model."""

import numpy as np

from accelkit.accelerators.gemm import cost
from accelkit.driver.device import DmaTiming


def test_cycle_bound_is_at_least_the_exact_job_cycles():
    rng = np.random.default_rng(5)
    for _ in range(3000):
        cols = int(rng.integers(1, 17))
        params = dict(rows=int(rng.integers(1, 17)), cols=cols, data_width=int(rng.choice([8, 16, 32, 64, 128])),
                      mult_cols=int(rng.integers(0, cols + 1)), terms=int(rng.choice([1, 2])))
        dma = DmaTiming(int(rng.choice([1, 2, 3, 4, 8, 16, 32])), int(rng.integers(0, 20)))
        m_tiles, n_tiles, k = int(rng.integers(1, 20)), int(rng.integers(1, 20)), int(rng.integers(1, 300))
        exact = cost.job_cycles(params, m_tiles, n_tiles, k, dma)
        assert cost.cycle_bound(params, m_tiles, n_tiles, k, dma) >= exact, (params, dma, m_tiles, n_tiles, k)
