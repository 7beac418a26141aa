"""Runs the PYNQ-on-simulator tests in the PYNQ environment (.venv-pynq) from the main suite.

PYNQ 4.0.0 needs numpy < 2 (its PynqBuffer assigns ndarray.device, read-only since numpy 2),
so its tests live in their own venv (`make setup` makes it; scripts/pynq-requirements.txt).
`make test` sets ACCELKIT_REQUIRE=pynq: then a missing environment fails instead of skipping.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[3] / "support"))
from optional import required  # noqa: E402

ROOT = Path(__file__).parents[4]
PYNQ_PYTHON = Path(os.environ.get("ACCELKIT_PYNQ_VENV", ROOT / ".venv-pynq")) / "bin" / "python"
MODULE = Path(__file__).with_name("test_pynq_on_simulator.py")


def test_pynq_classes_on_the_simulator():
    if not PYNQ_PYTHON.exists():
        if required("pynq"):
            pytest.fail(f"the PYNQ environment {PYNQ_PYTHON.parent.parent} is missing (`make setup` makes it)")
        pytest.skip(f"no PYNQ environment at {PYNQ_PYTHON.parent.parent} (`make setup` makes it)")
    process = subprocess.run([str(PYNQ_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(MODULE)],
                             cwd=ROOT, capture_output=True, text=True, timeout=1200)
    summary = process.stdout.strip().splitlines()[-1:] or [""]
    assert process.returncode == 0, process.stdout[-6000:] + process.stderr[-3000:]
    assert "passed" in summary[0] and "skipped" not in summary[0], summary[0]
