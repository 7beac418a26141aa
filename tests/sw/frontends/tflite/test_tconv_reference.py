"""TRANSPOSE_CONV semantics against LiteRT 2.3's BUILTIN_REF kernel (models built without TensorFlow)."""

import numpy as np
import pytest


from accelkit.driver.kinds.tconv import TransposeConv2D, transpose_conv_padding   # noqa: E402
from accelkit.driver.quant import ACTIVATIONS, FLOAT, requantize                # noqa: E402
from accelkit.errors import ParameterError                                       # noqa: E402
from accelkit.sw.verification.random_layers import random_tconv                               # noqa: E402
from accelkit.sw.frontends.tflite.tconv_model import layer_reference                              # noqa: E402


def _cases(count, seed):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        kernel, stride = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        padding = str(rng.choice(["SAME", "VALID"]))
        activation = str(rng.choice(ACTIVATIONS)) if rng.random() < 0.3 else "NONE"
        h, w = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        size = None
        if rng.random() < 0.3:     # any output size TFLite accepts for this input, not only TensorFlow's
            low = (lambda n: (n - 1) * stride + 1) if padding == "SAME" else (lambda n: n * stride + kernel - stride)
            size = tuple(max(1, low(n)) + int(rng.integers(0, stride)) for n in (h, w))
        yield random_tconv(rng, int(rng.integers(1, 3)), h, w, int(rng.integers(1, 6)), int(rng.integers(1, 6)),
                           kernel, stride, padding, activation, "large" if rng.random() < 0.2 else "random",
                           bool(rng.random() < 0.3), output_size=size)


def test_per_tensor_weights_and_no_bias_match_builtin_ref():
    mismatches = []
    for index, (layer, x) in enumerate(_cases(20, seed=13)):
        layer.filter_scales = float(layer.filter_scales[0])
        if index % 2:
            layer.bias = None
        if not np.array_equal(layer.reference(x), layer_reference(layer, x)):
            mismatches.append(index)
    assert not mismatches


def _single_rounding(acc, multiplier, shift):
    total = 31 - shift
    return (acc * multiplier + (1 << (total - 1))) >> total


def test_golden_and_zero_insertion_match_builtin_ref():
    mismatches = []
    for index, (layer, x) in enumerate(_cases(80, seed=11)):
        expected = layer_reference(layer, x)
        conv, inserted = layer.zero_insertion_conv(x)
        if not np.array_equal(layer.reference(x), expected) or not np.array_equal(conv.reference(inserted), expected):
            mismatches.append(index)
    assert not mismatches


def test_requantization_is_double_rounding():
    """Pin the rounding mode on outputs where double rounding, single rounding and float disagree."""
    decisive = double_agrees = 0
    for layer, x in _cases(80, seed=12):
        expected = layer_reference(layer, x).astype(np.int64)
        bias, scale, multiplier, shift, lo, hi = layer.requant()
        acc = layer.accumulate(x) + bias
        single = np.clip(_single_rounding(acc, multiplier, shift) + layer.output_zero_point, lo, hi)
        floated = requantize(acc, 0, layer.output_zero_point, lo, hi, rounding=FLOAT, scale=scale).astype(np.int64)
        double = layer.reference(x).astype(np.int64)
        differs = (single != double) | (floated != double)
        decisive += int(differs.sum())
        double_agrees += int((expected[differs] == double[differs]).sum())
    assert decisive > 0, "no rounding-tie case: the test cannot tell the modes apart"
    assert double_agrees == decisive


def test_padding_follows_tflite():
    assert transpose_conv_padding(8, 3, 2, "SAME") == 0
    assert transpose_conv_padding(8, 4, 2, "SAME") == 1
    assert transpose_conv_padding(9, 3, 2, "VALID") == 0
    assert transpose_conv_padding(7, 4, 2, "SAME") == 1       # odd total: the extra pixel is cropped at the end


def test_bad_layers_raise_parameter_errors():
    filters = np.zeros((4, 3, 3, 2), np.int8)
    common = dict(bias=None, input_scale=0.1, input_zero_point=0, filter_scales=np.ones(4), output_scale=0.1,
                  output_zero_point=0)
    with pytest.raises(ParameterError, match="does not match"):
        TransposeConv2D(filters=filters, output_shape=(1, 4, 4, 5), **common)
    with pytest.raises(ParameterError, match="stride"):
        TransposeConv2D(filters=filters, output_shape=(1, 4, 4, 4), stride=(0, 1), **common)
    layer = TransposeConv2D(filters=filters, output_shape=(1, 4, 4, 4), **common)
    with pytest.raises(ParameterError, match="input shape"):
        layer.reference(np.zeros((1, 2, 2, 3), np.int8))
    with pytest.raises(ParameterError, match="needs an input height of 4"):
        layer.reference(np.zeros((1, 3, 4, 2), np.int8))
