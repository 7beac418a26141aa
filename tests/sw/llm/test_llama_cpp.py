"""accelkit's llama path against llama.cpp (llama-cpp-python 0.3.36) on the tiny model and an F32 variant.

Skips, saying so, when llama-cpp-python is not installed (it is an optional extra built from source).
"""

import numpy as np
import pytest

from optional import need_llama_cpp

need_llama_cpp()

from accelkit.accelerators.bfp import BfpAccelerator                       # noqa: E402
from accelkit.driver.device import DmaTiming                                # noqa: E402
from accelkit.sw.execution.executors import open_executor                   # noqa: E402
from accelkit.sw.llm.accelerated import AcceleratorMatMul                   # noqa: E402
from accelkit.sw.llm.forward import HostMatMul, Llama                       # noqa: E402
from accelkit.sw.llm.gguf_model import load_llama                           # noqa: E402
from accelkit.sw.llm.reference import (agreement, calibrated_bounds, combined_spread,  # noqa: E402
                                       compare_matmuls, logits, ulp_nudged, within_bounds)
from accelkit.sw.llm.tiny import TINY_PATH, write_tiny_llama                # noqa: E402

PROMPT = [1, 293, 514, 298, 293]
TINY = dict(lanes=16, data_width=64, act_depth=256)


@pytest.fixture(scope="module")
def tiny():
    return load_llama(TINY_PATH)


@pytest.fixture(scope="module")
def tiny_f32(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("f32") / "tiny_f32.gguf", float_weights=True)


def _check_nodes(rows, model):
    # every weight MatMul of the graph, once: 7 per layer and the (tied) output projection (llama.cpp's
    # graph runs them in its own order)
    assert sorted(r["name"] for r in rows) == sorted(w.name for w in model.matmul_weights())
    worst = max(rows, key=lambda r: r["relative_error"])
    assert worst["relative_error"] <= 1e-6, worst


def test_every_matmul_node_matches_the_host_path(tiny):
    rows, attention = compare_matmuls(TINY_PATH, PROMPT, HostMatMul(quantizer="avx2"), tiny)
    _check_nodes(rows, tiny)
    assert {r["format"] for r in rows} == {"Q8_0", "Q4_0", "Q2_K", "Q3_K", "Q6_K"}
    assert attention == 2 * tiny.config.n_layers          # KQ and KQV per layer are not weight MatMuls
    assert all(r["tokens"] == len(PROMPT) for r in rows)


def test_every_matmul_node_matches_the_bfp_model_backend(tiny):
    accelerator = BfpAccelerator(**TINY)
    with open_executor(accelerator, "model", DmaTiming()) as executor:
        hook = AcceleratorMatMul(accelerator, executor, quantizer="avx2")
        rows, _ = compare_matmuls(TINY_PATH, PROMPT, hook, tiny)
    _check_nodes(rows, tiny)
    assert {r.fmt for r in hook.records if r.where == "bfp"} == {"Q8_0", "Q4_0", "Q2_K", "Q3_K"}


def test_the_matmul_check_can_fail(tiny):
    """Float activations instead of ggml's quantized ones: the per-node check sees it."""
    rows, _ = compare_matmuls(TINY_PATH, PROMPT, lambda weight, x: x @ weight.dense().T, tiny)
    assert max(r["relative_error"] for r in rows) > 1e-4


def test_f32_model_matmuls_and_logits(tiny_f32):
    model = load_llama(tiny_f32)
    rows, _ = compare_matmuls(tiny_f32, PROMPT, HostMatMul(), model)
    _check_nodes(rows, model)
    assert {r["format"] for r in rows} == {"F32"}
    ids = PROMPT + [300, 301, 302, 5, 9]
    theirs = logits(tiny_f32, ids)
    ours = Llama(model).forward(ids, all_logits=True)
    assert np.abs(ours - theirs).max() <= 1e-4


@pytest.mark.parametrize("quantizer", ["avx2", "ref"])
def test_quantized_logits_agree_within_the_calibrated_spread(tiny, quantizer):
    ids = PROMPT + list(Llama(tiny).generate(PROMPT, 11))
    batched, one_by_one = logits(TINY_PATH, ids), logits(TINY_PATH, ids, batched=False)
    host = Llama(tiny, matmul=HostMatMul(quantizer=quantizer)).forward(ids, all_logits=True)
    nudged = Llama(tiny, matmul=ulp_nudged(HostMatMul(quantizer=quantizer))).forward(ids, all_logits=True)
    spread = combined_spread(agreement(batched, one_by_one), agreement(host, nudged))
    ours = agreement(batched, host)
    bounds = calibrated_bounds(spread)
    assert within_bounds(ours, bounds), (ours, spread, bounds)
    # and the bounds are tight enough to catch float activations (no ggml quantization)
    float_logits = Llama(tiny, matmul=lambda w, x: x @ w.dense().T).forward(ids, all_logits=True)
    assert not within_bounds(agreement(batched, float_logits), bounds)


def test_bench_comparison_on_the_tiny_model(tiny):
    from accelkit.sw.benchmarks.llm import llama_cpp_comparison
    generated = list(Llama(tiny).generate(PROMPT, 6))
    result = llama_cpp_comparison(TINY_PATH, PROMPT, generated, threads=(1,))
    assert result["matmuls"]["nodes"] == result["matmuls"]["nodes_within_1e-6"] == 15, result["matmuls"]
    assert result["host_avx2"]["within_bounds"] and result["host_ref"]["within_bounds"], result
    assert result["same_greedy_tokens"], result
    assert result["speed"][0]["threads"] == 1 and result["speed"][0]["tokens_per_second"] > 0
