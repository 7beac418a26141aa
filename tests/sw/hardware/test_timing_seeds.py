"""Per-seed caching of the ECP5 flow: a multi-seed result reuses single-seed runs and runs only the missing seeds.

The tools are replaced by a stand-in that writes nextpnr-shaped reports (the real flow runs once, on a
small design, in test_timing_flow.py), so what is checked here is the bookkeeping around them.
"""

import json
import threading
from pathlib import Path

import pytest

from accelkit.errors import ParameterError, ToolchainError
from accelkit.sw.hardware import timing

FMAX = {1: 120.0, 2: 95.5, 3: 101.25}


@pytest.fixture
def fake_tools(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCELKIT_CACHE", str(tmp_path / "cache"))
    calls = []
    lock = threading.Lock()

    def run(launcher, arguments, work, what, log=None):
        with lock:
            calls.append(what)
        work = Path(work)
        if launcher == timing._YOSYS:
            (work / "stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {"LUT4": 7}}}))
            (work / "ltp.txt").write_text("Longest topological path in top (length=4):")
            return ""
        seed = int(arguments[arguments.index("--seed") + 1])
        report = arguments[arguments.index("--report") + 1]
        step = {"from": {"cell": f"start{seed}"}, "to": {"cell": f"end{seed}"}, "delay": 1.0, "type": "logic"}
        (work / report).write_text(json.dumps({
            "fmax": {"clk": {"achieved": FMAX[seed], "constraint": 100.0}},
            "critical_paths": [{"path": [step, {**step, "type": "routing", "delay": 2.0}]}],
            "utilization": {"TRELLIS_COMB": {"used": 10 + seed, "available": 83640}}}))
        return ""
    monkeypatch.setattr(timing, "_run", run)
    monkeypatch.setattr(timing, "_versions", lambda: ("y", "n"))
    return calls


def _pnr(calls):
    return sorted(int(call.split("seed ")[1].rstrip(")")) for call in calls if call.startswith("nextpnr"))


def test_multi_seed_result_reuses_a_single_seed_run(fake_tools):
    one = timing.ecp5_timing("module top; endmodule", "top", seeds=(1,))
    assert one.fmax_mhz == 120.0 and one.per_seed == {"1": 120.0} and _pnr(fake_tools) == [1]
    fake_tools.clear()
    three = timing.ecp5_timing("module top; endmodule", "top", seeds=(1, 2, 3), jobs=2)
    assert _pnr(fake_tools) == [2, 3]                  # seed 1 came from its own cache entry
    assert three.per_seed == {"1": 120.0, "2": 95.5, "3": 101.25}
    assert three.fmax_mhz == 95.5 and (three.path_from, three.path_to) == ("start2", "end2")
    assert three.utilisation == {"TRELLIS_COMB": 12} and three.cells == {"LUT4": 7} and three.logic_depth == 4
    fake_tools.clear()
    assert timing.ecp5_timing("module top; endmodule", "top", seeds=(1, 2, 3)) == three and fake_tools == []
    assert timing.cached_timing("module top; endmodule", "top", seeds=(3,)).fmax_mhz == 101.25


def test_jobs_must_be_a_positive_integer(fake_tools, monkeypatch):
    with pytest.raises(ParameterError, match="positive integer"):
        timing.ecp5_timing("module top; endmodule", "top", seeds=(1, 2), jobs=0)
    monkeypatch.setenv("ACCELKIT_PNR_JOBS", "many")
    with pytest.raises(ParameterError, match="ACCELKIT_PNR_JOBS"):
        timing.ecp5_timing("module top; endmodule", "top", seeds=(1, 2))


def test_abc9_failure_falls_back_to_abc_and_says_so(fake_tools, monkeypatch):
    fake_run = timing._run
    scripts = []

    def run(launcher, arguments, work, what, log=None):
        if launcher == timing._YOSYS:
            scripts.append(arguments[arguments.index("-p") + 1])
            if "abc -dress" not in scripts[-1]:      # ABC9, as Yosys 0.70 fails on flexarray's small design
                raise ToolchainError(f"{what} failed (exit status 1); last lines:\n2.46.16.7. Executing "
                                     "ABC_OPS_REINTEGRATE pass\nERROR: Assert `GetSize(conn.first) == "
                                     "GetSize(conn.second)' failed")
        return fake_run(launcher, arguments, work, what, log)
    monkeypatch.setattr(timing, "_run", run)
    messages = []
    result = timing.ecp5_timing("module top; endmodule", "top", seeds=(1,), progress=messages.append)
    assert result.lut_mapper == "abc" and result.fmax_mhz == 120.0 and result.cells == {"LUT4": 7}
    assert len(scripts) == 2 and "-run :map_luts" in scripts[1] and "-run map_cells:" in scripts[1]
    assert any("ABC9 failed" in m and "GetSize(conn.first)" in m for m in messages)


def test_other_yosys_failures_are_not_retried(fake_tools, monkeypatch):
    def run(launcher, arguments, work, what, log=None):
        raise ToolchainError(f"{what} failed (exit status 1); last lines:\nERROR: syntax error")
    monkeypatch.setattr(timing, "_run", run)
    with pytest.raises(ToolchainError, match="syntax error"):
        timing.ecp5_timing("module top; endmodule", "top", seeds=(1,))


def test_a_tool_that_fails_silently_shows_the_error_from_its_log(tmp_path):
    # as Yosys with -q did on an assertion inside ABC9: exit status 1, nothing printed, the ERROR in its log
    silent = "import sys; open('tool.log', 'w').write('2. Executing ABC9.\\nERROR: Assert failed\\n'); sys.exit(1)"
    with pytest.raises(ToolchainError, match="(?s)exit status 1.*ERROR: Assert failed"):
        timing._run(silent, [], tmp_path, "the tool", log=tmp_path / "tool.log")
    with pytest.raises(ToolchainError) as error:
        timing._run(silent, [], tmp_path, "the tool")
    assert "Assert" not in str(error.value)
