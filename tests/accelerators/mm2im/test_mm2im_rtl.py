"""The MM2IM core on Verilator: bit-exact against the TRANSPOSE_CONV reference, cycles equal to the cost model."""

import numpy as np
import pytest

from accelkit.accelerators.base import get_accelerator
from accelkit.accelerators.mm2im import Mm2imAccelerator
from accelkit.accelerators.mm2im.driver import plan_layer
from accelkit.driver.device import DmaTiming
from accelkit.driver.kinds import get_kind
from accelkit.driver.quant import ACTIVATIONS
from accelkit.errors import ParameterError, UnsupportedLayer
from accelkit.sw.execution.devices import open_device
from accelkit.sw.execution.executors import open_executor
from accelkit.sw.verification.random_layers import random_conv2d, random_tconv

# One tiny design (2 input-channel lanes, 3 output-channel lanes, 32-bit stream, a 32-word accumulation
# buffer so layers split into several bands), built once.
TINY = dict(rows=2, cols=3, data_width=32, w_depth=64, in_depth=16, acc_depth=32)


@pytest.fixture(scope="module")
def tiny():
    accelerator = Mm2imAccelerator(**TINY)
    devices = {}

    def get(dma):
        if dma not in devices:
            devices[dma] = open_device(accelerator, "verilator", dma)
        return devices[dma]

    yield accelerator, get
    for device in devices.values():
        device.close()


def _random_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kernel, stride = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        layer, x = random_tconv(rng, int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 5)),
                                int(rng.integers(1, 6)), int(rng.integers(1, 8)), kernel, stride,
                                str(rng.choice(["SAME", "VALID"])),
                                str(rng.choice(ACTIVATIONS)) if rng.random() < 0.3 else "NONE",
                                "large" if rng.random() < 0.2 else "random", bool(rng.random() < 0.2))
        cases.append((layer, x))
    return cases


def _edge_cases():
    rng = np.random.default_rng(5)
    return [
        # K=1, stride 3: output rows that no input reaches, so some bands stream no input row at all
        random_tconv(rng, 1, 4, 4, 3, 4, 1, 3, "SAME"),
        # a kernel larger than the stride, VALID (the whole scatter lands in the output)
        random_tconv(rng, 1, 3, 2, 5, 7, 4, 1, "VALID"),
        # saturating outputs and extreme zero points
        random_tconv(rng, 1, 3, 3, 4, 3, 3, 2, "SAME", zero_points="large", narrow=True),
        # an output size TFLite accepts but TensorFlow would not pick (odd crop)
        random_tconv(rng, 1, 3, 3, 2, 2, 3, 2, "SAME", output_size=(5, 6)),
    ]


@pytest.mark.parametrize("dma", [DmaTiming(4, 0), DmaTiming(2, 3), DmaTiming(8, 5)], ids=str)
def test_rtl_bit_exact_and_cycle_exact(tiny, dma):
    accelerator, get = tiny
    device = get(dma)
    failures = []
    for index, (layer, x) in enumerate(_random_cases(12, seed=dma.bytes_per_cycle) + _edge_cases()):
        out, stats = accelerator.run(accelerator.plan(layer, x.shape), device, x)
        estimated = accelerator.estimate(accelerator.plan(layer, x.shape), dma).cycles
        if not np.array_equal(out, layer.reference(x)) or stats.cycles != estimated:
            failures.append((index, stats.cycles, estimated))
    assert not failures


def test_edge_cases_exercise_empty_bands_and_several_bands():
    accelerator = Mm2imAccelerator(**TINY)
    empty, bands = False, False
    for layer, x in _edge_cases():
        jobs = plan_layer(layer, x.shape, accelerator.params)
        empty |= any(job.in_rows == 0 for job in jobs)
        bands |= len({job.oy0 for job in jobs}) > 1
    assert empty and bands


def test_array_does_only_effective_work(tiny):
    """The MACs the array issues are exactly the effective ones, padded to the lanes: no cropped tap is computed."""
    accelerator, get = tiny
    rng = np.random.default_rng(9)
    layer, x = random_tconv(rng, 1, 4, 4, 2, 3, 3, 2, "SAME")   # Cin = rows, Cout = cols: no lane padding
    _, stats = accelerator.run(accelerator.plan(layer, x.shape), get(DmaTiming(4, 0)), x)
    assert stats.array_macs == layer.effective_macs(x.shape) < stats.extra["zero_insertion_macs"]
    assert stats.extra["ineffectual_macs_avoided"] == stats.extra["zero_insertion_macs"] - stats.macs


def test_model_backend_matches_the_rtl(tiny):
    accelerator, get = tiny
    dma = DmaTiming(4, 0)
    layer, x = _random_cases(1, seed=21)[0]
    with open_executor(accelerator, "model", dma) as executor:
        model_out, model_stats = executor.run_layer(layer, x)
    rtl_out, rtl_stats = accelerator.run(accelerator.plan(layer, x.shape), get(dma), x)
    assert np.array_equal(model_out, rtl_out) and model_stats.cycles == rtl_stats.cycles


def test_parameters_and_unsupported_layers():
    with pytest.raises(ParameterError, match="acc_depth must be a power of two"):
        get_accelerator("mm2im", {"acc_depth": 100})
    with pytest.raises(ParameterError, match="unknown parameter"):
        get_accelerator("mm2im", {"k_max": 16})
    accelerator = Mm2imAccelerator(**TINY)
    rng = np.random.default_rng(3)
    conv, x = random_conv2d(rng, 1, 4, 4, 2, 2, 3)
    with pytest.raises(UnsupportedLayer, match="does not run conv2d"):
        accelerator.plan(conv, x.shape)
    wide, x = random_tconv(rng, 1, 2, 20, 2, 2, 3, 2)            # a 40-pixel output row > acc_depth=32
    with pytest.raises(UnsupportedLayer, match="in_depth=16"):
        accelerator.plan(wide, x.shape)
    with pytest.raises(UnsupportedLayer, match="acc_depth=32"):
        Mm2imAccelerator(**{**TINY, "in_depth": 64}).plan(wide, x.shape)
    deep, x = random_tconv(rng, 1, 2, 2, 40, 2, 3, 2)            # 9 taps x 20 chunks > w_depth=64
    with pytest.raises(UnsupportedLayer, match="w_depth"):
        accelerator.plan(deep, x.shape)
    layer, x = random_tconv(rng, 1, 3, 3, 2, 2, 3, 2)
    with pytest.raises(UnsupportedLayer, match="needs an input height"):
        accelerator.plan(layer, (1, 4, 3, 2))
    gemm, a = get_kind("gemm").random(rng, m=4, n=4, k=4)
    with pytest.raises(UnsupportedLayer, match="mm2im does not run gemm layers .it runs tconv."):
        accelerator.plan(gemm, a[0].shape)


def test_amaranth_simulator_agrees():
    """The same core on Amaranth's simulator (no Verilator): bit-exact and cycle-exact on a small layer."""
    accelerator = Mm2imAccelerator(**TINY)
    rng = np.random.default_rng(13)
    layer, x = random_tconv(rng, 1, 2, 3, 3, 4, 3, 2, "SAME")
    with open_device(accelerator, "amaranth", DmaTiming(4, 1)) as device:
        out, stats = accelerator.run(accelerator.plan(layer, x.shape), device, x)
    assert np.array_equal(out, layer.reference(x))
    assert stats.cycles == accelerator.estimate(accelerator.plan(layer, x.shape), DmaTiming(4, 1)).cycles
