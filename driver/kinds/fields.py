"""Shared pieces of the kind modules: reading int8 TFLite operands, and random TFLite-style quantization."""

import numpy as np

from ...errors import UnsupportedLayer

__all__ = ["int8_activation", "symmetric_weights", "constant_bias", "fused_activation", "activation_quant",
           "random_quantization"]


def int8_activation(tensor, role):
    """Refuse an activation tensor that is not int8 with one scale and zero point."""
    if tensor.dtype != np.int8:
        raise UnsupportedLayer(f"{role} is {tensor.type_name or tensor.dtype}, not int8")
    if tensor.scales is None or tensor.scales.size != 1:
        raise UnsupportedLayer(f"{role} is not per-tensor quantized")


def symmetric_weights(tensor, channels, axis=0):
    """Per-channel (or per-tensor) float64 scales of a constant, symmetric int8 weight tensor."""
    if tensor.dtype != np.int8:
        raise UnsupportedLayer(f"weights are {tensor.type_name or tensor.dtype}, not int8")
    if tensor.data is None:
        raise UnsupportedLayer("weights are not a constant tensor")
    if tensor.scales is None:
        raise UnsupportedLayer("weights are not quantized")
    if tensor.zero_points is not None and np.any(tensor.zero_points != 0):
        raise UnsupportedLayer("weights are not symmetric (non-zero weight zero point)")
    if tensor.scales.size not in (1, channels) or (tensor.scales.size > 1 and tensor.quantized_dimension != axis):
        raise UnsupportedLayer(f"weight quantization is neither per-tensor nor per output channel "
                               f"({tensor.scales.size} scales, axis {tensor.quantized_dimension})")
    return tensor.scales.astype(np.float64)


def constant_bias(tensors, op, channels, position=2):
    """The op's optional constant int32 bias as int64, or None when it has none."""
    if len(op.inputs) <= position or op.inputs[position] < 0:
        return None
    bias = tensors[op.inputs[position]]
    if bias.dtype != np.int32 or bias.data is None:
        raise UnsupportedLayer(f"bias is {bias.type_name or bias.dtype}{'' if bias.data is not None else ' (not constant)'}, "
                               "not a constant int32 tensor")
    if bias.data.size != channels:
        raise UnsupportedLayer(f"bias has {bias.data.size} values for {channels} channels")
    return bias.data.astype(np.int64)


def fused_activation(op):
    return str(op.options.get("fused_activation_function", op.options.get("activation", "NONE")))


def activation_quant(x, out, op):
    """Input/output scale and zero point and the fused activation, as layer keyword arguments."""
    int8_activation(x, "input")
    int8_activation(out, "output")
    return dict(input_scale=float(x.scales[0]), input_zero_point=int(x.zero_points[0]),
                output_scale=float(out.scales[0]), output_zero_point=int(out.zero_points[0]),
                activation=fused_activation(op))


def _output_scale(rng, input_scale, filter_scales, k, narrow):
    # Roughly the accumulator's spread, so most outputs land inside int8; `narrow`
    # shrinks the scale to force saturation.
    spread = input_scale * float(np.mean(filter_scales)) * 64.0 * np.sqrt(k)
    return spread / (rng.uniform(8.0, 40.0) if narrow else rng.uniform(0.5, 2.0))


def random_quantization(rng, channels, k, zero_points="random", narrow=False):
    """Random TFLite-style quantization of a layer with ``channels`` outputs reducing over ``k`` products."""
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
