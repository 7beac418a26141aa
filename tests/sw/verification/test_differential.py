"""`accelkit diff`: per-layer differences across paths, first divergent layer, localization, unrunnable paths."""

import json

import numpy as np
import pytest

from accelkit.driver.device import DmaTiming
from accelkit.errors import ParameterError
from accelkit.sw.commands import main as cli
from accelkit.sw.execution.accelerator_lists import resolve_accelerators
from accelkit.sw.verification.differential import differential
from accelkit.sw.zoo import ZOO
from optional import need_tvm

DIGITS = ZOO / "models" / "digits_cnn.tflite"


def _samples(count):
    x = np.load(ZOO / "data" / "digits_test_x.npy")[:count]
    return [s.reshape(1, 8, 8, 1) for s in x]


def test_offloaded_path_equals_reference_and_optimized_kernels_are_localized():
    labels = np.load(ZOO / "data" / "digits_test_y.npy")
    report = differential(DIGITS, ["tflite-ref", "tflite-opt", "model"], resolve_accelerators("gemm", {}),
                          DmaTiming(8, 0), _samples(40), labels)
    # the accelerator path computes LiteRT's reference semantics: nothing diverges
    assert report.first_divergent("model") is None
    assert all(d.mapped and not d.diverges for d in report.diffs["model"].values())
    # XNNPACK rounds differently: the first CONV_2D already differs, and it arises there
    assert report.first_divergent("tflite-opt") == 0
    assert report.diffs["tflite-opt"][0].max_lsb == 1
    assert report.localization["tflite-opt"][0].startswith("arises here")
    assert report.labels["model"]["changed"] == 0 and report.labels["tflite-ref"]["accuracy"] > 0.9


def test_a_faulty_accelerator_is_caught_at_its_layer(monkeypatch):
    """An accelerator whose output is off by one on one layer: that layer is first, and it arises there."""
    from accelkit.accelerators.gemm import GemmAccelerator
    real = GemmAccelerator.golden

    def faulty(self, plan, x):
        out = real(self, plan, x)
        return out ^ np.int8(1) if plan.macs == 73728 else out      # digits' second CONV_2D only
    monkeypatch.setattr(GemmAccelerator, "golden", faulty)
    report = differential(DIGITS, ["tflite-ref", "model"], resolve_accelerators("gemm", {}), DmaTiming(8, 0),
                          _samples(3))
    assert report.first_divergent("model") == 1
    assert report.localization["model"][1].startswith("arises here")
    assert report.localization["model"][2].startswith("propagated")    # the next conv is exact on clean inputs


def test_a_path_that_cannot_run_the_model_is_reported_not_dropped(tmp_path, capsys):
    need_tvm()
    path = tmp_path / "d.json"
    assert cli.main(["diff", "dcgan_tiny", "--between", "tflite-ref,tvm-cpu,model", "--accel", "mm2im,gemm",
                     "--json", str(path), "--plot", str(tmp_path / "d.png")]) == 0
    record = json.loads(path.read_text())
    assert "conv2d_transpose" in record["errors"]["tvm-cpu"]
    assert record["first_divergent"]["model"] is None
    assert (tmp_path / "d.png").stat().st_size > 0
    assert "tvm-cpu cannot run dcgan_tiny.tflite" in capsys.readouterr().out


def test_bad_paths_are_refused():
    from accelkit.sw.commands.diff import _paths
    with pytest.raises(ParameterError, match="--between takes paths from"):
        _paths("tflite-ref,gpu")
    with pytest.raises(ParameterError, match="twice"):
        _paths("model,model")
