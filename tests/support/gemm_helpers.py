"""Running a bare QuantizedGemm through the accelerator contract (plan, run, estimate)."""

from accelkit.driver.kinds.gemm import Gemm


def gemm_plan(accelerator, gemm):
    layer, a = Gemm.of(gemm)
    return accelerator.plan(layer, a.shape), a


def run_gemm(accelerator, device, gemm, cycle_budget=None):
    """(int8 [M, N], LayerStats) of ``gemm`` on ``device``."""
    plan, a = gemm_plan(accelerator, gemm)
    return accelerator.run(plan, device, a, cycle_budget=cycle_budget)


def estimate_gemm(accelerator, gemm, dma):
    """The cost model's cycles for ``gemm``."""
    plan, _ = gemm_plan(accelerator, gemm)
    return accelerator.estimate(plan, dma).cycles
