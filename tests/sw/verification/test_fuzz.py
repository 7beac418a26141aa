"""The fuzzing suite's CI subset, and the machinery it stands on."""

import numpy as np
import pytest

from accelkit.sw.verification.fuzz import (FAILURES, Case, classify, fuzz, model_fields, mutate_model, run_cases,
                                           set_field, field_value)
from accelkit.sw.zoo import resolve_model


def test_fields_cover_what_the_mutator_aims_at():
    data = resolve_model("transpose_mlp").read_bytes()
    fields = model_fields(data)
    categories = {f.category for f in fields}
    assert {"shape", "stride", "tensor index", "buffer index", "opcode", "quantization", "offset",
            "type"} <= categories
    stride = next(f for f in fields if f.name.endswith("options.stride_w"))
    assert field_value(data, stride) == 2
    assert field_value(set_field(data, stride, 0), stride) == 0
    assert field_value(set_field(data, stride, 1 << 40), stride) == (1 << 31) - 1     # clipped to int32


def test_mutations_are_seeded():
    data = resolve_model("digits_cnn").read_bytes()
    first = [mutate_model(data, np.random.default_rng(5))[:2] for _ in range(3)]
    again = [mutate_model(data, np.random.default_rng(5))[:2] for _ in range(3)]
    assert first == again and first[0][0] != data


def test_outcomes_are_told_apart():
    assert classify(0, False, False, "") == "success"
    assert classify(2, False, False, "accelkit: error: no") == "clean error"
    assert classify(70, False, False, "Traceback (most recent call last):\naccelkit: internal error") == \
        "internal error"
    assert classify(1, False, False, "Traceback (most recent call last):\nValueError") == "traceback"
    assert classify(None, True, False, "") == "signal"
    assert classify(None, False, True, "") == "hang"


def test_runner_sees_signals_and_hangs(tmp_path):
    # a bundled model stands in for work; the runner itself is what is under test here
    cases = [Case(["run", "digits_cnn", "--backend", "model"], "ok", timeout=60),
             Case(["run", "digits_cnn", "--backend", "model", "--limit", "0"], "refused", timeout=60)]
    outcomes = run_cases(cases, workers=2)
    assert [o.kind for o in outcomes] == ["success", "clean error"]


def test_ci_subset_has_no_traceback_signal_or_hang():
    """200 mutated models (both front ends) and 100 command lines: success or a clean error only."""
    result = fuzz(models=200, cli=100, seed=2026, workers=2)
    for campaign, summary in result.items():
        failures = summary["failures"]
        assert not failures, f"{campaign}: " + "\n\n".join(
            f"{f['kind']}: accelkit {' '.join(f['argv'])} ({f['what']})\n{f['stderr_tail']}" for f in failures[:5])
        assert sum(summary["outcomes"][k] for k in FAILURES) == 0
    assert result["models"]["cases"] == 200 and result["cli"]["cases"] == 100
    hit = set(result["models"]["by_category"])
    assert {"shape", "stride", "tensor index", "quantization", "byte flip", "truncation"} <= hit
    # every command a user can mistype reaches the campaign, the newer ones too
    assert {"run", "layer block_matmul", "llm", "dse", "export", "replay", "resources", "bench"} <= set(
        result["cli"]["by_category"])
