"""Single-operator, fully int8-quantized TFLite models built without TensorFlow.

The flatbuffer is assembled with the schema bindings shipped in the ``tflite``
PyPI package and executed with LiteRT's *reference* kernels, which makes these
models usable as golden references for accelkit's integer kernels.

Requantization in the LiteRT 2.3.0 BUILTIN_REF kernels differs per op
(established by bit-exact comparison on rounding-tie cases), so a numpy model
of these outputs must follow it:

* CONV_2D (int8, per-channel or per-tensor filters): fixed-point
  ``MultiplyByQuantizedMultiplier``, *double-rounding* (gemmlowp
  SaturatingRoundingDoublingHighMul + RoundingDivideByPOT) variant.
* FULLY_CONNECTED (int8, per-tensor or per-channel weights): no fixed-point
  multiplier at all; the reference kernel requantizes in double precision,
  ``round(double(acc) * (double(s_in) * double(s_w) / double(s_out)))``
  with round-half-away-from-zero, scales read as float32.

Fused activation bounds are ``zp + roundf(float32(v) / float32(scale))``
(float32 math, half away from zero), intersected with [-128, 127].
"""

from __future__ import annotations

import numbers

import numpy as np
import tflite

from accelkit.sw.frontends.tflite.single_op import ACTIVATIONS as _ACTIVATIONS, PADDINGS as _PADDINGS, Tensor as _Tensor
from accelkit.sw.frontends.tflite.single_op import build_model as _build_model, run_reference

__all__ = ["conv2d_model", "fully_connected_model", "float_fully_connected_model", "run_reference"]

# Operator versions as assigned by TFLite's op_version.cc for int8 in/out;
# the op resolver rejects versions outside the registered range.
_CONV2D_INT8_VERSION = 3
_CONV2D_GROUPED_VERSION = 6
_FC_INT8_VERSION = 4
_FC_NO_BIAS_VERSION = 6


# --------------------------------------------------------------------------
# Small validation helpers


def _enum(table, value, what):
    key = str(value).upper()
    if key not in table:
        raise ValueError(f"unsupported {what} {value!r}; expected one of {sorted(table)}")
    return table[key]


def _pair(value, what):
    if isinstance(value, numbers.Integral):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{what} must be a positive int or a pair of them, got {value!r}")
    return value


def _positive_scale(value, what):
    value = float(value)
    if not np.isfinite(value) or value <= 0.0:
        raise ValueError(f"{what} must be a positive finite float, got {value!r}")
    return value


def _zero_point(value, what):
    value = int(value)
    if not -128 <= value <= 127:
        raise ValueError(f"{what} must lie in [-128, 127] for int8, got {value}")
    return value


def _int8_array(values, what):
    arr = np.asarray(values)
    if arr.dtype != np.int8:
        if arr.dtype.kind not in "iu" or arr.size and (arr.min() < -128 or arr.max() > 127):
            raise ValueError(f"{what} must hold int8 values")
        arr = arr.astype(np.int8)
    return np.ascontiguousarray(arr)


def _bias_array(values, n, what="bias_int32"):
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be an integer array")
    if arr.size and (arr.min() < -(2**31) or arr.max() > 2**31 - 1):
        raise ValueError(f"{what} does not fit int32")
    arr = np.ascontiguousarray(arr.astype(np.int32).reshape(-1))
    if arr.shape != (n,):
        raise ValueError(f"{what} must have {n} elements, got {arr.size}")
    return arr


def _channel_scales(values, n, what):
    """Scalar → per-tensor (length 1); otherwise must be exactly length n."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size not in (1, n):
        raise ValueError(f"{what} must be a scalar or have {n} elements, got {arr.size}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{what} must be positive and finite")
    return arr.astype(np.float32)


def _bias_tensor(bias, input_scale, weight_scales, n):
    # Bias scale must equal s_in * s_w; the per-tensor FC kernel rejects the
    # model if |s_in*s_w - s_bias| / s_out > 0.02. Computed from the float32
    # values the interpreter itself will see.
    bias_scales = (np.float64(np.float32(input_scale)) * weight_scales.astype(np.float64)).astype(np.float32)
    return _Tensor(
        "bias",
        [n],
        tflite.TensorType.INT32,
        bias_scales,
        np.zeros(bias_scales.size, dtype=np.int64),
        quantized_dimension=0,
        data=bias.astype("<i4").tobytes(),
    )


def _out_size(padding, in_size, k, stride, dilation):
    eff = (k - 1) * dilation + 1
    if padding == tflite.Padding.SAME:
        return (in_size + stride - 1) // stride
    return (in_size + stride - eff) // stride


# --------------------------------------------------------------------------
# Public API


def conv2d_model(
    *,
    input_shape,
    filters_int8,
    bias_int32,
    input_scale,
    input_zero_point,
    filter_scales,
    output_scale,
    output_zero_point,
    stride=(1, 1),
    padding="SAME",
    dilation=(1, 1),
    activation="NONE",
) -> bytes:
    """CONV_2D, int8 NHWC input/output, int8 OHWI filters, int32 bias.

    ``filter_scales`` is per output channel (symmetric, zero points 0,
    quantized_dimension 0); a scalar yields per-tensor filter quantization.
    ``bias_int32`` may be None (written as zeros: the kernel requires a bias).
    ``stride``/``dilation`` are (height, width).
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 4 or input_shape[0] != 1 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be NHWC with N=1, got {input_shape}")
    filters = _int8_array(filters_int8, "filters_int8")
    if filters.ndim != 4:
        raise ValueError(f"filters_int8 must be (Cout, KH, KW, Cin), got shape {filters.shape}")
    cout, kh, kw, cin = filters.shape
    _, h, w, c = input_shape
    if c % cin:
        raise ValueError(f"input channels {c} are not a multiple of filter Cin {cin}")
    if c != cin and cout % (c // cin):
        raise ValueError("grouped conv needs Cout divisible by the group count")
    stride_h, stride_w = _pair(stride, "stride")
    dil_h, dil_w = _pair(dilation, "dilation")
    pad = _enum(_PADDINGS, padding, "padding")
    act = _enum(_ACTIVATIONS, activation, "activation")
    s_in = _positive_scale(input_scale, "input_scale")
    s_out = _positive_scale(output_scale, "output_scale")
    zp_in = _zero_point(input_zero_point, "input_zero_point")
    zp_out = _zero_point(output_zero_point, "output_zero_point")
    w_scales = _channel_scales(filter_scales, cout, "filter_scales")
    bias = _bias_array(bias_int32, cout)

    out_h = _out_size(pad, h, kh, stride_h, dil_h)
    out_w = _out_size(pad, w, kw, stride_w, dil_w)
    if out_h < 1 or out_w < 1:
        raise ValueError("VALID padding leaves an empty output for this input/filter size")

    tensors = [
        _Tensor("input", input_shape, tflite.TensorType.INT8, [s_in], [zp_in]),
        _Tensor(
            "filter",
            filters.shape,
            tflite.TensorType.INT8,
            w_scales,
            np.zeros(w_scales.size, dtype=np.int64),
            quantized_dimension=0,
            data=filters.tobytes(),
        ),
    ]
    if bias is None:
        # LiteRT's CONV_2D Prepare rejects a node without a bias input, so an
        # absent bias is expressed as an all-zero one (numerically identical).
        bias = np.zeros(cout, dtype=np.int32)
    tensors.append(_bias_tensor(bias, s_in, w_scales, cout))
    op_inputs = [0, 1, 2]
    tensors.append(_Tensor("output", (1, out_h, out_w, cout), tflite.TensorType.INT8, [s_out], [zp_out]))

    def options(builder):
        tflite.Conv2DOptionsStart(builder)
        tflite.Conv2DOptionsAddPadding(builder, pad)
        tflite.Conv2DOptionsAddStrideW(builder, stride_w)
        tflite.Conv2DOptionsAddStrideH(builder, stride_h)
        tflite.Conv2DOptionsAddFusedActivationFunction(builder, act)
        tflite.Conv2DOptionsAddDilationWFactor(builder, dil_w)
        tflite.Conv2DOptionsAddDilationHFactor(builder, dil_h)
        return tflite.Conv2DOptionsEnd(builder)

    return _build_model(
        tensors=tensors,
        opcode=tflite.BuiltinOperator.CONV_2D,
        op_version=_CONV2D_GROUPED_VERSION if c != cin else _CONV2D_INT8_VERSION,
        options_type=tflite.BuiltinOptions.Conv2DOptions,
        build_options=options,
        inputs=op_inputs,
        outputs=[len(tensors) - 1],
    )


def fully_connected_model(
    *,
    input_shape,
    weights_int8,
    bias_int32,
    input_scale,
    input_zero_point,
    weight_scales,
    output_scale,
    output_zero_point,
    activation="NONE",
) -> bytes:
    """FULLY_CONNECTED, int8 (batch, K) input, (N, K) int8 weights → (batch, N).

    ``weight_scales``: scalar → per-tensor, length-N → per-channel
    (quantized_dimension 0). Weight zero points are 0. ``bias_int32`` may be
    None to omit the optional bias input.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 2 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (batch, K), got {input_shape}")
    weights = _int8_array(weights_int8, "weights_int8")
    if weights.ndim != 2:
        raise ValueError(f"weights_int8 must be (N, K), got shape {weights.shape}")
    n, k = weights.shape
    batch, k_in = input_shape
    if k_in != k:
        raise ValueError(f"input K={k_in} does not match weights K={k}")
    act = _enum(_ACTIVATIONS, activation, "activation")
    s_in = _positive_scale(input_scale, "input_scale")
    s_out = _positive_scale(output_scale, "output_scale")
    zp_in = _zero_point(input_zero_point, "input_zero_point")
    zp_out = _zero_point(output_zero_point, "output_zero_point")
    w_scales = _channel_scales(weight_scales, n, "weight_scales")
    bias = _bias_array(bias_int32, n)

    tensors = [
        _Tensor("input", input_shape, tflite.TensorType.INT8, [s_in], [zp_in]),
        _Tensor(
            "weights",
            weights.shape,
            tflite.TensorType.INT8,
            w_scales,
            np.zeros(w_scales.size, dtype=np.int64),
            quantized_dimension=0,
            data=weights.tobytes(),
        ),
    ]
    op_inputs = [0, 1]
    if bias is not None:
        tensors.append(_bias_tensor(bias, s_in, w_scales, n))
        op_inputs.append(2)
        version = _FC_INT8_VERSION
    else:
        op_inputs.append(-1)
        version = _FC_NO_BIAS_VERSION
    tensors.append(_Tensor("output", (batch, n), tflite.TensorType.INT8, [s_out], [zp_out]))

    def options(builder):
        tflite.FullyConnectedOptionsStart(builder)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(builder, act)
        tflite.FullyConnectedOptionsAddWeightsFormat(
            builder, tflite.FullyConnectedOptionsWeightsFormat.DEFAULT
        )
        tflite.FullyConnectedOptionsAddKeepNumDims(builder, False)
        return tflite.FullyConnectedOptionsEnd(builder)

    return _build_model(
        tensors=tensors,
        opcode=tflite.BuiltinOperator.FULLY_CONNECTED,
        op_version=version,
        options_type=tflite.BuiltinOptions.FullyConnectedOptions,
        build_options=options,
        inputs=op_inputs,
        outputs=[len(tensors) - 1],
    )


def float_fully_connected_model(*, weights, bias) -> bytes:
    """A float32 FULLY_CONNECTED (batch 1): a model an int8 accelerator must leave to the CPU."""
    weights = np.asarray(weights, dtype=np.float32)
    n, k = weights.shape
    empty = np.zeros(0, dtype=np.float32)
    tensors = [
        _Tensor("input", (1, k), tflite.TensorType.FLOAT32, empty, np.zeros(0, np.int64)),
        _Tensor("weights", (n, k), tflite.TensorType.FLOAT32, empty, np.zeros(0, np.int64),
                data=weights.tobytes()),
        _Tensor("bias", (n,), tflite.TensorType.FLOAT32, empty, np.zeros(0, np.int64),
                data=np.asarray(bias, np.float32).tobytes()),
        _Tensor("output", (1, n), tflite.TensorType.FLOAT32, empty, np.zeros(0, np.int64)),
    ]

    def options(builder):
        tflite.FullyConnectedOptionsStart(builder)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(builder, tflite.ActivationFunctionType.NONE)
        return tflite.FullyConnectedOptionsEnd(builder)

    return _build_model(tensors=tensors, opcode=tflite.BuiltinOperator.FULLY_CONNECTED, op_version=1,
                        options_type=tflite.BuiltinOptions.FullyConnectedOptions, build_options=options,
                        inputs=[0, 1, 2], outputs=[3])
