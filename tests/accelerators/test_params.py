import pytest

from accelkit.accelerators.base import get_accelerator, parse_params, registry
from accelkit.accelerators.gemm import GemmAccelerator, GemmCore
from accelkit.errors import ParameterError


def test_gemm_is_registered_through_entry_point():
    assert registry()["gemm"] is GemmAccelerator


@pytest.mark.parametrize("params, message", [
    ({"rows": 0}, "rows must be in 1..64, not 0"),
    ({"cols": 65}, "cols must be in 1..64, not 65"),
    ({"data_width": 12}, "data_width must be a multiple of 8, not 12"),
    ({"k_max": 100}, "k_max must be a power of two, not 100"),
    ({"k_max": 4096, "a_depth": 2048}, r"a_depth \(2048\) must be at least k_max \(4096\)"),
    ({"depth": 3}, "unknown parameter.*depth"),
    ({"rows": "8"}, "rows must be an integer"),
])
def test_invalid_parameters_refused_at_construction(params, message):
    with pytest.raises(ParameterError, match=message):
        GemmAccelerator(**params)


def test_gateware_checks_its_own_arguments():
    with pytest.raises(ParameterError, match="data width must be a multiple of 8"):
        GemmCore(rows=4, cols=4, data_width=20, k_max=16, a_depth=16)
    with pytest.raises(ParameterError, match="rows must be an integer in 1..64, not 0"):
        GemmCore(rows=0)


def test_parse_params_and_unknown_accelerator():
    assert parse_params("rows=8, cols=0x10") == {"rows": 8, "cols": 16}
    with pytest.raises(ParameterError, match="not of the form name=value"):
        parse_params("rows")
    with pytest.raises(ParameterError, match="no accelerator named 'nope'; registered: bfp, gemm"):
        get_accelerator("nope")


def test_parameter_space_is_walkable():
    k_max = next(p for p in GemmAccelerator.space.params if p.name == "k_max")
    assert list(k_max.values())[:3] == [16, 32, 64]
