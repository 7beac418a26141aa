"""Per-op check of the TFLite front end: which quantization schemes become accelerator layers."""

import dataclasses

import numpy as np
import pytest

from accelkit.errors import UnsupportedLayer
from accelkit.sw.frontends.tflite.frontend import to_layer
from accelkit.sw.frontends.tflite.model import read_model
from accelkit.sw.zoo import ZOO


@pytest.fixture(scope="module")
def digits():
    return read_model(ZOO / "models" / "digits_cnn.tflite")


def _with_tensor(model, index, **changes):
    tensors = list(model.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)
    return tensors


def test_int8_conv_and_fc_become_layers(digits):
    conv, fc = digits.ops[0], digits.ops[4]
    assert to_layer(conv, digits.tensors).op == "conv2d"
    assert to_layer(fc, digits.tensors).op == "fc"


@pytest.mark.parametrize("change, message", [
    (lambda m, op: _with_tensor(m, op.inputs[1], zero_points=np.full(16, 3)), "not symmetric"),
    (lambda m, op: _with_tensor(m, op.inputs[1], quantized_dimension=3, scales=np.full(16, 0.1, np.float32)),
     "neither per-tensor nor per output channel"),
    (lambda m, op: _with_tensor(m, op.inputs[0], dtype=np.dtype(np.int16), type_name="INT16"), "input is INT16"),
    (lambda m, op: _with_tensor(m, op.inputs[1], dtype=np.dtype(np.uint8), type_name="UINT8"), "weights are UINT8"),
    (lambda m, op: _with_tensor(m, op.inputs[2], dtype=np.dtype(np.int64), type_name="INT64"), "bias is INT64"),
])
def test_unsupported_quantization_is_declined_with_a_reason(digits, change, message):
    op = digits.ops[0]
    with pytest.raises(UnsupportedLayer, match=message):
        to_layer(op, change(digits, op))


def test_other_ops_are_declined(digits):
    with pytest.raises(UnsupportedLayer, match="RESHAPE has no accelkit layer kind"):
        to_layer(digits.ops[3], digits.tensors)
