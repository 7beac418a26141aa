"""The board-side bundle: a pure-Python wheel with the device layer only, for the board's own Python.

What a user copies to a board: ``accelkit_board-VERSION-py3-none-any.whl``,
holding accelkit's device interface (``driver/device.py``), the PYNQ and
serial devices, the transaction trace and replay, the register declarations
and the exception family, plus the ``accelkit-board`` command
(``driver/board_cli.py``). It depends on numpy only (pynq comes with the PYNQ image;
pyserial is an extra), so no Amaranth, Verilator, LiteRT or TVM is needed on
the board, and nothing in it depends on the word size: PYNQ-Z1/Z2 images are
32-bit armv7l with Python 3.10, the KV260's aarch64.

The modules are copied unchanged, keeping their relative places, so their
relative imports hold inside ``accelkit_board``; :data:`BUNDLED` lists them and
:func:`check_bundle_sources` checks that they import nothing else of
accelkit's and parse as Python 3.10.
"""

import ast
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ....errors import ToolchainError

__all__ = ["BUNDLED", "BOARD_PYTHON", "build_bundle", "check_bundle_sources", "BUNDLE_NAME"]

BUNDLE_NAME = "accelkit_board"
#: The oldest Python a supported board image has (PYNQ 3.0 images: 3.10).
BOARD_PYTHON = (3, 10)
#: accelkit modules in the bundle, relative to the package root.
BUNDLED = ("errors.py", "hw/registers.py", "hw/serial_protocol.py", "driver/device.py", "driver/pynq_device.py",
           "driver/serial_device.py", "driver/trace.py", "driver/board_cli.py")
_ROOT = Path(__file__).resolve().parents[3]

_PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "accelkit-board"
version = "{version}"
description = "accelkit's device layer for the board: PYNQ and serial devices, transaction replay"
requires-python = ">={python}"
dependencies = ["numpy>=1.21"]

[project.optional-dependencies]
serial = ["pyserial>=3.5"]

[project.scripts]
accelkit-board = "accelkit_board.driver.board_cli:main"

[tool.setuptools]
packages = ["accelkit_board", "accelkit_board.hw", "accelkit_board.driver"]
"""


def _sources():
    return {path: _ROOT / path for path in BUNDLED}


def check_bundle_sources():
    """Problems found in the bundled modules: imports leaving the bundle, syntax newer than :data:`BOARD_PYTHON`."""
    problems = []
    inside = {Path(path).with_suffix("").as_posix() for path in BUNDLED}
    for name, source in _sources().items():
        text = source.read_text()
        try:
            tree = ast.parse(text, filename=name, feature_version=BOARD_PYTHON)
        except SyntaxError as error:
            problems.append(f"{name}: not Python {'.'.join(map(str, BOARD_PYTHON))} syntax: {error}")
            continue
        package = Path(name).parent
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.parent
                target = (base / (node.module or "").replace(".", "/")).as_posix().lstrip("./")
                names = [target] if node.module else [f"{target}/{alias.name}".lstrip("/") for alias in node.names]
                for module in names:
                    if module not in inside:
                        problems.append(f"{name}:{node.lineno}: imports {module!r}, which the bundle does not hold")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                for module in modules:
                    if module.split(".")[0] in ("accelkit", "amaranth", "tflite", "ai_edge_litert", "tvm",
                                                "verilator", "cocotb", "tomllib"):
                        problems.append(f"{name}:{node.lineno}: imports {module}, unavailable on a board")
    return problems


def build_bundle(out_dir, *, version="0.1.0") -> Path:
    """Build the bundle's wheel into ``out_dir`` and return its path (pip, offline, no build isolation)."""
    problems = check_bundle_sources()
    if problems:
        raise ToolchainError("the board bundle's sources do not stand alone:\n" + "\n".join(problems))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="accelkit-bundle-") as work:
        package = Path(work) / BUNDLE_NAME
        for name, source in _sources().items():
            target = package / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
        for folder in (package, package / "hw", package / "driver"):
            (folder / "__init__.py").write_text('"""accelkit\'s device layer, as bundled for a board."""\n'
                                                if folder == package else "")
        (Path(work) / "pyproject.toml").write_text(_PYPROJECT.format(version=version,
                                                                     python=".".join(map(str, BOARD_PYTHON))))
        process = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                  "--wheel-dir", str(out_dir), work], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        if process.returncode != 0:
            raise ToolchainError(f"building the board bundle failed: {process.stdout.strip()[-2000:]}")
    wheels = sorted(out_dir.glob(f"{BUNDLE_NAME}-{version}-*.whl"))
    if not wheels:
        raise ToolchainError(f"pip wheel wrote no {BUNDLE_NAME} wheel into {out_dir}")
    return wheels[-1]
