"""The FPGA part table: capacities, shares, fit, and clear errors."""

import pytest

from accelkit.errors import ParameterError
from accelkit.sw.hardware.devices import PARTS, RESOURCES, FpgaPart, get_part, part_names


def test_parts_as_stated():
    assert part_names() == ["ecp5-85f", "xc7z020", "xck26"]
    assert get_part("xc7z020").capacity == {"lut": 53200, "ff": 106400, "dsp": 220, "bram": 140}
    assert get_part("xck26").capacity == {"lut": 117120, "ff": 234240, "dsp": 1248, "bram": 144}
    assert get_part("xck26").yosys_family == "xcup" and get_part("xc7z020").yosys_family == "xc7"
    assert get_part("ecp5-85f").flow == "nextpnr-ecp5" and get_part("ecp5-85f").yosys_family is None
    assert all(set(part.capacity) == set(RESOURCES) for part in PARTS.values())


def test_shares_and_fit():
    part = get_part("xc7z020")
    usage = {"lut": 26600, "ff": 0, "dsp": 220, "bram": 70.5}
    assert part.shares(usage) == {"lut": 0.5, "ff": 0.0, "dsp": 1.0, "bram": 70.5 / 140}
    assert part.fits(usage)
    assert not part.fits({**usage, "dsp": 221})
    with pytest.raises(ParameterError, match="lacks bram"):
        part.shares({"lut": 1, "ff": 1, "dsp": 1})


def test_bad_names_and_parts_are_clear_errors():
    with pytest.raises(ParameterError, match=r"unknown FPGA part 'xc7z010'; known parts: ecp5-85f, xc7z020, xck26"):
        get_part("xc7z010")
    with pytest.raises(ParameterError, match="needs its Yosys family"):
        FpgaPart("x", "x", "yosys-xilinx", dict.fromkeys(RESOURCES, 1), dict.fromkeys(RESOURCES, "u"))
    with pytest.raises(ParameterError, match="capacity and units"):
        FpgaPart("x", "x", "nextpnr-ecp5", {"lut": 1}, dict.fromkeys(RESOURCES, "u"))
