"""DEPTHWISE_CONV_2D semantics against LiteRT 2.3's BUILTIN_REF kernel (single-op models built without TensorFlow)."""

import numpy as np
import pytest

from accelkit.driver.kinds.depthwise_conv2d import KIND, DepthwiseConv2D
from accelkit.errors import ParameterError
from accelkit.sw.frontends.tflite.kind_models import layer_reference

from .reference_checks import rounding_verdict


def _cases(count, seed, ties=False):
    rng = np.random.default_rng(seed)
    while count:
        shape = dict(height=int(rng.integers(1, 9)), width=int(rng.integers(1, 9)), channels=int(rng.integers(1, 7)),
                     multiplier=int(rng.choice([1, 1, 2, 3])), kernel=(int(rng.integers(1, 4)), int(rng.integers(1, 4))),
                     stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                     dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                     padding=str(rng.choice(["SAME", "VALID"])),
                     activation=str(rng.choice(["NONE", "NONE", "RELU", "RELU6", "RELU_N1_TO_1"])),
                     batch=int(rng.choice([1, 1, 2])))
        layer, (x,) = KIND.random(rng, **shape)
        try:
            layer.output_shape(x.shape)
        except ParameterError:      # VALID with a kernel larger than the input: no output
            continue
        if ties:
            # Power-of-two scales put accumulators exactly on rounding ties; small operands keep those
            # outputs away from the clamp, where the modes would agree.
            layer.input_scale, layer.filter_scales = 2.0 ** -6, np.full(layer.out_channels, 2.0 ** -7)
            layer.output_scale = 2.0 ** (-13 + int(rng.integers(2, 6)))
            layer.activation = "NONE"
            layer.filters = rng.integers(-8, 9, size=layer.filters.shape).astype(np.int8)
            layer.bias = rng.integers(-40, 41, size=layer.out_channels)
            x = np.clip(layer.input_zero_point + rng.integers(-6, 7, size=x.shape), -128, 127).astype(np.int8)
        count -= 1
        yield layer, x


def test_random_layers_match_builtin_ref():
    mismatches = []
    for index, (layer, x) in enumerate(_cases(60, seed=21)):
        expected = layer_reference(layer, x)
        assert len(np.unique(expected)) > 1 or expected.size < 4, f"case {index}: degenerate output"
        if not np.array_equal(layer.reference(x), expected):
            mismatches.append(index)
    assert not mismatches, f"seed 21: cases {mismatches} differ from BUILTIN_REF"


def test_per_tensor_weights_and_no_bias_match_builtin_ref():
    mismatches = []
    for index, (layer, x) in enumerate(_cases(16, seed=22)):
        layer.filter_scales = float(layer.filter_scales[0])
        if index % 2:
            layer.bias = None
        if not np.array_equal(layer.reference(x), layer_reference(layer, x)):
            mismatches.append(index)
    assert not mismatches, f"seed 22: cases {mismatches} differ from BUILTIN_REF"


def test_requantization_is_double_rounding():
    """On ties where single rounding or float requantization would give another output, BUILTIN_REF agrees with ours."""
    decisive = agree = 0
    for layer, x in _cases(30, seed=23, ties=True):
        expected, ours = layer_reference(layer, x), layer.reference(x)
        patches, _ = layer.patches(x)
        kh, kw = layer.kernel
        w = layer.filters.reshape(kh * kw, layer.in_channels, layer.multiplier).astype(np.int64)
        acc = np.einsum("mtc,tcj->mcj", patches.astype(np.int64) - layer.input_zero_point, w)
        bias, scale, lo, hi = layer.requant()
        acc = acc.reshape(patches.shape[0], -1) + bias
        d, a = rounding_verdict(acc, scale, layer.output_zero_point, lo, hi, expected.reshape(acc.shape),
                                ours.reshape(acc.shape))
        decisive, agree = decisive + d, agree + a
    print(f"{decisive} decisive outputs")
    assert decisive > 20, "too few rounding ties: the test cannot tell the modes apart"
    assert agree == decisive


@pytest.mark.parametrize("group", [1, 2, 3, 8])
def test_group_lowering_is_exact(group):
    rng = np.random.default_rng(24)
    for _ in range(4):
        layer, (x,) = KIND.random(rng, height=6, width=5, channels=int(rng.integers(1, 8)),
                                   multiplier=int(rng.integers(1, 3)), stride=2, padding="SAME")
        gemms, shape = layer.lower(x, group)
        out = np.zeros((shape[0] * shape[1] * shape[2], shape[3]), np.int8)
        for first, gemm in gemms:
            out[:, first:first + gemm.shape[1]] = gemm.reference()
        assert np.array_equal(out.reshape(shape), layer.reference(x))


def test_bad_layers_raise_parameter_errors():
    filters = np.zeros((1, 3, 3, 4), np.int8)
    common = dict(bias=None, input_scale=0.1, input_zero_point=0, filter_scales=0.1, output_scale=0.1,
                  output_zero_point=0)
    with pytest.raises(ParameterError, match="multiple of the depth multiplier 3"):
        DepthwiseConv2D(filters=filters, multiplier=3, **common)
    with pytest.raises(ParameterError, match=r"\[1, KH, KW, C\*multiplier\]"):
        DepthwiseConv2D(filters=np.zeros((2, 3, 3, 4), np.int8), **common)
    layer = DepthwiseConv2D(filters=filters, multiplier=2, **common)
    with pytest.raises(ParameterError, match="does not match 2 input channels"):
        layer.reference(np.zeros((1, 4, 4, 3), np.int8))
