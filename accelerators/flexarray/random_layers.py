"""Seeded random layers in flexarray's domain, small enough for RTL: GEMM, FULLY_CONNECTED, CONV_2D,
DEPTHWISE_CONV_2D and weight-sparse GEMM (tests draw random *mappings* for them)."""

import numpy as np

from ...driver.kinds import get_kind
from ...driver.quant import ACTIVATIONS
from ...errors import ParameterError

__all__ = ["KINDS", "random_layer"]

KINDS = ("gemm", "fc", "conv2d", "depthwise_conv2d", "sparse_gemm")


def random_layer(kind, rng, max_dim=12):
    """(layer, input) of ``kind`` (see ``KINDS``)."""
    activation = str(rng.choice(ACTIVATIONS))
    if kind in ("gemm", "sparse_gemm"):
        m, n = (int(v) for v in rng.integers(1, max_dim + 1, 2))
        layer, (x,) = get_kind("gemm").random(rng, m=m, n=n, k=int(rng.integers(1, 4 * max_dim)),
                                              activation=activation, narrow=bool(rng.random() < 0.2))
        if kind == "sparse_gemm":
            density = float(rng.choice([0.1, 0.3, 0.5]))
            layer.b = (layer.b * (rng.random(layer.b.shape) < density)).astype(np.int8)
        return layer, x
    if kind == "fc":
        layer, (x,) = get_kind("fc").random(rng, batch=int(rng.integers(1, 4)), k=int(rng.integers(1, 4 * max_dim)),
                                            n=int(rng.integers(1, max_dim + 1)), activation=activation)
        return layer, x
    if kind not in ("conv2d", "depthwise_conv2d"):
        raise ParameterError(f"flexarray random layers are of kinds {', '.join(KINDS)}, not {kind!r}")
    kernel = int(rng.choice([1, 2, 3]))
    dilation = int(rng.choice([1, 1, 2]))
    reach = (kernel - 1) * dilation + 1
    shape = dict(batch=int(rng.integers(1, 3)), height=int(rng.integers(reach, max(reach + 1, max_dim // 2 + 2))),
                 width=int(rng.integers(reach, max(reach + 1, max_dim // 2 + 2))), kernel=kernel,
                 stride=int(rng.choice([1, 2])), dilation=dilation, padding=str(rng.choice(["SAME", "VALID"])),
                 activation=activation)
    if kind == "conv2d":
        shape.update(in_channels=int(rng.integers(1, 5)), out_channels=int(rng.integers(1, max_dim + 1)))
    else:
        shape.update(channels=int(rng.integers(1, 7)), multiplier=int(rng.choice([1, 1, 2])))
    layer, (x,) = get_kind(kind).random(rng, **shape)
    return layer, x
