"""The example plug-in (``examples/vecmac``): a separate package that registers through the entry point.

It is installed with pip into a temporary folder and used only by subprocesses that
have that folder on ``PYTHONPATH``, so it never joins this environment's registry
(benchmarks and searches over registered accelerators must not pick it up). In
there it must be listed, pass the generated conformance exactly as the built-in
accelerators do (tests/accelerators/test_conformance.py, selected by its name),
and run a zoo model bit-exact with its layers offloaded.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from accelkit.accelerators.base import registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "vecmac"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """A folder holding the installed example package (its code and its dist-info with the entry point)."""
    assert "vecmac" not in registry(), ("accelkit-vecmac is installed in this environment (pip uninstall "
                                        "accelkit-vecmac): this test checks that the example stays out of it")
    root = tmp_path_factory.mktemp("vecmac")
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = root / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = root / "site"
    # No build isolation and no index: the environment's setuptools (the test extra) builds it offline.
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                "--no-index", "--disable-pip-version-check", "--target", str(site), str(source)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield site
    assert "vecmac" not in registry(), "the example plug-in leaked into this environment's registry"
    with pytest.raises(PackageNotFoundError):
        distribution("accelkit-vecmac")


def _run(site, *args, timeout=600):
    """``python args...`` in the repository with the example package on the path; the finished process."""
    path = os.pathsep.join(filter(None, (str(site), os.environ.get("PYTHONPATH"))))
    return subprocess.run([sys.executable, *args], cwd=REPO, env={**os.environ, "PYTHONPATH": path},
                          capture_output=True, text=True, timeout=timeout)


def _accelkit(site, tmp_path, *args):
    """``accelkit args... --json FILE`` with the example installed; (process, JSON record)."""
    record = tmp_path / "record.json"
    done = _run(site, "-m", "accelkit.sw.commands.main", *args, "--json", str(record))
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(record.read_text())


def test_listed_by_accelkit_accelerators(plugin_site, tmp_path):
    done, record = _accelkit(plugin_site, tmp_path, "accelerators")
    listed = {entry["name"]: entry for entry in record["accelerators"]}
    assert "vecmac" in done.stdout
    assert listed["vecmac"]["available"], listed["vecmac"]
    assert set(listed["vecmac"]["kinds"]) == {"fc", "gemm", "conv2d"}
    assert {p["name"] for p in listed["vecmac"]["params"]} == {"lanes", "data_width", "k_max"}
    assert {"gemm", "potacc", "mm2im"} <= set(listed)


def test_passes_the_generated_conformance(plugin_site):
    # The same generated checks as every built-in accelerator: 200 seeded random layers per kind on the
    # model backend and 30 on Verilator (outputs bit-exact, cycles equal to the cost model), on its small design.
    done = _run(plugin_site, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/accelerators/test_conformance.py",
                "-k", "vecmac")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    # at least the model-backend and the Verilator check for each of its three kinds, none skipped
    assert passed and int(passed.group(1)) >= 6 and "skipped" not in summary, done.stdout[-2000:]


def test_runs_digits_bit_exact_with_its_layers_offloaded(plugin_site, tmp_path):
    done, record = _accelkit(plugin_site, tmp_path, "run", "digits_cnn", "--accel", "vecmac", "--compare", "ref")
    offloaded = [layer for layer in record["layers"] if layer["where"] == "accelerator"]
    assert record["accelerator"] == "vecmac" and record["params"] == {"lanes": 8, "data_width": 64, "k_max": 2048}
    assert {layer["op"] for layer in offloaded} == {"CONV_2D", "FULLY_CONNECTED"}
    assert all(layer["accelerator"] == "vecmac" and layer["bit_exact"] for layer in offloaded), offloaded
    assert record["totals"]["share_of_macs_offloaded"] == 1.0
    assert record["compare"] == {"reference": "BUILTIN_REF", "output_bit_exact": True,
                                 "offloaded_layers_bit_exact": True}
    # Cycles come from the shell's counter; each layer's equals the cost model (checked by conformance).
    assert all(layer["cycles"] > 0 for layer in offloaded)
