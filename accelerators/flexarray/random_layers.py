"""Seeded random layers in flexarray's domain, small enough for RTL: GEMM, FULLY_CONNECTED, CONV_2D,
DEPTHWISE_CONV_2D, weight-sparse GEMM and BATCH_MATMUL (tests draw random *mappings* for them)."""

import numpy as np

from ...driver.kinds import get_kind
from ...driver.quant import ACTIVATIONS
from ...errors import ParameterError

__all__ = ["KINDS", "random_layer"]

KINDS = ("gemm", "fc", "conv2d", "depthwise_conv2d", "sparse_gemm", "batch_matmul")


def random_layer(kind, rng, max_dim=12):
    """(layer, inputs) of ``kind`` (see ``KINDS``); ``inputs`` is a tuple (two operands for batch_matmul)."""
    layer, x = _random_layer(kind, rng, max_dim)
    return layer, x if isinstance(x, tuple) else (x,)


def _random_layer(kind, rng, max_dim):
    if kind == "batch_matmul":
        # broadcast batch axes now and then, both adj flags, zero points anywhere (-128 takes two terms)
        batch = int(rng.integers(1, 3))
        lhs_batch, rhs_batch = (batch,), (batch,)
        if rng.random() < 0.25:
            lhs_batch, rhs_batch = (2, 1), (1, batch)
        return get_kind("batch_matmul").random(
            rng, m=int(rng.integers(1, max_dim + 1)), n=int(rng.integers(1, max_dim + 1)),
            k=int(rng.integers(1, 3 * max_dim)), adj_x=int(rng.integers(0, 2)), adj_y=int(rng.integers(0, 2)),
            lhs_batch=lhs_batch, rhs_batch=rhs_batch, zero_points="large" if rng.random() < 0.3 else "random",
            narrow=bool(rng.random() < 0.2))
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
