"""The golden semantics (and the RTL) against LiteRT's reference kernels on single-op int8 models.

The models are written without TensorFlow (tests/support/tflite_single_op.py).
"""

import numpy as np
import pytest


from accelkit.driver.device import DmaTiming                       # noqa: E402
from accelkit.driver.quant import ACTIVATIONS                     # noqa: E402
from accelkit.sw.verification.random_layers import random_conv2d, random_fc    # noqa: E402
from tflite_single_op import conv2d_model, fully_connected_model, run_reference  # noqa: E402
from tests_params import SMALL_PARAMS                              # noqa: E402


def _conv_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kernel, cin = int(rng.choice([1, 2, 3])), int(rng.integers(1, 5))
        stride, dilation = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        padding, activation = str(rng.choice(["SAME", "VALID"])), str(rng.choice(ACTIVATIONS))
        h, w = int(rng.integers(kernel * dilation, 9)), int(rng.integers(kernel * dilation, 9))
        layer, x = random_conv2d(rng, 1, h, w, cin, int(rng.integers(1, 7)), kernel, stride, dilation, padding,
                                 activation, "large" if rng.random() < 0.2 else "random", bool(rng.random() < 0.3))
        cases.append((layer, x))
    return cases


def _fc_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        layer, x = random_fc(rng, int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 12)),
                             str(rng.choice(ACTIVATIONS)), "large" if rng.random() < 0.2 else "random",
                             bool(rng.random() < 0.3))
        if rng.random() < 0.3:
            layer.filter_scales = float(layer.filter_scales[0])   # per-tensor weights
        cases.append((layer, x))
    return cases


def _conv_reference(layer, x):
    model = conv2d_model(input_shape=x.shape, filters_int8=layer.filters, bias_int32=layer.bias,
                         input_scale=layer.input_scale, input_zero_point=layer.input_zero_point,
                         filter_scales=layer.filter_scales, output_scale=layer.output_scale,
                         output_zero_point=layer.output_zero_point, stride=layer.stride, padding=layer.padding,
                         dilation=layer.dilation, activation=layer.activation)
    return run_reference(model, x)


def _fc_reference(layer, x):
    model = fully_connected_model(input_shape=x.shape, weights_int8=layer.weights, bias_int32=layer.bias,
                                  input_scale=layer.input_scale, input_zero_point=layer.input_zero_point,
                                  weight_scales=layer.filter_scales, output_scale=layer.output_scale,
                                  output_zero_point=layer.output_zero_point, activation=layer.activation)
    return run_reference(model, x)


def test_conv_golden_matches_builtin_ref():
    mismatches = []
    for index, (layer, x) in enumerate(_conv_cases(60, seed=1)):
        expected, got = _conv_reference(layer, x), layer.reference(x)
        if not np.array_equal(expected, got):
            mismatches.append((index, int(np.abs(expected.astype(int) - got).max())))
    assert not mismatches


def test_fc_golden_matches_builtin_ref():
    mismatches = []
    for index, (layer, x) in enumerate(_fc_cases(60, seed=2)):
        expected, got = _fc_reference(layer, x), layer.reference(x)
        if not np.array_equal(expected, got):
            mismatches.append((index, int(np.abs(expected.astype(int) - got).max())))
    assert not mismatches


def test_rtl_matches_builtin_ref(device_pool):
    accelerator, device = device_pool(SMALL_PARAMS, "verilator", DmaTiming(8, 0))
    for layer, x in _conv_cases(10, seed=3):
        out, _ = accelerator.run(accelerator.plan(layer, x.shape), device, x)
        assert np.array_equal(out, _conv_reference(layer, x))
    for layer, x in _fc_cases(10, seed=4):
        out, _ = accelerator.run(accelerator.plan(layer, x.shape), device, x)
        assert np.array_equal(out, _fc_reference(layer, x))


def test_tie_cases_follow_each_kernel():
    """Accumulators on exact halves, where the two requantization modes disagree."""
    from accelkit.driver.kinds.conv2d import Conv2D
    from accelkit.driver.kinds.fc import FullyConnected
    # CONV_2D: 1x1 kernel, one tap: acc = (x - zp) * w; scale 0.375 makes 281 -> 105.375.
    conv = Conv2D(filters=np.array([[[[1]]]], np.int8), bias=np.array([281 - 100], np.int32), input_scale=0.375,
                  input_zero_point=0, filter_scales=np.array([0.0625]), output_scale=0.0625, output_zero_point=-2)
    x = np.full((1, 1, 1, 1), 100, np.int8)
    assert np.array_equal(conv.reference(x), _conv_reference(conv, x))
    assert int(conv.reference(x)[0, 0, 0, 0]) == 104
    # FULLY_CONNECTED: -9600 * 2^-8 = -37.5 exactly: the float kernel rounds away from zero.
    fc = FullyConnected(weights=np.array([[100]], np.int8), bias=np.array([-9600 + 9600], np.int32),
                        input_scale=0.15625, input_zero_point=0, filter_scales=np.array([0.03125]),
                        output_scale=1.25, output_zero_point=9)
    x = np.array([[-96]], np.int8)
    assert np.array_equal(fc.reference(x), _fc_reference(fc, x))
    assert int(fc.reference(x)[0, 0]) == 9 - 38
    # acc = 61277 at scale 0.005958884759581489 * 1.75 / 6 = 17.87249...: 106.49992 rounds to
    # 106 in float; the fixed-point double rounding would give 107.
    fc = FullyConnected(weights=np.array([[1]], np.int8), bias=np.array([61277], np.int32),
                        input_scale=0.005958884759581489, input_zero_point=0, filter_scales=np.array([1.75]),
                        output_scale=6.0, output_zero_point=4)
    x = np.zeros((1, 1), np.int8)
    assert int(_fc_reference(fc, x)[0, 0]) == 110
    assert np.array_equal(fc.reference(x), _fc_reference(fc, x))
