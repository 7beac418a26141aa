"""Reports turn cycles into time only at a measured or given clock, and say which."""

import json

import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.sw.commands import main as cli
from accelkit.sw.hardware import figures
from accelkit.sw.hardware.timing import TimingResult
from accelkit.sw.reports.clock import UNMEASURED, report_clock

TINY = dict(rows=2, cols=2, data_width=32, k_max=16, a_depth=64)


def _cached(fmax_by_top):
    def lookup(verilog, top, **_):
        if fmax_by_top.get(top) is None:
            return None
        return TimingResult(top=top, fmax_mhz=fmax_by_top[top], target_mhz=100.0, path_from="a", path_to="b",
                            path_logic_ns=1.0, path_routing_ns=2.0, utilisation={}, per_seed={"1": fmax_by_top[top]})
    return lookup


def test_given_clock_wins_then_the_cached_fmax_then_unmeasured(monkeypatch):
    accelerator = GemmAccelerator(**TINY)
    figures.ecp5_verilog(accelerator)     # a placed-and-routed design has its ECP5 Verilog cached
    monkeypatch.setattr(figures, "cached_timing", _cached({accelerator.top_name: 87.5}))
    assert report_clock([accelerator], 200.0).as_dict() == {"clock_mhz": 200.0, "clock_source": "--clock-mhz"}
    measured = report_clock([accelerator])
    assert (measured.mhz, measured.source, measured.hz) == (87.5, "ECP5-85F P&R", 87.5e6)
    assert measured.describe() == "at 87.5 MHz (ECP5-85F P&R)"
    monkeypatch.setattr(figures, "cached_timing", _cached({}))
    assert report_clock([accelerator]) is UNMEASURED and UNMEASURED.hz is None
    assert "clock unmeasured" in UNMEASURED.describe()


@pytest.mark.parametrize("fmax", [None, 64.0])
def test_run_reports_time_only_at_a_measured_clock(monkeypatch, tmp_path, capsys, fmax):
    accelerator = GemmAccelerator()
    figures.ecp5_verilog(accelerator)
    monkeypatch.setattr(figures, "cached_timing", _cached({accelerator.top_name: fmax}))
    path = tmp_path / "run.json"
    assert cli.main(["run", "digits_cnn", "--backend", "model", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    totals = json.loads(path.read_text())["totals"]
    offloaded = [r for r in json.loads(path.read_text())["layers"] if r["where"] == "accelerator"]
    assert totals["accelerator_cycles"] > 0 and offloaded
    if fmax is None:
        assert totals["clock_hz"] is None and totals["estimated_accelerator_latency_ms"] is None
        assert all(r["time_us"] is None for r in offloaded)
        assert "clock unmeasured" in out and "MHz" not in out.split("accelerator cycles")[1].split("\n")[0]
    else:
        assert totals["clock_source"] == "ECP5-85F P&R"
        assert totals["estimated_accelerator_latency_ms"] == pytest.approx(totals["accelerator_cycles"] / 64e3)
        assert "at 64 MHz (ECP5-85F P&R)" in out


def test_looking_up_the_clock_never_elaborates_a_design_with_no_cached_verilog(monkeypatch, tmp_path):
    # `run --backend model` with new parameters must not spend a minute converting gateware just to find
    # that no place-and-route result exists for it (the fuzz campaign timed such a run out under load).
    monkeypatch.setenv("ACCELKIT_CACHE", str(tmp_path))

    def refuse(*_, **__):
        raise AssertionError("the clock lookup converted the design to Verilog")
    monkeypatch.setattr(figures, "convert_verilog", refuse)
    monkeypatch.setattr(figures, "cached_timing", _cached({"accelkit_gemm": 87.5}))
    assert figures.measured_clock(GemmAccelerator(**TINY)) is None
    assert report_clock([GemmAccelerator(**TINY)]) is UNMEASURED
