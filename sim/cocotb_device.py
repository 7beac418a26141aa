"""Device backed by cocotb: the shell runs under a cocotb test in a simulator subprocess.

The caller keeps the synchronous :class:`~accelkit.driver.device.Device`
interface. ``cocotb_tools.runner`` launches the simulator (Verilator, or Icarus
when installed) in a background thread of the caller's process; the cocotb test
(``cocotb_bench/test_accelkit.py``) connects back over a Unix socket and serves
one request per device primitive. Registers go through cocotbext-axi's
``AxiLiteMaster``; the DMA channels follow the shared per-cycle rules, so the
hardware counters match the Verilator and Amaranth devices exactly.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from multiprocessing import AuthenticationError
from multiprocessing.connection import Listener
from pathlib import Path

import numpy as np

from ..driver.device import Device, DmaTiming
from ..errors import DeviceError, ToolchainError
from .toolchain import MAKE_FLAGS, cached_build, content_hash, make_flags, verilator_environment, verilator_version
from .verilator import VERILATOR_FLAGS, trace_kind, convert_verilog

__all__ = ["CocotbDevice", "build_cocotb", "SIMULATORS"]

SIMULATORS = ("verilator", "icarus")
TEST_MODULE = "accelkit.sim.cocotb_bench.test_accelkit"
CONFIG_VARIABLE = "ACCELKIT_COCOTB_CONFIG"   # read by the test module
# Amaranth's Verilog has no `timescale; the 10 ns cocotb clock needs sub-ns precision.
TIMESCALE = ("1ns", "1ps")

_environ_lock = threading.Lock()


def _log_tail(path, lines=25):
    with contextlib.suppress(OSError):
        text = Path(path).read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])
    return "(no log)"


@contextlib.contextmanager
def _patched_environ(values):
    """The runner finds its tools through ``os.environ``, so set them there for the build only."""
    with _environ_lock:
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _runner(simulator):
    if simulator not in SIMULATORS:
        raise DeviceError(f"cocotb simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "icarus" and shutil.which("iverilog") is None:
        raise ToolchainError("the cocotb backend with simulator='icarus' needs Icarus Verilog, but "
                             "iverilog not found on PATH; apt-get install iverilog")
    try:
        from cocotb_tools.runner import get_runner
    except ImportError:
        raise ToolchainError("cocotb is not installed: `pip install cocotb==2.1.0` (accelkit's dependency) "
                             "brings it") from None
    try:
        return get_runner(simulator)
    except SystemExit as error:      # the runner reports a missing tool this way
        raise ToolchainError(f"cocotb runner for {simulator}: {error}") from None


def _check_trace(simulator, trace_kind):
    if simulator == "icarus" and trace_kind == "vcd":
        # The runner always passes vvp its -fst switch when waves are on.
        raise DeviceError("the cocotb runner makes Icarus write FST waveforms only; name the trace file *.fst")


def _simulator_version(simulator):
    if simulator == "verilator":
        return verilator_version()
    result = subprocess.run(["iverilog", "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


def build_cocotb(verilog_text, top_name, simulator="verilator", trace_kind=None, progress=None) -> Path:
    """Build the design for a cocotb run; returns the build directory (cached by content hash)."""
    runner = _runner(simulator)
    _check_trace(simulator, trace_kind)
    import cocotb
    import cocotb_tools.config
    waves = trace_kind is not None
    args = list(VERILATOR_FLAGS) if simulator == "verilator" else []
    if trace_kind == "fst" and simulator == "verilator":
        args.append("--trace-fst")       # the runner adds --trace; with both Verilator writes FST
    # libs_dir is in the key because the Verilator binary links cocotb's VPI library by absolute rpath.
    key = content_hash(verilog_text, top_name, simulator, _simulator_version(simulator), args, waves, TIMESCALE,
                       MAKE_FLAGS, cocotb.__version__, cocotb_tools.config.libs_dir)

    def build(work: Path):
        if progress:
            progress(f"building the cocotb {simulator} simulator of {top_name} (cache key {key[:12]})")
        source = work / "top.v"
        source.write_text(verilog_text)
        log = work / "build.log"
        if simulator == "verilator":
            env = verilator_environment()
            # The runner calls make itself; command-line variables in MAKEFLAGS reach it.
            # The optimisation levels are the native build's, so the two routes compare fairly.
            flags = " ".join(filter(None, [os.environ.get("MAKEFLAGS", ""), *make_flags()]))
            patch = {"PATH": env["PATH"], "VERILATOR_ROOT": env["VERILATOR_ROOT"], "MAKEFLAGS": flags}
            build_dir = work / "obj"
        else:
            patch, build_dir = {}, work
        started = time.monotonic()
        try:
            with _patched_environ(patch):
                runner.build(sources=[source], hdl_toplevel=top_name, build_dir=build_dir, build_args=args,
                             waves=waves, timescale=TIMESCALE, always=True, log_file=log)
        except (Exception, SystemExit) as error:
            raise ToolchainError(f"cocotb {simulator} build of {top_name} failed ({error}); "
                                 f"last lines of its log:\n{_log_tail(log)}") from None
        if simulator == "verilator":
            # Only the executable is needed to run; the objects and precompiled headers
            # of the 8x8 array take some 140 MB.
            os.replace(build_dir / top_name, work / top_name)
            shutil.rmtree(build_dir, ignore_errors=True)
        if progress:
            progress(f"built {top_name} for cocotb/{simulator} in {time.monotonic() - started:.1f} s")

    return cached_build("cocotb", key, build, progress)


class _Session:
    """The simulator side of one device: runner thread, working directory, outcome.

    Kept apart from the device so that the thread does not keep a dropped
    device alive (its finalizer then ends the simulation).
    """

    def __init__(self, simulator):
        self.simulator = simulator
        self.work = Path(tempfile.mkdtemp(prefix="accelkit-cocotb-"))
        self.address = str(self.work / "bridge.sock")
        self.log_path = self.work / "sim.log"
        self.connected = False
        self.ended = False         # runner.test has returned or raised
        self.pid = None            # the simulator process (cocotb's Python runs inside it)
        self.failure = None        # what ended runner.test abnormally
        self.results = None        # results.xml of a normal end
        self.thread = None

    def start(self, runner, arguments):
        self.thread = threading.Thread(target=self._simulate, args=(runner, arguments), daemon=True,
                                       name=f"cocotb-{self.simulator}")
        self.thread.start()

    def _simulate(self, runner, arguments):
        try:
            self.results = runner.test(**arguments)
        except BaseException as error:        # runner.test calls sys.exit when the simulator fails
            self.failure = error
        finally:
            self.ended = True
            if not self.connected:
                self.poke()

    def poke(self):
        """Wake a pending accept(); the handshake then fails and the caller reports why."""
        with contextlib.suppress(OSError):
            with socket.socket(socket.AF_UNIX) as poke:
                poke.connect(self.address)

    @property
    def alive(self):
        return self.thread.is_alive()

    def error(self, what, cause=None):
        reasons = []
        if cause is not None and not isinstance(cause, EOFError):
            reasons.append(f"{type(cause).__name__}: {cause}")
        if self.failure is not None:
            if isinstance(self.failure, SystemExit):
                reasons.append(f"the cocotb runner exited with status {self.failure.code!r}")
            else:
                reasons.append(f"the cocotb runner failed with {type(self.failure).__name__}: {self.failure}")
        elif not self.alive:
            reasons.append("the simulator exited")
        detail = "; ".join(reasons) or "no reason given"
        return DeviceError(f"cocotb/{self.simulator}: {what} ({detail}); last lines of {self.log_path}:\n"
                           f"{_log_tail(self.log_path)}")

    def failed_tests(self):
        if self.failure is not None:
            return "the simulator failed"
        from cocotb_tools.runner import get_results
        try:
            tests, failed = get_results(self.results)
        except (RuntimeError, TypeError, OSError) as error:
            return f"it left no test results ({error})"
        return f"{failed} of {tests} cocotb tests failed" if failed else None

    def kill(self):
        """Stop a simulator that cannot be asked to finish (it may be deep in a long run)."""
        if self.pid is not None and self.alive:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)
            self.thread.join(10)

    def remove(self):
        shutil.rmtree(self.work, ignore_errors=True)


def _abandon(conn, session):
    """Finalizer of a device dropped without close(): EOF on the socket ends the cocotb test."""
    with contextlib.suppress(OSError):
        conn.close()
    session.thread.join(2)
    session.kill()     # still running: it was inside a long _run and has not read the EOF yet
    session.remove()


class CocotbDevice(Device):
    """The shell under cocotb, driven through the synchronous Device interface.

    ``build_dir`` comes from :func:`build_cocotb`. ``trace`` names an .fst or
    .vcd file (the build must have been made with the matching trace kind); it
    is complete once :meth:`close` returns. ``startup_timeout`` bounds the wait
    for the simulator to connect, in seconds.

    Every cycle passes through Python: expect tens of thousands of cycles per
    second with Verilator, some twenty times fewer than the native harness.
    """

    backend = "cocotb"

    def __init__(self, build_dir, top_name, register_map, data_width, dma: DmaTiming | None = None, trace=None,
                 simulator="verilator", startup_timeout=120.0):
        super().__init__(register_map, data_width, dma)
        self.simulator = simulator
        self._conn = None
        self._pending = []             # receive buffers of the job in flight, in queue order
        runner = _runner(simulator)
        test_args, plusargs = [], []
        if trace is not None:
            _check_trace(simulator, trace_kind(trace))
            trace = Path(trace).resolve()
            trace.parent.mkdir(parents=True, exist_ok=True)
            if simulator == "verilator":
                test_args = ["--trace", "--trace-file", str(trace)]
            else:
                plusargs = [f"+dumpfile_path={trace}"]
        self.trace = trace
        session = self._session = _Session(simulator)
        authkey = secrets.token_bytes(32)
        config = {"address": session.address, "authkey": authkey.hex(), "beat_bytes": self.beat_bytes,
                  "ctrl_offset": register_map["CTRL"].offset, "bytes_per_cycle": self.dma.bytes_per_cycle,
                  "latency": self.dma.latency}
        arguments = dict(test_module=TEST_MODULE, hdl_toplevel=top_name, hdl_toplevel_lang="verilog",
                         build_dir=Path(build_dir), test_dir=session.work,
                         results_xml=str(session.work / "results.xml"),
                         extra_env={CONFIG_VARIABLE: json.dumps(config)}, test_args=test_args, plusargs=plusargs,
                         waves=trace is not None and simulator == "icarus", timescale=TIMESCALE,
                         log_file=session.log_path)
        listener = Listener(session.address, family="AF_UNIX", authkey=authkey)
        session.start(runner, arguments)
        # accept() has no timeout: the runner thread (when it ends) or this timer pokes
        # the socket, so a simulator that never connects cannot hang the caller.
        watchdog = threading.Timer(startup_timeout, session.poke)
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                self._conn = listener.accept()
            except (EOFError, OSError, AuthenticationError):
                if not session.ended:
                    raise DeviceError(f"cocotb/{simulator}: the simulator did not connect within "
                                      f"{startup_timeout} s; its log is {session.log_path}") from None
                session.thread.join(5)
                raise session.error("the simulator did not start under cocotb") from None
            session.connected = True
            session.pid = self._expect_ok(self._receive("starting the test bench"), "starting the test bench")["pid"]
        except BaseException:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise
        finally:
            watchdog.cancel()
            listener.close()
        self._finalizer = weakref.finalize(self, _abandon, self._conn, session)

    @classmethod
    def from_shell(cls, shell, top_name, dma=None, trace=None, design_key=None, progress=None,
                   simulator="verilator"):
        kind = trace_kind(trace)
        text = convert_verilog(shell, top_name, design_key, progress)
        build_dir = build_cocotb(text, top_name, simulator, kind, progress)
        return cls(build_dir, top_name, shell.register_map, shell.data_width, dma, trace, simulator)

    @property
    def log_path(self) -> Path:
        """The simulator's output (cocotb log); removed by a clean close()."""
        return self._session.log_path

    # -- the bridge --
    def _receive(self, what):
        conn, session = self._conn, self._session
        # Polling lets a dead simulator surface as an error instead of a hang.
        while not conn.poll(0.2):
            if not session.alive and not conn.poll(0):
                raise session.error(f"the simulator stopped while {what}")
        try:
            return conn.recv()
        except (EOFError, OSError) as error:
            session.thread.join(5)
            raise session.error(f"the simulator went away while {what}", error) from None

    def _expect_ok(self, reply, what):
        if reply[0] == "error":
            raise DeviceError(f"cocotb/{self.simulator}: {what} failed in the simulator: {reply[1]}\n{reply[2]}")
        return reply[1]

    def _request(self, *request):
        if self._conn is None:
            raise DeviceError("the cocotb device is closed")
        what = f"serving {request[0]!r}"
        try:
            self._conn.send(request)
        except OSError as error:
            raise self._session.error(f"the simulator went away before {what}", error) from None
        try:
            reply = self._receive(what)
        except (KeyboardInterrupt, SystemExit):
            # The reply would arrive out of step with the next request; this device is done.
            self._discard()
            raise
        return self._expect_ok(reply, what)

    def _discard(self):
        conn, self._conn = self._conn, None
        self._finalizer.detach()
        conn.close()
        self._session.kill()

    # -- primitives --
    def read_register(self, offset):
        return self._request("read", int(offset))

    def write_register(self, offset, word):
        self._request("write", int(offset), int(word))

    def dma_send(self, data):
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        self._check_beats(raw.size, "a DMA send")
        self._request("send", raw.tobytes())

    def dma_receive(self, nbytes):
        self._check_beats(nbytes, "a DMA receive")
        self._request("receive", int(nbytes))
        buffer = np.zeros(nbytes, dtype=np.uint8)
        self._pending.append(buffer)
        return buffer

    def _run(self, cycle_budget):
        finished, cycles, received = self._request("run", int(cycle_budget))
        # Copied on every return, not only at the end, so a timed-out job shows its partial output.
        for buffer, data in zip(self._pending, received):
            buffer[:] = np.frombuffer(data, dtype=np.uint8)
        self._pending.clear()     # the test bench has dropped the job's DMA queues either way
        return finished, cycles

    @property
    def total_cycles(self):
        """Every clock cycle simulated since reset, register transactions included."""
        return self._request("cycles")

    def close(self):
        """Finish the cocotb test and wait for the simulator to exit (which completes the waveform)."""
        conn, session = self._conn, self._session
        if conn is None:
            return
        self._finalizer.detach()
        try:
            self._request("close")
        finally:
            self._conn = None
            conn.close()
            session.thread.join(60)
        if session.alive:
            session.kill()
            raise DeviceError(f"cocotb/{self.simulator}: the simulator did not exit within 60 s of close and "
                              f"was terminated; its log is {session.log_path}")
        failure = session.failed_tests()
        if failure:
            raise session.error(f"the cocotb run did not end cleanly: {failure}")
        session.remove()
