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

import dataclasses
import json
from pathlib import Path

import numpy as np

from ...errors import ModelError, ParameterError, UnsupportedLayer
from ..base import Param, ParamSpace
from ..gemm import GemmAccelerator
from ..gemm.layout import WeightLayout, on_shift_grid, shift_grid

__all__ = ["PotAccelerator", "column_plan", "method_params", "METHODS"]

#: power-of-two quantization methods (`accelkit quantize --method`) and the designs they need
METHODS = ("pot", "apot", "msq")


def method_params(method, cols=8):
    """The shift-PE design a quantization method's weights need: terms per weight, multiplier columns."""
    if method not in METHODS:
        raise ParameterError(f"power-of-two method must be one of {', '.join(METHODS)}, not {method!r}")
    return {"terms": 1 if method == "pot" else 2, "mult_cols": -(-cols // 3) if method == "msq" else 0}


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

    # Depthwise and BATCH_MATMUL weights are not on a power-of-two grid (BATCH_MATMUL's are activations).
    kinds = ("gemm", "conv2d", "fc")
    small_params = {**GemmAccelerator.small_params, "terms": 2, "mult_cols": 1}
    plan_depends_on_weights = True     # which column each channel goes to depends on its weights

    def place_columns(self, weights):
        return column_plan(np.asarray(weights), self.layout)

    @classmethod
    def model_params(cls, model_path, params=None):
        """A model from `accelkit quantize` names its method in a side file: configure the shift PEs for it."""
        side = Path(f"{model_path}.pot.json")
        if not side.exists():
            return {}, ""
        try:
            method = json.loads(side.read_text())["method"]
        except (ValueError, KeyError, TypeError) as error:
            raise ModelError(f"{side} is not a power-of-two side file: {error}") from None
        cols = (params or {}).get("cols", cls.space.resolve({})["cols"])
        return method_params(method, cols), f"{Path(model_path).name} is {method}-quantized (side file)"

    def random_layer(self, kind, rng, **shape):
        """A random layer whose weights lie on this design's power-of-two grid (off-grid ones on multiplier columns).

        The kind's generator draws int8 weights; each output channel is then moved onto the
        shift grid, except (with multiplier columns) a random share that stays int8, as MSQ's
        fixed-point rows do.
        """
        layer, inputs = super().random_layer(kind, rng, **shape)
        weights = next(name for name in ("filters", "weights", "b") if isinstance(getattr(layer, name, None), np.ndarray))
        values = getattr(layer, weights)
        b = layer.gemm_weights().astype(np.int64)          # [K, N]
        grid = shift_grid(self.layout.terms)
        snapped = grid[np.abs(b[..., None] - grid).argmin(axis=-1)]
        keep = np.zeros(b.shape[1], dtype=bool)
        if self.layout.mult_cols:
            keep = rng.random(b.shape[1]) < 0.3
        snapped[:, keep] = b[:, keep]
        snapped = snapped.astype(np.int8)
        if weights == "b":
            new = snapped
        elif weights == "weights":
            new = snapped.T.copy()
        else:
            new = snapped.T.reshape(values.shape).copy()
        return dataclasses.replace(layer, **{weights: new}), inputs
