"""BATCH_MATMUL semantics against LiteRT 2.3's BUILTIN_REF kernel (single-op models built without TensorFlow)."""

import numpy as np
import pytest

from accelkit.driver.kinds.batch_matmul import KIND, BatchMatMul
from accelkit.errors import ParameterError
from accelkit.sw.frontends.tflite.kind_models import layer_reference

from .reference_checks import rounding_verdict

#: (lhs batch, rhs batch) shapes TFLite broadcasts
BROADCASTS = [((2,), (2,)), ((1,), (3,)), ((3,), (1,)), ((2, 1), (1, 3)), ((), (2,)), ((2, 2, 1), (2, 1, 1)), ((), ())]


def _cases(count, seed, ties=False):
    rng = np.random.default_rng(seed)
    for index in range(count):
        lhs_batch, rhs_batch = BROADCASTS[index % len(BROADCASTS)]
        layer, operands = KIND.random(rng, m=int(rng.integers(1, 10)), n=int(rng.integers(1, 10)),
                                       k=int(rng.integers(1, 40)), adj_x=int(rng.integers(0, 2)),
                                       adj_y=int(rng.integers(0, 2)), lhs_batch=lhs_batch, rhs_batch=rhs_batch)
        if ties:
            # Power-of-two scales put accumulators exactly on rounding ties; operands near their zero
            # points keep those outputs away from the clamp, where the modes would agree.
            layer.lhs_scale = layer.rhs_scale = 2.0 ** -6
            layer.output_scale = 2.0 ** (-12 + int(rng.integers(1, 5)))
            operands = tuple(np.clip(zp + rng.integers(-6, 7, size=o.shape), -128, 127).astype(np.int8)
                             for o, zp in zip(operands, (layer.lhs_zero_point, layer.rhs_zero_point)))
        yield layer, operands


def test_random_layers_match_builtin_ref():
    mismatches = []
    for index, (layer, (lhs, rhs)) in enumerate(_cases(42, seed=31)):
        expected = layer_reference(layer, lhs, rhs)
        if not np.array_equal(layer.reference(lhs, rhs), expected):
            mismatches.append(index)
    assert not mismatches, f"seed 31: cases {mismatches} differ from BUILTIN_REF"


def test_requantization_is_double_rounding():
    decisive = agree = 0
    for layer, (lhs, rhs) in _cases(28, seed=32, ties=True):
        expected, ours = layer_reference(layer, lhs, rhs), layer.reference(lhs, rhs)
        a, b, _ = layer.operands(lhs, rhs)
        acc = np.matmul(a.astype(np.int64) - layer.lhs_zero_point, b.astype(np.int64) - layer.rhs_zero_point)
        d, g = rounding_verdict(acc.reshape(-1), layer.scale, layer.output_zero_point, -128, 127,
                                expected.reshape(-1), ours.reshape(-1))
        decisive, agree = decisive + d, agree + g
    print(f"{decisive} decisive outputs")
    assert decisive > 20, "too few rounding ties: the test cannot tell the modes apart"
    assert agree == decisive


def test_gemm_lowering_with_row_offset_is_exact():
    for layer, (lhs, rhs) in _cases(14, seed=33):
        gemms, shape = layer.lower(lhs, rhs)
        out = np.stack([g.reference() for g in gemms]).reshape(shape)
        assert np.array_equal(out, layer.reference(lhs, rhs))
        assert all(g.row_offset == -layer.rhs_zero_point for g in gemms)


def test_bad_operands_raise_parameter_errors():
    layer = BatchMatMul(lhs_scale=0.1, lhs_zero_point=0, rhs_scale=0.1, rhs_zero_point=0, output_scale=1.0,
                        output_zero_point=0)
    with pytest.raises(ParameterError, match="do not chain"):
        layer.reference(np.zeros((2, 3, 4), np.int8), np.zeros((2, 5, 6), np.int8))
    with pytest.raises(ParameterError, match="do not broadcast"):
        layer.reference(np.zeros((2, 3, 4), np.int8), np.zeros((3, 4, 6), np.int8))
    with pytest.raises(ParameterError, match="must be int8"):
        layer.reference(np.zeros((3, 4), np.int16), np.zeros((4, 6), np.int8))
    with pytest.raises(ParameterError, match="zero point must be an int8 value"):
        BatchMatMul(lhs_scale=0.1, lhs_zero_point=200, rhs_scale=0.1, rhs_zero_point=0, output_scale=1.0,
                    output_zero_point=0)
