"""The ECP5 place-and-route flow end to end on one small design: `bench timing`, `resources`, the report clock.

Place and route of a full design takes ten minutes or more, so this is the
suite's only run of the flow, on a 2x2 GEMM with small buffers; results are
cached by design hash, so a second run of the suite only reads them.
"""

import json

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.sw.commands import main as cli
from accelkit.sw.hardware.devices import get_part
from accelkit.sw.reports.clock import report_clock

TINY = dict(rows=2, cols=2, data_width=32, k_max=16, a_depth=64)
PARAMS = ",".join(f"{k}={v}" for k, v in TINY.items())


def test_bench_timing_then_resources_and_the_report_clock_read_the_result(tmp_path, capsys):
    path = tmp_path / "timing.json"
    assert cli.main(["bench", "timing", "--only", "gemm", "--params", PARAMS, "--json", str(path)]) == 0
    out = capsys.readouterr()
    assert "place and route on the ECP5-85F" in out.err and "cautious stand-in" in out.out
    (design,) = json.loads(path.read_text())["designs"]
    zynq, ecp5 = design["xc7z020"], design["ecp5_85f"]
    assert design["accelerator"] == "gemm" and design["params"]["rows"] == 2
    assert zynq["usage"]["lut"] == zynq["lut_logic"] + zynq["lut_ram"] > 0 and zynq["fits"]
    assert zynq["usage"]["dsp"] > 0 and zynq["logic_depth"] > 1
    timing = ecp5["timing"]
    assert timing["source"] == "ECP5-85F P&R" and len(timing["per_seed"]) == 3
    assert timing["fmax_mhz"] == min(timing["per_seed"].values()) > 10
    path_ = timing["critical_path"]
    assert path_["from"] != "?" and path_["to"] != "?" and path_["cells"] >= 1
    assert path_["logic_ns"] > 0 and path_["routing_ns"] > 0
    # the part table's ECP5-85F capacities are nextpnr's own
    part = get_part("ecp5-85f")
    available = timing["available"]
    assert {name: available[cell] for name, cell in (("lut", "TRELLIS_COMB"), ("ff", "TRELLIS_FF"),
                                                     ("dsp", "MULT18X18D"), ("bram", "DP16KD"))} == part.capacity
    assert ecp5["usage"]["lut"] > 0 and ecp5["usage"]["ff"] > 0 and ecp5["fits"]
    assert ecp5["lut_logic"] > 0 and ecp5["logic_depth"] > 1

    # Both targets of `accelkit resources` now read the cached result; nothing is placed again.
    assert cli.main(["resources", "--accel", "gemm", "--params", PARAMS, "--target", "xc7z020"]) == 0
    out = capsys.readouterr()
    assert f"{timing['fmax_mhz']:.1f} MHz" in out.out and "cautious stand-in" in out.out
    assert "placing" not in out.err
    assert cli.main(["resources", "--accel", "gemm", "--params", PARAMS, "--target", "ecp5-85f"]) == 0
    out = capsys.readouterr()
    assert "using cached ECP5 timing" in out.err and "fits the Lattice ECP5-85F" in out.out

    clock = report_clock([GemmAccelerator(**TINY)])
    assert (clock.mhz, clock.source) == (timing["fmax_mhz"], "ECP5-85F P&R")
