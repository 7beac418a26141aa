"""The llama.cpp comparison's pieces that need no llama.cpp: statistics, bounds, and the absent-module path."""

import numpy as np
import pytest

from accelkit.sw.llm import reference
from accelkit.sw.llm.reference import LlamaCppError, agreement, calibrated_bounds, within_bounds
from accelkit.sw.llm.tiny import TINY_PATH


def test_agreement_of_identical_and_shifted_logits():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 50)).astype(np.float32)
    same = agreement(a, a + 3.0)             # a constant shift changes no probability
    assert same["top1_agreement"] == 1.0 and abs(same["mean_kl"]) < 1e-12
    b = a.copy()
    b[0, a[0].argmax()] -= 10                 # one position's top token demoted
    found = agreement(a, b)
    assert found["top1_agreement"] == pytest.approx(5 / 6) and found["mean_kl"] > 0
    assert found["max_kl"] == pytest.approx(found["mean_kl"] * 6)


def test_bounds_follow_the_spread_with_floors():
    bounds = calibrated_bounds({"top1_agreement": 0.9, "mean_kl": 1e-3})
    assert bounds == {"max_mean_kl": pytest.approx(5e-3), "min_top1_agreement": pytest.approx(0.5)}
    assert calibrated_bounds({"top1_agreement": 1.0, "mean_kl": 0.0}) == \
        {"max_mean_kl": reference.KL_FLOOR, "min_top1_agreement": pytest.approx(1 - reference.TOP1_FLOOR)}
    assert within_bounds({"top1_agreement": 0.6, "mean_kl": 4e-3}, bounds)
    assert not within_bounds({"top1_agreement": 0.4, "mean_kl": 4e-3}, bounds)
    assert not within_bounds({"top1_agreement": 1.0, "mean_kl": 6e-3}, bounds)


def test_without_llama_cpp_the_comparison_says_so(monkeypatch):
    monkeypatch.setattr(reference, "llama_cpp_module", lambda: None)
    with pytest.raises(LlamaCppError, match="not installed"):
        reference.LlamaCpp(TINY_PATH)
    from accelkit.sw.benchmarks import llm
    monkeypatch.setattr(llm, "llama_cpp_module", lambda: None)
    assert llm.llama_cpp_comparison(TINY_PATH, [1, 2], [3]) is None
    assert "not installed" in llm.LLAMA_CPP_MISSING
