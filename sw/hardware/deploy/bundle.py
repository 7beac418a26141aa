"""The board-side bundle: a pure-Python wheel with the device layer, the GEMM driver and the model runner.

What a user copies to a board: ``accelkit_board-VERSION-py3-none-any.whl``,
holding accelkit's device interface, the PYNQ and serial devices, the
transaction trace and replay, the register declarations, the layer kinds and
the CPU operators (numpy), the GEMM accelerator's plans, driver and cost model
(not its gateware), the model runner and report printer, and the
``accelkit-board`` command (``board_cli.py``). It depends on numpy and rich
(pynq comes with the PYNQ image; pyserial is an extra), so no Amaranth,
Verilator, LiteRT, TVM or TFLite reader is needed on the board: a model
travels as a board program (``board_program.py``), planned on the host.

The modules are copied unchanged, keeping their relative places, so their
relative imports hold inside ``accelkit_board``; :data:`BUNDLED` lists them and
:func:`check_bundle_sources` checks that they import nothing else of
accelkit's (but the gateware modules in :data:`GATEWARE_ONLY`, which only the
functions that build gateware import, and a board never calls), and parse as
Python 3.10. Their struct formats must name a byte order and their numpy
integers a width, so that no size depends on the board's word size (PYNQ-Z1/Z2
run 32-bit armv7l); this is checked on the source, since no 32-bit Python runs
here.
"""

import ast
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ....errors import ToolchainError

__all__ = ["BUNDLED", "GATEWARE_ONLY", "BOARD_PYTHON", "build_bundle", "check_bundle_sources", "BUNDLE_NAME"]

BUNDLE_NAME = "accelkit_board"
#: The oldest Python a supported board image has (PYNQ 3.0 images: 3.10).
BOARD_PYTHON = (3, 10)
#: accelkit modules in the bundle, relative to the package root. The layer kinds but block_matmul (llama.cpp
#: blocks, which need gguf and are no TFLite layer); packages without their ``__init__.py`` here get an empty one.
BUNDLED = ("errors.py", "hw/registers.py", "hw/serial_protocol.py", "hw/constants.py",
           "driver/device.py", "driver/pynq_device.py", "driver/serial_device.py", "driver/trace.py",
           "driver/layers.py", "driver/quant.py", "driver/plan.py", "driver/cpu_ops.py",
           "driver/kinds/__init__.py", "driver/kinds/base.py", "driver/kinds/fields.py", "driver/kinds/conv2d.py",
           "driver/kinds/fc.py", "driver/kinds/gemm.py", "driver/kinds/depthwise_conv2d.py",
           "driver/kinds/batch_matmul.py", "driver/kinds/tconv.py",
           "accelerators/base.py", "accelerators/gemm/__init__.py", "accelerators/gemm/layout.py",
           "accelerators/gemm/cost.py", "accelerators/gemm/driver.py", "accelerators/gemm/faults.py",
           "sw/reports/model_report.py", "sw/reports/tables.py",
           "sw/hardware/deploy/board_run.py", "sw/hardware/deploy/board_cli.py")
#: modules outside the bundle that bundled code imports inside functions a board never calls (building
#: gateware, writing result files on the host)
GATEWARE_ONLY = ("hw/shell", "accelerators/gemm/gateware", "accelerators/gemm/pe", "sw/reports/output")
_ROOT = Path(__file__).resolve().parents[3]

_PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "accelkit-board"
version = "{version}"
description = "accelkit on the board: PYNQ and serial devices, the GEMM driver, models, transaction replay"
requires-python = ">={python}"
dependencies = ["numpy>=1.21", "rich>=12"]

[project.optional-dependencies]
serial = ["pyserial>=3.5"]

[project.scripts]
accelkit-board = "accelkit_board.sw.hardware.deploy.board_cli:main"

[tool.setuptools]
packages = [{packages}]
"""


def _sources():
    return {path: _ROOT / path for path in BUNDLED}


def _packages():
    """Dotted names of the bundle's packages (every folder holding a bundled module, and their parents)."""
    folders = set()
    for path in BUNDLED:
        parent = Path(path).parent
        while parent != Path("."):
            folders.add(parent)
            parent = parent.parent
    return sorted(folders)


def _struct_formats(tree):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "struct"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.func.attr, node.args[0].value


def _platform_integers(tree):
    """Uses of numpy integers whose width is the platform's (32 bits on armv7l, 64 on x86-64 and aarch64)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np" \
                and node.attr in ("int_", "intp", "uint", "uintp", "long", "ulong"):
            yield node.lineno, f"np.{node.attr}"
        elif isinstance(node, ast.keyword) and node.arg == "dtype" and isinstance(node.value, ast.Name) \
                and node.value.id == "int":
            yield node.lineno, "dtype=int"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "astype" \
                and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "int":
            yield node.lineno, "astype(int)"


def check_bundle_sources():
    """Problems found in the bundled modules: imports leaving the bundle, syntax newer than :data:`BOARD_PYTHON`,
    struct formats and numpy integer types whose sizes depend on the machine."""
    problems = []
    inside = {Path(path).with_suffix("").as_posix() for path in BUNDLED}
    inside |= {f"{folder.as_posix()}/__init__" for folder in _packages()}
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
                    if module not in inside and f"{module}/__init__" not in inside and module not in GATEWARE_ONLY:
                        problems.append(f"{name}:{node.lineno}: imports {module!r}, which the bundle does not hold")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                for module in modules:
                    if module.split(".")[0] in ("accelkit", "amaranth", "tflite", "ai_edge_litert", "tvm",
                                                "verilator", "cocotb", "tomllib", "ctypes", "gguf"):
                        problems.append(f"{name}:{node.lineno}: imports {module}, unavailable on a board")
        for line, function, form in _struct_formats(tree):
            if not form or form[0] not in "<>!=":
                problems.append(f"{name}:{line}: struct.{function}({form!r}) uses the machine's native sizes and "
                                "alignment; name a byte order (<, >, ! or =)")
        for line, use in _platform_integers(tree):
            problems.append(f"{name}:{line}: {use} is 32 bits on a 32-bit board and 64 here; name the width "
                            "(np.int64, np.int32)")
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
        (package / "__init__.py").write_text('"""accelkit on a board: see accelkit\'s sw/hardware/deploy/bundle.py."""'
                                             f'\n\n__version__ = "{version}"\n')
        for folder in _packages():
            if not (package / folder / "__init__.py").exists():
                (package / folder / "__init__.py").write_text("")
        names = [BUNDLE_NAME] + [f"{BUNDLE_NAME}.{folder.as_posix().replace('/', '.')}" for folder in _packages()]
        (Path(work) / "pyproject.toml").write_text(_PYPROJECT.format(
            version=version, python=".".join(map(str, BOARD_PYTHON)), packages=", ".join(f'"{n}"' for n in names)))
        process = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                  "--wheel-dir", str(out_dir), work], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        if process.returncode != 0:
            raise ToolchainError(f"building the board bundle failed: {process.stdout.strip()[-2000:]}")
    wheels = sorted(out_dir.glob(f"{BUNDLE_NAME}-{version}-*.whl"))
    if not wheels:
        raise ToolchainError(f"pip wheel wrote no {BUNDLE_NAME} wheel into {out_dir}")
    return wheels[-1]
