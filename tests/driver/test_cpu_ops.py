"""The CPU operators a board runs in numpy, against LiteRT's reference kernels on the zoo models' own tensors."""

import numpy as np
import pytest

from accelkit.driver.cpu_ops import Softmax, cpu_op_for, cpu_op_from_dict
from accelkit.errors import ParameterError, UnsupportedLayer
from accelkit.sw.frontends.tflite.model import read_model
from accelkit.sw.frontends.tflite.runner import make_interpreter
from accelkit.sw.zoo import resolve_model


@pytest.mark.parametrize("name", ["digits_cnn", "mobilenet_v2", "efficientnet_tiny"])
def test_softmax_and_reshape_equal_the_reference_kernels(name):
    path = resolve_model(name)
    model = read_model(path)
    interpreter = make_interpreter(path, "ref", preserve_all_tensors=True)
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(5)
    checked = set()
    for _ in range(4):
        interpreter.set_tensor(detail["index"], rng.integers(-128, 128, detail["shape"], dtype=np.int8))
        interpreter.invoke()
        for op in model.ops:
            if op.op not in ("SOFTMAX", "RESHAPE"):
                continue
            cpu_op = cpu_op_from_dict(cpu_op_for(op, model.tensors).as_dict())     # through the program format
            x = interpreter.get_tensor(op.inputs[0])
            got, expected = cpu_op.reference(x), interpreter.get_tensor(op.outputs[0])
            assert got.dtype == expected.dtype and np.array_equal(got, expected), (name, op.index, op.op)
            checked.add(op.op)
    assert "SOFTMAX" in checked


def test_softmax_rows_of_every_spread():
    # the fixed-point path at its edges: equal values, one dominant value, differences past the cut-off
    softmax = Softmax(beta=1.0, input_scale=0.1)
    x = np.array([[5] * 10, [127] + [-128] * 9, list(range(-128, 128, 26))], dtype=np.int8)
    out = softmax.reference(x)
    assert np.all(out[0] == out[0, 0]) and out[0, 0] in (-103, -102)          # 1/10 of 256, minus 128
    assert out[1, 0] == 127 and np.all(out[1, 1:] == -128)
    assert np.all(np.diff(out[2].astype(int)) >= 0)


def test_operators_without_a_numpy_kernel_are_refused_by_name():
    model = read_model(resolve_model("resnet_tiny"))
    add = next(op for op in model.ops if op.op == "ADD")
    with pytest.raises(UnsupportedLayer, match="ADD has no numpy implementation"):
        cpu_op_for(add, model.tensors)
    with pytest.raises(ParameterError, match="'MEAN' is not one of"):
        cpu_op_from_dict({"op": "MEAN"})
