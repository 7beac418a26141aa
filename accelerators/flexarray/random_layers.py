"""Seeded random layers in flexarray's domain (the contract's ``random_layer``): GEMM, FULLY_CONNECTED,
CONV_2D, DEPTHWISE_CONV_2D and weight-sparse GEMM, small enough for RTL."""

import numpy as np

from ...driver.kinds import get_kind
from ...driver.quant import ACTIVATIONS
from ...errors import ParameterError
from ...driver.kinds.fields import random_quantization
from ...sw.verification import random_layers as shared
from ...driver.kinds.depthwise_conv2d import DepthwiseConv2D

__all__ = ["KINDS", "random_layer", "random_depthwise"]

KINDS = ("gemm", "fc", "conv2d", "depthwise_conv2d", "sparse_gemm")


def random_depthwise(rng, batch, height, width, channels, kernel, stride=1, dilation=1, padding="SAME",
                     depth_multiplier=1, activation="NONE"):
    """A random int8 DEPTHWISE_CONV_2D and its input."""
    cout = channels * depth_multiplier
    q = random_quantization(rng, cout, kernel * kernel)
    layer = DepthwiseConv2D(filters=rng.integers(-127, 128, (1, kernel, kernel, cout), dtype=np.int8),
                            stride=(stride, stride), dilation=(dilation, dilation), padding=padding,
                            activation=activation, multiplier=depth_multiplier, **q)
    return layer, rng.integers(-128, 128, (batch, height, width, channels), dtype=np.int8)


def random_layer(kind, rng, max_dim=12):
    """(layer, input) of ``kind`` (see ``KINDS``), small enough for an RTL simulation."""
    activation = str(rng.choice(ACTIVATIONS))
    if kind in ("gemm", "sparse_gemm"):
        m, n = (int(v) for v in rng.integers(1, max_dim + 1, 2))
        k = int(rng.integers(1, 4 * max_dim))
        layer, (x,) = get_kind("gemm").random(rng, m=m, n=n, k=k, activation=activation,
                                              narrow=bool(rng.random() < 0.2))
        if kind == "sparse_gemm":
            density = float(rng.choice([0.1, 0.3, 0.5]))
            layer.b = (layer.b * (rng.random(layer.b.shape) < density)).astype(np.int8)
        return layer, x
    if kind == "fc":
        return shared.random_fc(rng, int(rng.integers(1, 4)), int(rng.integers(1, 4 * max_dim)),
                                int(rng.integers(1, max_dim + 1)), activation)
    kernel = int(rng.choice([1, 2, 3]))
    stride, dilation = int(rng.choice([1, 2])), int(rng.choice([1, 1, 2]))
    padding = str(rng.choice(["SAME", "VALID"]))
    reach = (kernel - 1) * dilation + 1
    h, w = int(rng.integers(reach, max(reach + 1, max_dim // 2 + 2))), int(rng.integers(reach, max(reach + 1, max_dim // 2 + 2)))
    batch = int(rng.integers(1, 3))
    if kind == "conv2d":
        return shared.random_conv2d(rng, batch, h, w, int(rng.integers(1, 5)), int(rng.integers(1, max_dim + 1)),
                                    kernel, stride, dilation, padding, activation)
    if kind == "depthwise_conv2d":
        return random_depthwise(rng, batch, h, w, int(rng.integers(1, 7)), kernel, stride, dilation, padding,
                                int(rng.choice([1, 1, 2])), activation)
    raise ParameterError(f"flexarray random layers are of kinds {', '.join(KINDS)}, not {kind!r}")
