"""Checks every accelerator gets: golden model vs a backend, cost model vs simulated cycles.

Used by the test suite (generated per accelerator) and by anyone validating a
new plug-in: ``sweep(accelerator, seed, count)`` makes seeded layer cases and
``check_case(accelerator, device, case)`` runs one and compares.
"""

from dataclasses import dataclass

import numpy as np

from ...driver.quant import ACTIVATIONS
from .random_layers import random_conv2d, random_fc, random_gemm

__all__ = ["Case", "CaseResult", "sweep", "check_case", "edge_cases"]


@dataclass
class Case:
    name: str
    gemm: object = None      # QuantizedGemm, or
    layer: object = None     # a Conv2D / FullyConnected with its input
    x: np.ndarray = None

    def lowered(self):
        if self.gemm is not None:
            return self.gemm, (self.gemm.shape[0], self.gemm.shape[1])
        return self.layer.lower(self.x)


@dataclass
class CaseResult:
    case: Case
    bit_exact: bool
    cycles: int
    estimated_cycles: int
    counters: object
    mismatch: str = ""


def _fits(accelerator, gemm):
    return accelerator.supports(gemm)[0]


def edge_cases(accelerator, rng):
    """Shapes at the edges of the tiling: M=1, N=1, K=1, K off the tile, K=k_max, saturation, zero points."""
    rows, cols, k_max = accelerator.params["rows"], accelerator.params["cols"], accelerator.params["k_max"]

    def depth(k):
        return min(k, k_max)

    cases = [
        Case("m1", random_gemm(rng, 1, 3 * cols + 1, depth(17))),
        Case("n1", random_gemm(rng, 2 * rows + 3, 1, depth(33))),
        Case("k1", random_gemm(rng, rows + 1, cols + 1, 1)),
        Case("k_max", random_gemm(rng, rows, cols, k_max)),
        Case("k_off_tile", random_gemm(rng, 3 * rows - 1, 2 * cols + 3, depth(rows * cols + 5))),
        Case("saturating", random_gemm(rng, 2 * rows, 2 * cols, depth(40), narrow=True)),
        Case("large_zero_points", random_gemm(rng, rows + 2, cols + 2, depth(50), zero_points="large")),
    ]
    for activation in ACTIVATIONS:
        cases.append(Case(f"act_{activation.lower()}", random_gemm(rng, rows + 1, cols + 3, depth(21), activation)))
    return cases


def sweep(accelerator, seed, count, max_dim=40, max_k=None):
    """``count`` seeded random GEMM / CONV_2D / FULLY_CONNECTED cases that fit ``accelerator``."""
    rng = np.random.default_rng(seed)
    max_k = min(max_k or accelerator.params["k_max"], accelerator.params["k_max"])
    cases = []
    while len(cases) < count:
        kind = rng.choice(["gemm", "conv2d", "fc"])
        activation = str(rng.choice(ACTIVATIONS))
        zero_points = "large" if rng.random() < 0.15 else "random"
        narrow = bool(rng.random() < 0.2)
        if kind == "gemm":
            m, n, k = (int(v) for v in rng.integers(1, [max_dim + 1, max_dim + 1, max_k + 1]))
            case = Case(f"gemm{len(cases)}_{m}x{n}x{k}", random_gemm(rng, m, n, k, activation, zero_points, narrow))
        elif kind == "fc":
            batch, fin, fout = int(rng.integers(1, 5)), int(rng.integers(1, max_k + 1)), int(rng.integers(1, max_dim + 1))
            layer, x = random_fc(rng, batch, fin, fout, activation, zero_points, narrow)
            case = Case(f"fc{len(cases)}_{batch}x{fin}->{fout}", layer=layer, x=x)
        else:
            kernel = int(rng.choice([1, 3, 5]))
            cin = int(rng.integers(1, 9))
            if kernel * kernel * cin > max_k:
                continue
            stride, dilation = int(rng.choice([1, 2])), int(rng.choice([1, 1, 2]))
            padding = str(rng.choice(["SAME", "VALID"]))
            h, w = int(rng.integers(kernel + (kernel - 1) * (dilation - 1), 14)), int(rng.integers(kernel * dilation, 14))
            layer, x = random_conv2d(rng, int(rng.integers(1, 3)), h, w, cin, int(rng.integers(1, 20)), kernel,
                                     stride, dilation, padding, activation, zero_points, narrow)
            try:
                layer.lower(x)
            except Exception:
                continue
            case = Case(f"conv{len(cases)}_{h}x{w}x{cin}_k{kernel}s{stride}d{dilation}{padding[0]}", layer=layer, x=x)
        gemm = case.gemm if case.gemm is not None else case.layer.lower(case.x)[0]
        if _fits(accelerator, gemm):
            cases.append(case)
    return cases


def check_case(accelerator, device, case, dma=None):
    """Run ``case`` on ``device``; compare with the golden model and the cost model."""
    if case.gemm is not None:
        golden = accelerator.golden(case.gemm)
        out, stats = accelerator.run_gemm(device, case.gemm)
        shape = case.gemm.shape
    else:
        gemm, out_shape = case.layer.lower(case.x)
        golden = accelerator.golden(gemm).reshape(out_shape)
        out, stats = accelerator.run_layer(device, case.layer, case.x)
        shape = gemm.shape
    estimate = accelerator.estimate_cycles(shape, dma or device.dma)
    exact = bool(np.array_equal(out, golden))
    mismatch = ""
    if not exact:
        index = tuple(int(i) for i in np.argwhere(out != golden)[0])
        mismatch = f"{case.name}: first difference at {index}: got {out[index]}, golden {golden[index]}"
    return CaseResult(case, exact, stats.cycles, estimate, stats, mismatch)
