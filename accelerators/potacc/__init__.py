"""PoTAcc: the systolic GEMM with shift PEs for power-of-two weights.

The array, buffers, streams and requantizer are the GEMM core's (see
``accelerators/gemm``); what differs is the processing element and the weight
stream. Shift columns take weights on a power-of-two grid (``terms`` = 1: PoT,
``w = sign * 2^e``; 2: APoT, ``sign * (2^e1 + 2^e2)``) as nibbles of sign and
exponent, and add shifted activations instead of products, so they contain no
multiplier. ``mult_cols`` columns keep an int8 multiplier, for the uniform
(fixed-point) rows of the mixed scheme MSQ; 0 for pure PoT/APoT designs.

The driver places each output channel in a column that can run it: channels
with any weight off the grid go to multiplier columns, the others fill the shift
columns first. A layer whose off-grid channels find no multiplier column is
declined with the reason, so the front ends leave it on the CPU.
"""

import numpy as np

from ...driver.layers import QuantizedGemm
from ...errors import UnsupportedLayer
from ..base import Param, ParamSpace
from ..gemm import GemmAccelerator
from ..gemm.pe import WeightLayout, on_shift_grid

__all__ = ["PotAccelerator", "column_plan"]


def column_plan(b, layout: WeightLayout):
    """Channel of each array column slot (``-1``: unused), tile after tile, for int8 weights ``b`` [K, N].

    Raises :class:`UnsupportedLayer` when channels off the grid have no multiplier column to go to.
    """
    n = b.shape[1]
    cols, mult = layout.cols, layout.mult_cols
    shiftable = on_shift_grid(b, layout.terms).all(axis=0)
    needs_mult = np.flatnonzero(~shiftable)
    if needs_mult.size and not mult:
        j = int(needs_mult[0])
        example = int(b[np.flatnonzero(~on_shift_grid(b[:, j], layout.terms))[0], j])
        raise UnsupportedLayer(
            f"{needs_mult.size} of {n} output channels have weights off the {layout.terms}-term power-of-two grid "
            f"(channel {j} has {example}) and this design has no multiplier columns (mult_cols=0)")
    tiles = max(-(-n // cols), -(-needs_mult.size // mult) if mult else 0)
    mult_slots = (np.arange(tiles)[:, None] * cols + np.arange(mult)[None, :]).reshape(-1)
    shift_slots = (np.arange(tiles)[:, None] * cols + np.arange(mult, cols)[None, :]).reshape(-1)
    shift_channels = np.flatnonzero(shiftable)
    # Off-grid channels take multiplier slots first; the shift slots take what is on the grid;
    # whatever is left over (there are more grid channels than shift slots) uses the free multiplier slots.
    to_shift = shift_channels[:shift_slots.size]
    to_mult = np.concatenate([needs_mult, shift_channels[shift_slots.size:]])
    plan = np.full(tiles * cols, -1, dtype=np.int64)
    plan[shift_slots[:to_shift.size]] = to_shift
    plan[mult_slots[:to_mult.size]] = to_mult
    return plan


class PotAccelerator(GemmAccelerator):
    """rows x cols output-stationary array of shift PEs (plus optional multiplier columns for MSQ)."""

    name = "potacc"
    description = "shift-PE GEMM for power-of-two weights (PoT/APoT, MSQ with multiplier columns)"
    space = ParamSpace(
        params=GemmAccelerator.space.params + (
            Param("terms", 1, 1, 2, "power-of-two terms per weight in shift columns: 1 PoT, 2 APoT/MSQ"),
            Param("mult_cols", 0, 0, 64, "int8 multiplier columns (for MSQ's uniform rows); 0 for PoT/APoT"),
        ),
        constraints=GemmAccelerator.space.constraints + (
            (lambda p: p["mult_cols"] <= p["cols"], "mult_cols ({mult_cols}) cannot exceed cols ({cols})"),),
    )

    def check(self, gemm):
        super().check(gemm)
        column_plan(gemm.b, self.layout)

    def check_layer(self, layer, input_shape):
        super().check_layer(layer, input_shape)
        weights = getattr(layer, "filters", None)
        if weights is None:
            weights = layer.weights
        column_plan(np.asarray(weights).reshape(weights.shape[0], -1).T, self.layout)

    def arranged(self, gemm):
        """(gemm with its channels placed on array columns, the column plan)."""
        plan = column_plan(gemm.b, self.layout)
        used = plan >= 0
        b = np.zeros((gemm.b.shape[0], plan.size), dtype=np.int8)
        b[:, used] = gemm.b[:, plan[used]]
        bias = np.zeros(plan.size, dtype=np.int64)
        bias[used] = gemm.bias[plan[used]]
        scale = np.full(plan.size, 0.5)
        scale[used] = gemm.scale[plan[used]]
        placed = QuantizedGemm(a=gemm.a, b=b, bias=bias, scale=scale, rounding=gemm.rounding,
                               output_zero_point=gemm.output_zero_point, act_min=gemm.act_min, act_max=gemm.act_max)
        return placed, plan

    @staticmethod
    def _described(gemm, placed, shape):
        m, n, k = gemm.shape
        described = dict(shape or {"m": m, "n": n, "k": k})
        # The array runs the placed GEMM: its column count is what the cost model needs.
        described.update(channels=n, n=placed.shape[1])
        return described

    def run_gemm(self, device, gemm, cycle_budget=None, op="gemm", shape=None):
        placed, plan = self.arranged(gemm)
        out, stats = super().run_gemm(device, placed, cycle_budget, op, self._described(gemm, placed, shape))
        result = np.zeros((gemm.shape[0], gemm.shape[1]), dtype=np.int8)
        used = plan >= 0
        result[:, plan[used]] = out[:, used]
        stats.macs = gemm.macs
        return result, stats

    def estimate(self, gemm, dma, op="gemm", shape=None):
        placed, _ = self.arranged(gemm)
        stats = self.estimate_stats(placed.shape, dma, op, self._described(gemm, placed, shape))
        stats.macs = gemm.macs
        return stats
