"""The tiny llama with its quantized MatMuls on the BFP accelerator: model backend and RTL."""

import numpy as np
import pytest

from accelkit.accelerators.bfp import BfpAccelerator
from accelkit.driver.device import DmaTiming
from accelkit.sw.execution.executors import open_executor
from accelkit.sw.llm.accelerated import AcceleratorMatMul
from accelkit.sw.llm.forward import Llama
from accelkit.sw.llm.gguf_model import load_llama
from accelkit.sw.llm.tiny import TINY_PATH

TINY = dict(lanes=16, data_width=64, act_depth=256)
PROMPT = [1, 293, 514, 298, 293]


@pytest.fixture(scope="module")
def tiny():
    return load_llama(TINY_PATH)


def _generate(model, backend, tokens=3):
    accelerator = BfpAccelerator(**TINY)
    with open_executor(accelerator, backend, DmaTiming()) as executor:
        hook = AcceleratorMatMul(accelerator, executor)
        llama = Llama(model, matmul=hook)
        out = list(llama.generate(PROMPT, tokens))
    return out, hook.records


def test_model_backend_generates_what_the_host_generates(tiny):
    host = list(Llama(tiny).generate(PROMPT, 4))
    tokens, records = _generate(tiny, "model", 4)
    assert tokens == host
    offloaded = [r for r in records if r.where == "bfp"]
    on_host = [r for r in records if r.where == "host"]
    assert {r.fmt for r in offloaded} == {"Q8_0", "Q4_0", "Q2_K", "Q3_K"}
    assert {r.fmt for r in on_host} == {"Q6_K"} and "not Q6_K" in on_host[0].reason
    assert all(r.cycles > 0 and r.weight_bytes > 0 for r in offloaded)
    assert offloaded[0].tokens == len(PROMPT)           # the prompt is one batched MatMul per weight


def test_rtl_generates_what_the_model_backend_generates_cycle_for_cycle(tiny):
    tokens, records = _generate(tiny, "verilator", 2)
    expected, modelled = _generate(tiny, "model", 2)
    assert tokens == expected
    assert [(r.name, r.cycles) for r in records] == [(r.name, r.cycles) for r in modelled]

