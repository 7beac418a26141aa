"""Seeded random int8 layers with TFLite-style quantization (sweeps, benchmarks and tests).

The generators of the layer kinds (``driver/kinds``) make every kind's layers;
these are the positional shorthands benchmarks and tests use, with the draw order
their recorded figures were measured with.
"""

import dataclasses

import numpy as np

from ...driver.kinds import get_kind
from ...driver.kinds.fc import FullyConnected
from ...driver.kinds.fields import random_quantization
from ...driver.quant import ROUNDINGS

__all__ = ["random_gemm", "random_conv2d", "random_fc", "random_tconv"]


def random_gemm(rng, m, n, k, activation="NONE", zero_points="random", narrow=False, rounding=None):
    """A random QuantizedGemm with either requantization mode (random unless ``rounding`` is given)."""
    q = random_quantization(rng, n, k, zero_points, narrow)
    layer = FullyConnected(weights=rng.integers(-127, 128, (n, k), dtype=np.int8), activation=activation, **q)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    gemm, _ = layer.lower(x)
    return dataclasses.replace(gemm, rounding=rounding or str(rng.choice(ROUNDINGS)))


def random_fc(rng, batch, in_features, out_features, activation="NONE", zero_points="random", narrow=False):
    layer, (x,) = get_kind("fc").random(rng, batch=batch, k=in_features, n=out_features, activation=activation,
                                        zero_points=zero_points, narrow=narrow)
    return layer, x


def random_conv2d(rng, batch, height, width, in_channels, out_channels, kernel, stride=1, dilation=1,
                  padding="SAME", activation="NONE", zero_points="random", narrow=False):
    layer, (x,) = get_kind("conv2d").random(rng, batch=batch, height=height, width=width, in_channels=in_channels,
                                            out_channels=out_channels, kernel=kernel, stride=stride,
                                            dilation=dilation, padding=padding, activation=activation,
                                            zero_points=zero_points, narrow=narrow)
    return layer, x


def random_tconv(rng, batch, height, width, in_channels, out_channels, kernel, stride=1, padding="SAME",
                 activation="NONE", zero_points="random", narrow=False, output_size=None):
    """A random int8 TRANSPOSE_CONV and its input; the output size is TensorFlow's unless ``output_size`` is given."""
    layer, (x,) = get_kind("tconv").random(rng, batch=batch, height=height, width=width, in_channels=in_channels,
                                           out_channels=out_channels, kernel=kernel, stride=stride, padding=padding,
                                           activation=activation, zero_points=zero_points, narrow=narrow,
                                           output_size=output_size)
    return layer, x
