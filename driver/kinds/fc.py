"""FULLY_CONNECTED: int8 [batch, K] x [N, K] weights, per-channel symmetric (TFLite semantics)."""

from dataclasses import dataclass

import numpy as np

from ...errors import ParameterError, UnsupportedLayer
from ..layers import check_quantization, lower_to_gemm
from ..quant import ACTIVATIONS, FLOAT
from .base import LayerKind, LoweredToGemm, ShapeOption
from .fields import activation_quant, constant_bias, random_quantization, symmetric_weights

__all__ = ["FullyConnected", "KIND"]


@dataclass
class FullyConnected(LoweredToGemm):
    """A TFLite int8 FULLY_CONNECTED: input [batch, K], weights [N, K].

    LiteRT 2.3's reference kernel requantizes in double precision with halves away
    from zero (``rounding = FLOAT``; see ``driver/quant.py``).
    """

    weights: np.ndarray
    bias: np.ndarray
    input_scale: float
    input_zero_point: int
    filter_scales: np.ndarray
    output_scale: float
    output_zero_point: int
    activation: str = "NONE"

    op = "fc"
    rounding = FLOAT

    def __post_init__(self):
        if np.ndim(self.weights) != 2 or min(np.shape(self.weights)) < 1:
            raise ParameterError(f"FULLY_CONNECTED weights must be [N, K] with N and K at least 1, "
                                 f"not {np.shape(self.weights)}")
        check_quantization("FULLY_CONNECTED", self.input_scale, self.output_scale, self.filter_scales)

    def gemm_shape(self, input_shape):
        n, k = self.weights.shape
        return int(np.prod(input_shape)) // k, n, k

    def gemm_weights(self):
        return self.weights.T

    def output_shape_for(self, input_shape):
        m, n, _ = self.gemm_shape(input_shape)
        return (m, n)

    def lower(self, x):
        x = x.reshape(-1, self.weights.shape[1]) if x.size % self.weights.shape[1] == 0 else x
        if x.ndim != 2 or x.shape[1] != self.weights.shape[1]:
            raise ParameterError(f"FULLY_CONNECTED input shape {x.shape} does not match weights {self.weights.shape}")
        return lower_to_gemm(x, self.weights.T, self), (x.shape[0], self.weights.shape[0])



class FullyConnectedKind(LayerKind):
    name = "fc"
    description = "FULLY_CONNECTED: int8 matrix-vector/matrix product with constant weights"
    layer_class = FullyConnected
    tflite_ops = ("FULLY_CONNECTED",)
    shape_options = (ShapeOption("batch", 1), ShapeOption("k", 64, "input features"),
                     ShapeOption("n", 64, "output features"),
                     ShapeOption("activation", "NONE", choices=ACTIVATIONS))

    def from_tflite(self, op, tensors):
        x, weights, out = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
        quant = activation_quant(x, out, op)
        if op.options.get("weights_format", "DEFAULT") != "DEFAULT":
            raise UnsupportedLayer(f"weights format {op.options['weights_format']}")
        if len(weights.shape) != 2:
            raise UnsupportedLayer(f"weights of shape {list(weights.shape)} are not [N, K]")
        n, k = weights.shape
        scales = symmetric_weights(weights, n)
        if k < 1 or int(np.prod(x.shape)) % k:
            raise UnsupportedLayer(f"input of shape {x.shape} does not flatten to rows of {k}")
        return FullyConnected(weights=np.asarray(weights.data, np.int8), bias=constant_bias(tensors, op, n),
                              filter_scales=scales, **quant)

    def relax_compute(self, p):
        p.parts["w_t"] = p.is_op("relax.permute_dims")(p.parts["w"])
        p.parts["w_dq"] = p.dequantize(p.parts["w_t"], p.parts["w_scale"], p.parts["w_zp"])
        return p.is_op("relax.matmul")(p.parts["x_dq"], p.parts["w_dq"])

    def from_relax(self, matched, f):
        weights, input_shape = f.weights, f.input_shape
        axes = [int(a) for a in matched["w_t"].attrs.axes] if matched["w_t"].attrs.axes is not None else [1, 0]
        if weights.ndim != 2 or axes != [1, 0]:
            raise UnsupportedLayer(f"matmul weights {list(weights.shape)} permuted by {axes} are not a [N, K] "
                                   "FULLY_CONNECTED filter")
        n, k = weights.shape
        if input_shape[-1] != k:
            raise UnsupportedLayer(f"input rows of {input_shape[-1]} do not match the weights' K={k}")
        return FullyConnected(weights=np.ascontiguousarray(weights), bias=f.bias(matched, n),
                              filter_scales=f.weight_scales(matched, n, axis=1), **f.quant)

    def random(self, rng, batch=1, k=64, n=64, activation="NONE", zero_points="random", narrow=False):
        q = random_quantization(rng, n, k, zero_points, narrow)
        layer = FullyConnected(weights=rng.integers(-127, 128, (n, k), dtype=np.int8), activation=activation, **q)
        return layer, (rng.integers(-128, 128, (batch, k), dtype=np.int8),)

    def random_shape(self, rng, limits):
        return dict(batch=int(rng.integers(1, 5)), k=int(rng.integers(1, limits.get("max_k", 2048) + 1)),
                    n=int(rng.integers(1, limits.get("max_dim", 40) + 1)))


KIND = FullyConnectedKind()
