import numpy as np
import pytest

from accelkit.driver.layers import conv_output_size, im2col
from accelkit.driver.quant import activation_range, multiply_by_quantized_multiplier, quantize_multiplier
from accelkit.errors import ParameterError


def test_quantize_multiplier_matches_frexp_convention():
    multiplier, shift = quantize_multiplier(0.75)
    assert (int(multiplier), int(shift)) == (round(0.75 * (1 << 31)), 0)
    multiplier, shift = quantize_multiplier(np.array([0.001, 1.5]))
    assert np.all(multiplier >= 1 << 30) and np.all(multiplier < 1 << 31)
    assert np.allclose(multiplier * 2.0 ** (shift.astype(float) - 31), [0.001, 1.5], rtol=1e-9)


def test_single_rounding_rounds_half_up():
    # 3 * 2^30 / 2^31 = 1.5 rounds to 2; -1.5 rounds to -1 (add half, floor).
    assert multiply_by_quantized_multiplier(3, 1 << 30, 0) == 2
    assert multiply_by_quantized_multiplier(-3, 1 << 30, 0) == -1


def test_bad_scales_and_activations_refused():
    with pytest.raises(ParameterError, match="positive finite"):
        quantize_multiplier(-1.0)
    with pytest.raises(ParameterError, match="fused activation must be one of"):
        activation_range("TANH", 0.1, 0)


def test_relu6_range():
    assert activation_range("RELU6", 0.05, -10) == (-10, 110)


def test_im2col_same_padding_uses_pad_value():
    x = np.arange(1 * 3 * 3 * 1, dtype=np.int8).reshape(1, 3, 3, 1)
    patches, (n, oh, ow) = im2col(x, (3, 3), (1, 1), (1, 1), "SAME", pad_value=-7)
    assert (oh, ow) == (3, 3)
    assert patches[0].tolist() == [-7, -7, -7, -7, 0, 1, -7, 3, 4]
    assert conv_output_size(7, 3, 2, 2, "VALID") == 2
