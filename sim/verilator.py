"""Device backed by a verilated model and the native C++ harness (the fast path)."""

import ctypes
import os
import re
import shutil
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from ..driver.device import Device, DmaTiming
from ..errors import DeviceError, ParameterError, ToolchainError
from .toolchain import (MAKE_FLAGS, cache_root, content_hash, cached_build, make_flags, run_logged,
                        verilator_environment, verilator_version)

__all__ = ["VerilatorDevice", "cached_verilog", "convert_verilog", "build_native", "trace_kind", "VERILATOR_FLAGS", "single_eval_allowed",
           "single_eval_safe", "UNEVALUATED_INPUTS"]

HARNESS = Path(__file__).with_name("native") / "harness.cpp"

# Verilator's own optimizer at -O3 with fast X handling; the C++ is compiled at -O2
# (CXX_FLAGS and OPT_FAST): on the 8x8 GEMM, 256^3 job, the bare model ran at 1.55 M
# cycles/s at -O2, 1.51 M at -O3, 1.09 M at -O1 and 1.06 M with -O2 -march=native.
VERILATOR_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
                   "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC")
CXX_FLAGS = "-O2 -fPIC"


def cached_verilog(design_key) -> str | None:
    """The Verilog converted earlier for ``design_key``, or None (never converts)."""
    path = cache_root() / "verilog" / f"{design_key}.v"
    if not path.exists():
        return None
    text = path.read_text(errors="replace")
    return text if text.rstrip().endswith("endmodule") else None     # else cut short by a kill


def convert_verilog(shell, top_name, design_key=None, progress=None, platform=None) -> str:
    """Verilog of ``shell``; with a ``design_key`` (a hash of the sources and parameters) it is cached.

    ``platform`` is what the gateware's ``elaborate`` sees: None for simulation, or a
    platform naming an FPGA family (the ECP5 timing flow's gets hard multiplier blocks
    instantiated); a design key must then name the platform too.
    """
    if design_key:
        path = cache_root() / "verilog" / f"{design_key}.v"
        text = cached_verilog(design_key)
        if text is not None:
            _mark_used(shell)
            return text
    if progress:
        progress(f"converting {top_name} to Verilog")
    text = verilog.convert(shell, name=top_name, emit_src=False, platform=platform)
    if design_key:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return text


def _mark_used(elaboratable):
    # The cached Verilog stands in for elaborating the shell; tell Amaranth so it does
    # not warn that the shell and its core were created but never used.
    for item in (elaboratable, getattr(elaboratable, "core", None)):
        if item is not None:
            item._MustUse__silence = True


def trace_kind(trace):
    if trace is None:
        return None
    suffix = Path(trace).suffix.lower()
    if suffix not in (".fst", ".vcd"):
        raise DeviceError(f"waveform file must end in .fst or .vcd, not {Path(trace).name!r}")
    return suffix[1:]


# The inputs the harness's cycle() changes and then samples outputs without evaluating the model first
# (native/harness.cpp). The AXI4-Lite inputs are always followed by an evaluation (ak_write, ak_read), so
# s_axi_awready may depend on them; the stream outputs and irq are sampled with no evaluation at all.
UNEVALUATED_INPUTS = ("s_axis_tvalid", "s_axis_tdata", "s_axis_tlast", "m_axis_tready")
_SAMPLED_OUTPUTS = ("s_axis_tready", "m_axis_tvalid", "m_axis_tdata", "m_axis_tlast", "irq")
SINGLE_EVAL_MARK = "single-eval"
_FUNCTION = re.compile(r"\n(?:[\w:<>*&]+[ \t]+)+(\w+)\(([^)]*)\)[^;{]*\{\n(.*?)\n\}", re.S)


def single_eval_allowed(model_dir: Path) -> bool:
    """Does the generated model look fit for one evaluation per cycle (see forget_clock in harness.cpp)?

    A guard on Verilator's output, checked at build time: the model must have
    the clock member the harness clears, and an input-combinational region
    (every function reachable from one whose name has ``_ico``) that never
    assigns a sampled output, however the code spells the assignment
    (``vlSelfRef.x =``, ``vlSelf->x =``, ``TOP.x =``). Anything unrecognised
    means no. This is not the proof: :func:`single_eval_safe` also asks the
    netlist itself (:mod:`.combinational_paths`).
    """
    text = "".join(path.read_text() for path in sorted(model_dir.glob("Vtop___024root*.cpp")))
    header = model_dir / "Vtop___024root.h"
    if not header.exists() or "__Vtrigprevexpr___TOP__clk__0" not in header.read_text():
        return False
    functions = {}
    for name, _, body in _FUNCTION.findall(text):
        functions[name] = functions.get(name, "") + body
    region = [name for name in functions if "_ico" in name]
    if not any("_ico_sequent" in name for name in region):
        return False
    seen, pending = set(), list(region)
    while pending:       # everything the ico functions call, transitively
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(called for called in re.findall(r"\b(\w+)\s*\(", functions[name]) if called in functions)
    code = "".join(functions[name] for name in seen)
    outputs = "|".join(_SAMPLED_OUTPUTS)
    assigned = rf"\b(?:{outputs})\b(?:\s*\[[^\]]*\])*\s*(?:[-+*/%&|^]|<<|>>)?=(?!=)"
    # Verilator's VL_ macros (VL_ASSIGN_W, VL_ASSIGNSEL_...) write through an argument.
    passed = rf"\bVL_\w*\s*\([^;]*\b(?:{outputs})\b"
    return re.search(assigned, code) is None and re.search(passed, code) is None


def single_eval_safe(verilog_text, top_name, library, progress=None) -> bool:
    """May the harness evaluate this design's model once per cycle? Only when both checks say so.

    The build's guard on the generated code (:func:`single_eval_allowed`,
    recorded beside ``library``) and the proof on the netlist: no input that
    the harness changes without evaluating (:data:`UNEVALUATED_INPUTS`) reaches
    a top-level output through combinational logic. When Yosys cannot answer,
    the answer is no.
    """
    if not (Path(library).parent / SINGLE_EVAL_MARK).exists():
        return False
    from .combinational_paths import outputs_reached
    try:
        return not outputs_reached(verilog_text, top_name, UNEVALUATED_INPUTS, progress=progress)
    except (ToolchainError, ParameterError) as error:
        if progress:
            progress(f"one evaluation per cycle not proven safe for {top_name} ({error}); using two")
        return False


def build_native(verilog_text, top_name, trace_kind=None, progress=None) -> Path:
    """Compile the design and the harness into a shared library (cached by content hash)."""
    harness = HARNESS.read_text()
    flags = list(VERILATOR_FLAGS)
    defines = ""
    if trace_kind == "fst":
        flags.append("--trace-fst")
        defines = " -DAK_TRACE_FST=1"
    elif trace_kind == "vcd":
        flags.append("--trace")
        defines = " -DAK_TRACE_VCD=1"
    link_libraries = ["-llz4", "-lz"] if trace_kind == "fst" else []
    key = content_hash(verilog_text, top_name, flags, CXX_FLAGS + defines, link_libraries, MAKE_FLAGS, harness,
                       verilator_version())

    def build(work: Path):
        env = verilator_environment()
        if progress:
            progress(f"building the native simulator of {top_name} with Verilator (cache key {key[:12]})")
        (work / "top.v").write_text(verilog_text)
        (work / "harness.cpp").write_text(harness)
        command = ["verilator", "--cc", "top.v", "harness.cpp", "--top-module", top_name, "--prefix", "Vtop",
                   *flags, "--build", "-j", str(os.cpu_count() or 2),
                   "-CFLAGS", CXX_FLAGS + defines, "--Mdir", "obj", "-MAKEFLAGS", " ".join(make_flags())]
        seconds = run_logged(command, work, env, f"Verilator build of {top_name}")
        # Without --exe Verilator stops at static archives; link them and the harness into one .so.
        link = ["g++", "-shared", "-o", "libaccelkit.so", "obj/harness.o", "obj/libVtop.a", "obj/libverilated.a",
                "-pthread", *link_libraries]
        seconds += run_logged(link, work, env, f"linking the native simulator of {top_name}")
        if single_eval_allowed(work / "obj"):
            (work / SINGLE_EVAL_MARK).touch()
        shutil.rmtree(work / "obj", ignore_errors=True)
        if progress:
            progress(f"built {top_name} in {seconds:.1f} s")

    return cached_build("verilator", key, build, progress) / "libaccelkit.so"


_INT_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1


def _c_int(value, what):
    """``value`` checked to fit the harness's C ``int`` (ctypes would silently wrap it)."""
    if not 0 <= value <= _INT_MAX:
        raise DeviceError(f"{what} must be in 0..{_INT_MAX} for the native simulator, not {value}")
    return value


class _Library:
    def __init__(self, path):
        lib = ctypes.CDLL(str(path))
        vp, u32, u64, i64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64
        for name, restype, argtypes in [
            ("ak_open", vp, [ctypes.c_char_p, ctypes.c_int, u32, ctypes.c_int]),
            ("ak_close", None, [vp]),
            ("ak_set_dma", None, [vp, ctypes.c_int, ctypes.c_int]),
            ("ak_write", None, [vp, u32, u32]),
            ("ak_read", u32, [vp, u32]),
            ("ak_send", None, [vp, vp, ctypes.c_size_t]),
            ("ak_receive", None, [vp, vp, ctypes.c_size_t]),
            ("ak_run", i64, [vp, u64]),
            ("ak_total_cycles", u64, [vp]),
            ("ak_clock_only", None, [vp, u64]),
        ]:
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
        self.lib = lib


class VerilatorDevice(Device):
    """A verilated shell driven by the C++ harness; one ctypes call per transaction.

    ``library`` comes from :func:`build_native`. ``trace`` names an .fst or .vcd
    file (the library must have been built with the matching trace kind).
    ``single_eval`` lets the harness evaluate the model once per cycle; pass
    only what :func:`single_eval_safe` answered for this design.
    """

    backend = "verilator"

    def __init__(self, library, register_map, data_width, dma: DmaTiming | None = None, trace=None,
                 single_eval=False):
        super().__init__(register_map, data_width, dma)
        self._lib = _Library(library).lib
        self._keep = []   # buffers the harness reads or writes until the job finishes
        path = str(trace).encode() if trace else b""
        self.single_eval = bool(single_eval) and not trace    # tracing records both clock phases
        self._handle = self._lib.ak_open(path, self.beat_bytes, register_map["CTRL"].offset,
                                         int(self.single_eval))
        self._lib.ak_set_dma(self._handle, _c_int(self.dma.bytes_per_cycle, "DMA bytes per cycle"),
                             _c_int(self.dma.latency, "DMA latency"))

    @classmethod
    def from_shell(cls, shell, top_name, dma=None, trace=None, design_key=None, progress=None):
        text = convert_verilog(shell, top_name, design_key, progress)
        library = build_native(text, top_name, trace_kind(trace), progress)
        single_eval = not trace and single_eval_safe(text, top_name, library, progress)
        return cls(library, shell.register_map, shell.data_width, dma, trace, single_eval)

    def _live(self):
        if not self._handle:
            raise DeviceError("the Verilator device is closed")
        return self._handle

    def read_register(self, offset):
        return self._lib.ak_read(self._live(), offset)

    def write_register(self, offset, word):
        self._lib.ak_write(self._live(), offset, word)

    def dma_send(self, data):
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        self._check_beats(raw.size, "a DMA send")
        self._lib.ak_send(self._live(), raw.ctypes.data, raw.size)   # copied by the harness

    def dma_receive(self, nbytes):
        self._check_beats(nbytes, "a DMA receive")
        buffer = np.zeros(nbytes, dtype=np.uint8)
        self._keep.append(buffer)
        self._lib.ak_receive(self._live(), buffer.ctypes.data, nbytes)
        return buffer

    def _run(self, cycle_budget):
        # ak_run counts in int64 and returns -1 on timeout: a budget must fit that range
        if not 0 < cycle_budget <= _INT64_MAX:
            raise DeviceError(f"cycle budget must be in 1..{_INT64_MAX}, not {cycle_budget}")
        cycles = self._lib.ak_run(self._live(), cycle_budget)
        self._keep.clear()     # the harness has dropped the job's DMA queues either way
        if cycles < 0:
            return False, cycle_budget
        return True, cycles

    @property
    def total_cycles(self):
        """Every clock cycle simulated so far, register transactions included."""
        return self._lib.ak_total_cycles(self._live())

    def clock_only(self, cycles):
        """Clock the bare model ``cycles`` times (for the harness-overhead benchmark)."""
        self._lib.ak_clock_only(self._live(), cycles)

    def close(self):
        if self._handle:
            self._lib.ak_close(self._handle)
            self._handle = None
