"""The BFP accelerator: bit-exact integer block sums and cycle-exact cost model, every format, one design."""

import numpy as np
import pytest

from accelkit.accelerators.bfp import BfpAccelerator, BfpCore, HW_FORMATS
from accelkit.accelerators.bfp.driver import golden_sums, pack_job
from accelkit.driver.device import DmaTiming
from accelkit.driver.ggml import dequantize, get_format, random_blocks
from accelkit.driver.kinds import get_kind
from accelkit.driver.kinds.block_matmul import BlockMatMul
from accelkit.errors import ParameterError, UnsupportedLayer
from accelkit.sw.execution.executors import open_executor

#: the one small design every test builds (shared through the build cache)
TINY = dict(lanes=16, data_width=64, act_depth=256)

# (format, rows, K, tokens): K = 512 is 32 activation words, so 10 tokens take two jobs
CASES = [("Q4_0", 3, 64, 1), ("Q2_K", 2, 256, 1), ("Q8_0", 2, 96, 3), ("Q3_K", 2, 512, 2), ("Q4_0", 4, 512, 10),
         ("Q2_K", 1, 512, 4), ("Q3_K", 3, 256, 1), ("Q8_0", 1, 32, 1)]


def _layer(rng, fmt, n, k, quantizer="ref"):
    spec = get_format(fmt)
    return BlockMatMul(fmt, random_blocks(spec, rng, n * k // spec.block).reshape(n, -1), k, quantizer=quantizer)


def _check_device(backend, dma, cases):
    accelerator = BfpAccelerator(**TINY)
    rng = np.random.default_rng(11)
    with open_executor(accelerator, backend, dma) as executor:
        for fmt, n, k, m in cases:               # one design, formats switched job by job
            layer = _layer(rng, fmt, n, k)
            x = rng.standard_normal((m, k)).astype(np.float32) * 2
            plan = accelerator.plan(layer, x.shape)
            out, stats, (isum, msum) = accelerator.run_sums(plan, executor.device, x)
            a, _ = layer.quantize(x)
            expected = golden_sums(plan, a)
            np.testing.assert_array_equal(isum, expected[0], err_msg=f"{fmt} {n}x{k} m={m}")
            np.testing.assert_array_equal(msum, expected[1], err_msg=f"{fmt} {n}x{k} m={m}")
            np.testing.assert_array_equal(out, accelerator.golden(plan, x))
            assert stats.cycles == accelerator.estimate(plan, dma).cycles, (fmt, n, k, m, dma)


@pytest.mark.parametrize("dma", [DmaTiming(), DmaTiming(3, 2)], ids=["8B", "3B-lat2"])
def test_verilator_bit_exact_and_cycle_exact(dma):
    _check_device("verilator", dma, CASES)


def test_amaranth_bit_exact_and_cycle_exact():
    _check_device("amaranth", DmaTiming(16, 1), CASES[:4])


def test_model_backend_is_the_golden_and_the_cost_model():
    accelerator = BfpAccelerator(**TINY)
    rng = np.random.default_rng(12)
    layer = _layer(rng, "Q3_K", 2, 256)
    x = rng.standard_normal((2, 256)).astype(np.float32)
    plan = accelerator.plan(layer, x.shape)
    with open_executor(accelerator, "model", DmaTiming()) as executor:
        out, stats = executor.run(plan, x)
    np.testing.assert_array_equal(out, layer.reference(x))
    assert stats.cycles == accelerator.estimate(plan, DmaTiming()).cycles > 0


def test_golden_is_ggml_semantics_close_to_the_float_product():
    rng = np.random.default_rng(13)
    for fmt in HW_FORMATS:
        layer = _layer(rng, fmt, 4, 256)
        x = rng.standard_normal((3, 256)).astype(np.float32)
        exact = x @ dequantize(layer.spec, layer.weights, (4, 256)).T
        accelerator = BfpAccelerator(**TINY)
        got = accelerator.golden(accelerator.plan(layer, x.shape), x)
        assert np.abs(got - exact).max() <= 0.03 * np.abs(exact).max() + 1e-6, fmt


def test_blocks_are_packed_across_beats():
    layer = _layer(np.random.default_rng(14), "Q4_0", 3, 64)      # 6 blocks of 18 bytes = 108 bytes
    accelerator = BfpAccelerator(**TINY)
    plan = accelerator.plan(layer, (1, 64))
    codes = np.zeros((1, 64), np.int8)
    stream = pack_job(plan, codes, 0, 1, 8)
    assert stream.size == 64 + 112                     # 108 weight bytes padded once to whole beats, not 6 x 24
    np.testing.assert_array_equal(stream[64:64 + 108], layer.weights.reshape(-1))


def test_cost_model_is_near_the_weight_stream_bound_for_one_token():
    accelerator = BfpAccelerator(lanes=32, data_width=64, act_depth=1024)
    rng = np.random.default_rng(15)
    for fmt in HW_FORMATS:
        layer = _layer(rng, fmt, 64, 512)
        stats = accelerator.estimate(accelerator.plan(layer, (1, 512)), DmaTiming())
        bound = layer.weights.size / 8
        assert bound <= stats.cycles <= 1.25 * bound + 200, (fmt, stats.cycles, bound)


def test_unsupported_layers_and_parameters_are_clear():
    accelerator = BfpAccelerator(**TINY)
    rng = np.random.default_rng(16)
    with pytest.raises(UnsupportedLayer, match="takes Q8_0, Q4_0, Q2_K, Q3_K weights, not Q6_K"):
        accelerator.plan(_layer(rng, "Q6_K", 1, 256), (1, 256))
    with pytest.raises(UnsupportedLayer, match="more than act_depth=256"):
        accelerator.plan(_layer(rng, "Q4_0", 1, 8192), (1, 8192))
    gemm, (x,) = get_kind("gemm").random(rng, m=2, n=3, k=4)
    with pytest.raises(UnsupportedLayer, match=r"bfp does not run gemm layers \(it runs block_matmul\)"):
        accelerator.plan(gemm, x.shape)
    with pytest.raises(ParameterError, match="lanes must be"):
        BfpAccelerator(lanes=8)
    with pytest.raises(ParameterError, match="data_width"):
        BfpAccelerator(lanes=32, data_width=128)
    with pytest.raises(ParameterError, match="a beat of 16 bytes writes two used bytes to one column"):
        BfpCore(lanes=32, data_width=128)
    with pytest.raises(ParameterError, match="K=48 is not a multiple of the Q4_0 block of 32"):
        BlockMatMul("Q4_0", np.zeros((1, 36), np.uint8), 48)


@pytest.mark.parametrize("seed", range(3))
def test_cost_model_period_skipping_equals_the_block_by_block_walk(seed):
    from accelkit.accelerators.bfp.cost import _JobTimeline
    rng = np.random.default_rng(seed)
    skipped = 0
    for _ in range(40):
        spec = get_format(str(rng.choice(HW_FORMATS)))
        lanes = int(rng.choice([16, 32]))
        data_width = int(rng.choice([w for w in (32, 64, 128, 256) if w <= 8 * lanes]))
        tokens = int(rng.choice([1, 1, 2, 3, 9]))
        shape = (lanes, data_width, spec.block, spec.block_bytes, tokens, tokens * int(rng.integers(1, 20)),
                 int(rng.choice([1, 2, 3, 8, 16])), int(rng.choice([0, 2, 13])))
        blocks = int(rng.choice([1, 5, 40, 700]))
        timeline = _JobTimeline(*shape)
        walked = timeline.cycles(blocks, periodic=False)
        assert timeline.cycles(blocks) == walked, (shape, blocks)
        skipped += timeline.skipped
    assert skipped > 1000     # most long jobs skipped periods
