"""Instructions per simulated cycle of the native Verilator route, counted by callgrind (load-independent).

    PYTHONPATH=... python scripts/sim_instructions.py [--baseline COMMIT] [--size 64] [--bare 20000]

Records the native harness calls of one SIZE^3 GEMM job (default accelerator: the 8x8 gemm) and of a
bare loop of BARE idle cycles, replays them from a small C++ program (scripts/replay.cpp) under
``valgrind --tool=callgrind`` and prints the instructions per cycle of the job (ak_write, ak_read, ak_run)
and of the bare loop (ak_clock_only), with the generated functions that cost most. ``--baseline``
records and replays the same job at another commit too (its own code and design, via ``git archive``),
so the two figures come from one run. Needs valgrind and g++.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


class _Recorded:
    """A ctypes function of libaccelkit.so that appends each call to the log."""

    def __init__(self, function, name, log):
        object.__setattr__(self, "_function", function)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_log", log)

    def __setattr__(self, key, value):      # restype, argtypes
        setattr(self._function, key, value)

    def __call__(self, *args):
        result = self._function(*args)
        name, log = self._name, self._log
        if name == "ak_open":
            log.append(f"open {args[1]} {args[2]} {args[3]}")
        elif name == "ak_set_dma":
            log.append(f"set_dma {args[1]} {args[2]}")
        elif name == "ak_write":
            log.append(f"write {args[1]} {args[2]}")
        elif name == "ak_read":
            log.append(f"read {args[1]}")
        elif name == "ak_send":
            log.append(f"send {ctypes.string_at(args[1], args[2]).hex()}")
        elif name == "ak_receive":
            log.append(f"receive {args[2]}")
        elif name == "ak_run":
            log.append(f"run {args[1]} {result}")
        elif name == "ak_clock_only":
            log.append(f"clock_only {args[1]}")
        return result


class _RecordedLibrary:
    def __init__(self, library, log):
        self._library, self._log = library, log

    def __getattr__(self, name):
        function = getattr(self._library, name)
        recorded = _Recorded(function, name, self._log) if name.startswith("ak_") else function
        setattr(self, name, recorded)
        return recorded


def record(out_dir, size, bare, seed):
    """Run one GEMM and a bare loop on the native route with the harness calls logged (any commit's code)."""
    import numpy as np
    libraries, log = [], []
    real_cdll = ctypes.CDLL

    def cdll(name, *args, **kwargs):
        library = real_cdll(name, *args, **kwargs)
        if str(name).endswith("libaccelkit.so"):
            libraries.append(str(name))
            return _RecordedLibrary(library, log)
        return library

    ctypes.CDLL = cdll
    from accelkit.accelerators.base import get_accelerator
    from accelkit.driver.device import DmaTiming
    try:
        from accelkit.sw.execution.devices import open_device
        from accelkit.sw.verification.random_layers import random_gemm
    except ImportError:
        from accelkit.sw.devices import open_device
        from accelkit.sw.random_layers import random_gemm
    accelerator = get_accelerator("gemm", {"rows": 8, "cols": 8})
    gemm = random_gemm(np.random.default_rng(seed), size, size, size)
    with open_device(accelerator, "verilator", DmaTiming(8, 0)) as device:
        if hasattr(accelerator, "run_gemm"):
            out, stats = accelerator.run_gemm(device, gemm)
        else:
            from accelkit.driver.kinds.gemm import Gemm
            layer, a = Gemm.of(gemm)
            out, stats = accelerator.run(accelerator.plan(layer, a.shape), device, a)
        device.clock_only(bare)
    if not np.array_equal(out, gemm.reference()):
        raise SystemExit("sim_instructions: the recorded GEMM is not bit-exact")
    out_dir = Path(out_dir)
    (out_dir / "calls.log").write_text("\n".join(log) + "\n")
    (out_dir / "library").write_text(libraries[-1])
    (out_dir / "job_cycles").write_text(str(int(stats.cycles)))


_FUNCTIONS = ("ak_write", "ak_read", "ak_run", "ak_clock_only")


def replay(folder, replayer, top=8):
    """(job instructions per cycle, bare instructions per cycle, job cycles, costliest functions) under callgrind."""
    folder = Path(folder)
    library = (folder / "library").read_text()
    out = folder / "callgrind.out"
    result = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(replayer), library,
                             str(folder / "calls.log")], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"sim_instructions: the replay failed:\n{result.stderr[-2000:]}")
    counts = re.search(r"cycles (\d+) bare (\d+)", result.stdout)
    annotate = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)], capture_output=True,
                              text=True, check=True).stdout
    inclusive = {}
    for line in annotate.splitlines():
        match = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*?:?(\w+)(?: \[|$|\()", line)
        if match and match.group(2) in _FUNCTIONS:
            inclusive[match.group(2)] = int(match.group(1).replace(",", ""))
    self_cost = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True,
                               check=True).stdout
    costliest = []
    for line in self_cost.splitlines():
        match = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(\S+)", line)
        if match and "Vtop" in line and len(costliest) < top:
            costliest.append((match.group(3).split(":")[-1].split("(")[0], float(match.group(2))))
    job = sum(inclusive.get(name, 0) for name in ("ak_write", "ak_read", "ak_run"))
    cycles, bare = int(counts.group(1)), int(counts.group(2))
    return job / cycles, inclusive.get("ak_clock_only", 0) / max(bare, 1), cycles, costliest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="COMMIT", help="also count this commit's native route")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--bare", type=int, default=20000, help="idle cycles of the bare loop (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.record:
        record(args.record, args.size, args.bare, args.seed)
        return 0
    for tool in ("valgrind", "callgrind_annotate", "g++"):
        if shutil.which(tool) is None:
            print(f"sim_instructions: {tool} is not on PATH (Debian: apt-get install valgrind g++)", file=sys.stderr)
            return 2
    import accelkit
    # the folder that holds this accelkit (not resolved: it may be a link named accelkit to a worktree)
    sides = [("this tree", os.path.dirname(os.path.dirname(os.path.abspath(accelkit.__file__))))]
    if args.baseline:
        from accelkit.sw.benchmarks.simulation import _baseline_sources
        from accelkit.errors import ParameterError
        try:
            commit, parent = _baseline_sources(args.baseline, lambda message: print(message, file=sys.stderr))
        except ParameterError as error:
            print(f"sim_instructions: {error}", file=sys.stderr)
            return 2
        sides.append((commit[:9], str(parent)))
    with tempfile.TemporaryDirectory(prefix="accelkit-replay-") as work:
        replayer = Path(work) / "replay"
        subprocess.run(["g++", "-O2", "-o", str(replayer), str(HERE / "replay.cpp"), "-ldl"], check=True)
        results = {}
        for label, path in sides:
            folder = Path(work) / re.sub(r"\W", "_", label)
            folder.mkdir()
            env = {**os.environ, "PYTHONPATH": path}
            process = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--record", str(folder),
                                      "--size", str(args.size), "--bare", str(args.bare), "--seed", str(args.seed)],
                                     env=env, capture_output=True, text=True)
            if process.returncode:
                print(f"sim_instructions: recording {label} failed:\n{process.stderr[-3000:]}", file=sys.stderr)
                return 1
            job, bare, cycles, costliest = replay(folder, replayer)
            results[label] = {"job_instructions_per_cycle": job, "bare_instructions_per_cycle": bare,
                              "cycles": cycles, "job_cycles": int((folder / "job_cycles").read_text()),
                              "costliest": costliest}
            print(f"{label}: {args.size}^3 GEMM {results[label]['job_cycles']} job cycles ({cycles} with register "
                  f"transactions): {job:,.0f} instructions/cycle; bare loop {bare:,.0f} instructions/cycle")
            print("  costliest: " + ", ".join(f"{name} {share:.1f}%" for name, share in costliest))
        if args.baseline:
            ours, theirs = results["this tree"], results[sides[1][0]]
            print(f"job: {ours['job_instructions_per_cycle'] / theirs['job_instructions_per_cycle']:.1%} of the "
                  f"baseline's instructions per cycle (speed {theirs['job_instructions_per_cycle'] / ours['job_instructions_per_cycle']:.1%}); "
                  f"bare loop: {ours['bare_instructions_per_cycle'] / theirs['bare_instructions_per_cycle']:.1%}")
        print("JSON " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
