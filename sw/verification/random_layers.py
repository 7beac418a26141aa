"""Seeded random int8 layers with TFLite-style quantization parameters (for `accelkit layer` and sweeps)."""

import dataclasses

import numpy as np

from ...driver.layers import Conv2D, FullyConnected
from ...driver.quant import ROUNDINGS

__all__ = ["random_gemm", "random_conv2d", "random_fc", "random_tconv"]


def _output_scale(rng, input_scale, filter_scales, k, narrow):
    # Roughly the accumulator's spread, so most outputs land inside int8; `narrow`
    # shrinks the scale to force saturation.
    spread = input_scale * float(np.mean(filter_scales)) * 64.0 * np.sqrt(k)
    return spread / (rng.uniform(8.0, 40.0) if narrow else rng.uniform(0.5, 2.0))


def _quantization(rng, channels, k, zero_points="random", narrow=False):
    input_scale = float(rng.uniform(0.005, 0.05))
    filter_scales = rng.uniform(0.002, 0.02, channels)
    if zero_points == "large":
        input_zp, output_zp = int(rng.choice([-128, 127])), int(rng.choice([-128, 127]))
    else:
        input_zp, output_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    output_scale = _output_scale(rng, input_scale, filter_scales, k, narrow)
    bias = rng.integers(-(1 << 14), 1 << 14, channels).astype(np.int32)
    return dict(bias=bias, input_scale=input_scale, input_zero_point=input_zp, filter_scales=filter_scales,
                output_scale=output_scale, output_zero_point=output_zp)


def random_gemm(rng, m, n, k, activation="NONE", zero_points="random", narrow=False, rounding=None):
    """A random GEMM with either requantization mode (random unless ``rounding`` is given)."""
    q = _quantization(rng, n, k, zero_points, narrow)
    layer = FullyConnected(weights=rng.integers(-127, 128, (n, k), dtype=np.int8), activation=activation, **q)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    gemm, _ = layer.lower(x)
    return dataclasses.replace(gemm, rounding=rounding or str(rng.choice(ROUNDINGS)))


def random_fc(rng, batch, in_features, out_features, activation="NONE", zero_points="random", narrow=False):
    q = _quantization(rng, out_features, in_features, zero_points, narrow)
    layer = FullyConnected(weights=rng.integers(-127, 128, (out_features, in_features), dtype=np.int8),
                           activation=activation, **q)
    return layer, rng.integers(-128, 128, (batch, in_features), dtype=np.int8)


def random_conv2d(rng, batch, height, width, in_channels, out_channels, kernel, stride=1, dilation=1,
                  padding="SAME", activation="NONE", zero_points="random", narrow=False):
    q = _quantization(rng, out_channels, kernel * kernel * in_channels, zero_points, narrow)
    layer = Conv2D(filters=rng.integers(-127, 128, (out_channels, kernel, kernel, in_channels), dtype=np.int8),
                   stride=(stride, stride), dilation=(dilation, dilation), padding=padding,
                   activation=activation, **q)
    return layer, rng.integers(-128, 128, (batch, height, width, in_channels), dtype=np.int8)




def random_tconv(rng, batch, height, width, in_channels, out_channels, kernel, stride=1, padding="SAME",
                 activation="NONE", zero_points="random", narrow=False, output_size=None):
    """A random int8 TRANSPOSE_CONV and its input; the output size is TensorFlow's unless ``output_size`` is given."""
    from ...driver.layers import TransposeConv2D
    if output_size is None:
        output_size = tuple(n * stride if padding == "SAME" else n * stride + max(kernel - stride, 0)
                            for n in (height, width))
    q = _quantization(rng, out_channels, max(1, (kernel // stride) ** 2) * in_channels, zero_points, narrow)
    layer = TransposeConv2D(filters=rng.integers(-127, 128, (out_channels, kernel, kernel, in_channels), dtype=np.int8),
                            output_shape=(batch, *output_size, out_channels), stride=(stride, stride),
                            padding=padding, activation=activation, **q)
    return layer, rng.integers(-128, 128, (batch, height, width, in_channels), dtype=np.int8)
