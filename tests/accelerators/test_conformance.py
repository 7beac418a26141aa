"""Generated conformance: every registered accelerator, every layer kind it declares.

For each (accelerator, kind) pair, seeded random layers from the accelerator's own
domain, on its small design: 200 on the `model` backend (the golden model, i.e. the
design's lowering and placement, against the kind's TFLite-exact reference) and 30
on Verilator (outputs against the reference, simulated cycles against the cost
model, exactly: these designs' schedules do not depend on the data).
"""

import zlib

import pytest

from accelkit.accelerators.base import registry
from accelkit.driver.device import DmaTiming
from accelkit.sw.verification.conformance import check_case, check_sweep, declared_pairs, sweep

PAIRS = declared_pairs(registry())
LIMITS = {"max_dim": 20, "max_k": 64}


def _seed(name, kind):
    # Stable across processes (crc32, not hash(): Python randomises string hashes per run).
    return zlib.crc32(f"{name}/{kind}".encode())


def _failures(results):
    wrong = [r.mismatch for r in results if not r.bit_exact]
    drift = [f"{r.case.name} (seed {r.case.seed}): {r.cycles} cycles, cost model {r.estimated_cycles}"
             for r in results if r.cycles != r.estimated_cycles]
    return wrong + drift


@pytest.mark.parametrize("name, cls, kind", PAIRS, ids=[f"{n}-{k}" for n, _, k in PAIRS])
def test_model_backend_golden_equals_reference(name, cls, kind):
    accelerator = cls(**cls.small_params)
    cases = sweep(accelerator, kind, _seed(name, kind), 200, LIMITS)
    failures = _failures(check_sweep(accelerator, "model", cases, dma=DmaTiming(4, 1)))
    assert not failures, "\n".join(failures[:10])


@pytest.mark.parametrize("name, cls, kind", PAIRS, ids=[f"{n}-{k}" for n, _, k in PAIRS])
def test_verilator_bit_exact_and_cycle_exact(device_pool, name, cls, kind):
    accelerator, device = device_pool(cls.small_params, "verilator", DmaTiming(4, 1), cls)
    cases = sweep(accelerator, kind, _seed(name, kind) + 1, 30, LIMITS)
    failures = _failures([check_case(accelerator, device, case) for case in cases])
    assert not failures, "\n".join(failures[:10])


def test_every_registered_accelerator_declares_kinds_and_a_small_design():
    for name, cls, _ in PAIRS:
        assert cls.kinds and cls(**cls.small_params).params
