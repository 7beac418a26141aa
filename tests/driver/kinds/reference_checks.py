"""Rounding-mode checks shared by the kinds' BUILTIN_REF tests."""

import numpy as np

from accelkit.driver.quant import FLOAT, quantize_multiplier, requantize


def single_rounding(acc, multiplier, shift):
    """One rounding of acc * M / 2^(31 - shift), halves up (what TFLITE_SINGLE_ROUNDING builds would do)."""
    total = 31 - np.asarray(shift, np.int64)
    return (np.asarray(acc, np.int64) * multiplier + (np.int64(1) << (total - 1))) >> total


def rounding_verdict(acc, scale, zero_point, lo, hi, expected, ours):
    """(decisive outputs, of which BUILTIN_REF agrees with ours): where single rounding or float would differ."""
    multiplier, shift = quantize_multiplier(scale)
    single = np.clip(single_rounding(acc, multiplier, shift) + zero_point, lo, hi)
    floated = requantize(acc, 0, zero_point, lo, hi, rounding=FLOAT, scale=scale).astype(np.int64)
    ours = ours.astype(np.int64)
    differs = (single != ours) | (floated != ours)
    return int(differs.sum()), int((expected.astype(np.int64)[differs] == ours[differs]).sum())
