"""The analytic resource model: block RAM packing, and its error against the Yosys runs it is calibrated on."""

import pytest

from accelkit.errors import ParameterError
from accelkit.sw.dse.resources import bram36_for, calibration_report, resource_model


def test_block_ram_packing():
    assert bram36_for(64, 4096) == (8.0, 0)        # 8 x (4K x 9)
    assert bram36_for(16, 1024) == (0.5, 0)        # one RAMB18 (1K x 18)
    assert bram36_for(72, 512) == (1.0, 0)
    assert bram36_for(64, 16) == (0.0, 4 * 22)     # shallow: distributed RAM, RAM64M of 3 bits
    assert bram36_for(8, 32768) == (8.0, 0)        # 32K x 1 per bit


def test_model_follows_the_parameters():
    model = resource_model("gemm")
    small = model.estimate({"rows": 2, "cols": 2, "data_width": 64, "k_max": 2048, "a_depth": 4096})
    large = model.estimate({"rows": 16, "cols": 16, "data_width": 64, "k_max": 2048, "a_depth": 4096})
    assert large["lut"] > small["lut"] and large["dsp"] > small["dsp"] and large["bram36"] > small["bram36"]


def test_model_error_against_yosys_is_reported_and_bounded():
    report = calibration_report("gemm")
    assert report["points"] >= 4 and len(report["leave_one_out"]) == report["points"]
    # leave-one-out: each Yosys point predicted by a fit that never saw it
    assert report["mean_abs_error"]["lut"] < 0.25, report["mean_abs_error"]
    assert report["mean_abs_error"]["ff"] < 0.25, report["mean_abs_error"]


def test_accelerators_without_a_model_are_refused():
    with pytest.raises(ParameterError, match="no analytic resource model for accelerator 'bfp'"):
        resource_model("bfp")


@pytest.mark.parametrize("name", ["potacc", "mm2im", "flexarray"])
def test_other_accelerators_are_calibrated_and_their_held_out_error_bounded(name):
    report = calibration_report(name)
    assert report["points"] >= 5 and len(report["leave_one_out"]) == report["points"]
    assert report["mean_abs_error"]["lut"] < 0.25 and report["mean_abs_error"]["ff"] < 0.25, report["mean_abs_error"]


def test_potacc_model_prices_shift_columns_apart_from_multiplier_columns():
    model = resource_model("potacc")
    base = {"rows": 8, "cols": 8, "data_width": 64, "k_max": 512, "a_depth": 1024, "terms": 1}
    pot, msq = model.estimate({**base, "mult_cols": 0}), model.estimate({**base, "mult_cols": 8})
    apot = model.estimate({**base, "terms": 2, "mult_cols": 0})
    assert msq["dsp"] > pot["dsp"], "int8 multiplier columns take DSPs that shift columns do not"
    assert apot["lut"] > pot["lut"], "a second power-of-two term costs logic"


def test_flexarray_model_counts_its_dsps_and_block_ram():
    model = resource_model("flexarray")
    default = {"multipliers": 64, "dn_bw": 8, "rn_bw": 64, "rn": 0, "acc_depth": 256, "reach": 8}
    estimate = model.estimate(default)
    # the default design by Yosys (README): 128 DSP48 (a multiplier each, 8 per requantizer), 57 BRAM36 (the
    # accumulation buffer, 2048 bits x 512 words, twice for its two read ports); 32,391 LUT and 39,310 FF (the
    # calibration point, measured before the timing changes of 5 December added 2,293 LUT and 4,617 FF)
    assert estimate["dsp"] == 128 and estimate["bram36"] == 57.0
    assert abs(estimate["lut"] / 32391 - 1) < 0.10 and abs(estimate["ff"] / 39310 - 1) < 0.10, estimate
    # the former default, 16 lanes that reach every node, is not a calibration point: by Yosys 32,731 LUT,
    # 20,485 FF, 29 BRAM36
    former = model.estimate({**default, "rn_bw": 16, "reach": 0, "acc_depth": 512})
    assert former["bram36"] == 29.0
    assert abs(former["lut"] / 32731 - 1) < 0.10 and abs(former["ff"] / 20485 - 1) < 0.10, former
    narrower = model.estimate({**default, "rn_bw": 32})
    assert narrower["lut"] < estimate["lut"] and narrower["bram36"] < estimate["bram36"]
