"""How gemm plans a depthwise layer: channel groups chosen by the cost model, and what that costs."""

import numpy as np

from accelkit.accelerators.gemm import GemmAccelerator, cost
from accelkit.driver.device import DmaTiming
from accelkit.driver.kinds import get_kind

DMA = DmaTiming(8, 0)


def _cycles(accelerator, layer, shape, group):
    return sum(cost.gemm_cycles(accelerator.params, layer.group_gemm_shape(shape, count), DMA)
               for _, count in layer.groups(group))


def test_plan_takes_the_cheapest_group_size():
    accelerator = GemmAccelerator()
    kind = get_kind("depthwise_conv2d")
    rng = np.random.default_rng(41)
    for height, channels, multiplier in ((20, 24, 1), (9, 40, 1), (12, 6, 2), (7, 3, 3)):
        layer, (x,) = kind.random(rng, height=height, width=height, channels=channels, multiplier=multiplier)
        plan = accelerator.plan(layer, x.shape)
        chosen = plan.schedule["group_channels"]
        alternatives = range(1, min(8 // multiplier, channels) + 1)
        assert _cycles(accelerator, layer, x.shape, chosen) <= min(_cycles(accelerator, layer, x.shape, g)
                                                                   for g in alternatives if g & (g - 1) == 0)
        assert accelerator.estimate(plan, DMA).cycles == _cycles(accelerator, layer, x.shape, chosen)


def test_depthwise_utilization_is_bounded_by_the_useful_share_of_a_block_diagonal_gemm():
    """A group's GEMM fills at most one column tile, and in it only one product per output channel and step
    is useful: utilization <= multiplier / cols; loading A, not hidden behind compute, takes about half the rest."""
    accelerator = GemmAccelerator()
    cols = accelerator.params["cols"]
    for multiplier in (1, 2):
        layer, (x,) = get_kind("depthwise_conv2d").random(np.random.default_rng(42), height=28, width=28,
                                                          channels=32, multiplier=multiplier)
        stats = accelerator.estimate(accelerator.plan(layer, x.shape), DMA)
        assert stats.macs * cols == stats.array_macs * multiplier
        assert 0.4 * multiplier / cols < stats.utilization <= 0.6 * multiplier / cols
