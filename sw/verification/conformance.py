"""Checks every accelerator gets, for every layer kind it declares: outputs and cycles against its own models.

For an (accelerator, kind) pair, :func:`sweep` draws seeded random layers of the
kind from the accelerator's own domain (``Accelerator.random_layer``: potacc's
weights on its power-of-two grid, say) with shapes from the kind's generator, and
keeps those the accelerator plans. :func:`check_case` then runs one on an executor
or a device and compares three things: the output with the kind's TFLite-exact
reference, the accelerator's golden model with that reference (so the lowering
and placement are checked even on the `model` backend), and the simulated cycles
with the cost model's estimate.

:func:`check_sweep` checks a whole sweep through a runner
(``sw/execution/runners.py``): the cases go out in one chunk per worker, and each
worker opens its own executor of the backend (a simulator cannot cross processes).

Seeds are plain integers (no ``hash()`` of names, which Python randomises per
process), and every mismatch message carries the seed and case index that
reproduce it.
"""

import functools
from dataclasses import dataclass, field

import numpy as np

from ...driver.device import Device
from ...driver.kinds import get_kind
from ...driver.quant import ACTIVATIONS
from ...errors import ParameterError, UnsupportedLayer

__all__ = ["Case", "CaseResult", "sweep", "check_case", "check_sweep", "edge_cases", "declared_pairs"]


@dataclass
class Case:
    name: str
    layer: object
    inputs: tuple
    shape: dict = field(default_factory=dict)
    seed: int | None = None

    @property
    def kind(self):
        return self.layer.op


@dataclass
class CaseResult:
    case: Case
    bit_exact: bool
    cycles: int
    estimated_cycles: int
    stats: object
    mismatch: str = ""
    plan: object = None


def declared_pairs(registry):
    """(accelerator name, class, kind) for every kind every loadable registered accelerator declares."""
    return [(name, cls, kind) for name, cls in sorted(registry.items()) if not isinstance(cls, str)
            for kind in cls.kinds]


def _extras(kind, rng):
    """Random activation, zero points and saturation, where the kind's generator takes them."""
    options = {option.name for option in kind.shape_options}
    extras = {"zero_points": "large" if rng.random() < 0.15 else "random", "narrow": bool(rng.random() < 0.2)}
    if "activation" in options:
        extras["activation"] = str(rng.choice(ACTIVATIONS))
    return extras


def sweep(accelerator, kind, seed, count, limits=None, max_attempts=None):
    """``count`` seeded random layers of ``kind`` that ``accelerator`` plans (declined draws are skipped).

    ``limits`` bounds the shapes (``max_dim``, ``max_k``); by default they follow the
    design's own ``k_max`` where it has one.
    """
    declared = get_kind(kind)
    limits = dict(limits or {})
    if "k_max" in accelerator.params:
        limits["max_k"] = min(limits.get("max_k", accelerator.params["k_max"]), accelerator.params["k_max"])
    rng = np.random.default_rng(seed)
    cases, attempts = [], 0
    max_attempts = max_attempts or 20 * count + 100
    while len(cases) < count:
        attempts += 1
        if attempts > max_attempts:
            raise UnsupportedLayer(f"{accelerator.name} planned only {len(cases)} of {attempts - 1} random {kind} "
                                   f"layers (seed {seed}); its domain and the kind's shapes hardly overlap")
        shape = declared.random_shape(rng, limits)
        try:
            layer, inputs = accelerator.random_layer(kind, rng, **shape, **_extras(declared, rng))
            accelerator.plan(layer, *(x.shape for x in inputs))
        except (UnsupportedLayer, ParameterError):
            continue
        name = f"{kind}{len(cases)}_" + "_".join(f"{k}{v}" for k, v in shape.items())
        cases.append(Case(name, layer, inputs, shape, seed))
    return cases


def edge_cases(accelerator, rng):
    """GEMMs at the edges of a systolic tiling: M=1, N=1, K=1, K off the tile, K=k_max, saturation, zero points.

    For designs with ``rows``, ``cols`` and ``k_max`` parameters that run the ``gemm`` kind; empty otherwise.
    """
    if "gemm" not in accelerator.kinds or not {"rows", "cols", "k_max"} <= set(accelerator.params):
        return []
    rows, cols, k_max = accelerator.params["rows"], accelerator.params["cols"], accelerator.params["k_max"]
    kind = get_kind("gemm")

    def case(name, m, n, k, **extra):
        layer, inputs = accelerator.random_layer("gemm", rng, m=m, n=n, k=min(k, k_max), **extra)
        return Case(name, layer, inputs, {"m": m, "n": n, "k": min(k, k_max)})

    cases = [case("m1", 1, 3 * cols + 1, 17), case("n1", 2 * rows + 3, 1, 33), case("k1", rows + 1, cols + 1, 1),
             case("k_max", rows, cols, k_max), case("k_off_tile", 3 * rows - 1, 2 * cols + 3, rows * cols + 5),
             case("saturating", 2 * rows, 2 * cols, 40, narrow=True),
             case("large_zero_points", rows + 2, cols + 2, 50, zero_points="large")]
    cases += [case(f"act_{activation.lower()}", rows + 1, cols + 3, 21, activation=activation)
              for activation in ACTIVATIONS]
    assert all(c.layer.op == kind.name for c in cases)
    return cases


def check_case(accelerator, target, case, dma=None, cycle_budget=None):
    """Run ``case`` on ``target`` (an executor, or a device of ``accelerator``); compare with the models.

    The output must equal the kind's reference and the accelerator's golden model;
    ``estimated_cycles`` is the cost model's figure for the same plan.
    """
    plan = accelerator.plan(case.layer, *(x.shape for x in case.inputs))
    expected = case.layer.reference(*case.inputs)
    golden = accelerator.golden(plan, *case.inputs)
    if isinstance(target, Device):
        out, stats = accelerator.run(plan, target, *case.inputs, cycle_budget=cycle_budget)
        dma = dma or target.dma
    else:
        out, stats = target.run(plan, *case.inputs, cycle_budget=cycle_budget)
        dma = dma or target.dma
    estimate = accelerator.estimate(plan, dma).cycles
    mismatch = ""
    for what, value in (("output", out), ("golden model", golden)):
        if value.shape != expected.shape:
            mismatch = f"{what} has shape {list(value.shape)}, the reference {list(expected.shape)}"
            break
        if not np.array_equal(value, expected):
            index = tuple(int(i) for i in np.argwhere(value != expected)[0])
            mismatch = f"{what} differs at {index}: got {value[index]}, reference {expected[index]}"
            break
    if mismatch:
        mismatch = f"{accelerator!r} {case.name} (seed {case.seed}): {mismatch}"
    return CaseResult(case, not mismatch, stats.cycles, estimate, stats, mismatch, plan)


def check_sweep(accelerator, backend, cases, *, dma=None, runner=None):
    """:func:`check_case` of every case on a ``backend`` executor of ``accelerator``, spread over ``runner``
    (default: this process); results in the order of ``cases``."""
    from ..execution.runners import SerialRunner
    from ...driver.device import DmaTiming
    runner = runner or SerialRunner()
    cases = list(cases)
    size = max(1, -(-len(cases) // runner.workers))
    chunks = [cases[at:at + size] for at in range(0, len(cases), size)]
    call = functools.partial(_check_chunk, accelerator, backend, dma or DmaTiming())
    return [result for chunk in runner.map(call, chunks) for result in chunk]


def _check_chunk(accelerator, backend, dma, cases):
    from ..execution.executors import open_executor
    with open_executor(accelerator, backend, dma) as executor:
        return [check_case(accelerator, executor, case) for case in cases]
