"""The fast `model` backend against the RTL: same outputs, and cycles within the fidelity tolerance."""

import json

import numpy as np
import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.driver.device import DmaTiming
from accelkit.sw.commands import main as cli
from accelkit.sw.verification.fidelity import TOLERANCE, compare_records
from gemm_helpers import estimate_gemm, run_gemm


def _run(tmp_path, backend, *extra):
    path = tmp_path / f"{backend}.json"
    out = tmp_path / f"{backend}.npy"
    assert cli.main(["run", "digits_cnn", "--input", "zoo:digits_test_x", "--limit", "40", "--backend", backend,
                     "--json", str(path), "--output", str(out), *extra]) == 0
    return json.loads(path.read_text()), np.load(out)


def test_model_backend_matches_rtl_outputs_cycles_and_bytes(tmp_path):
    rtl, rtl_out = _run(tmp_path, "verilator")
    model, model_out = _run(tmp_path, "model")
    assert np.array_equal(rtl_out, model_out)
    for a, b in zip(rtl["layers"], model["layers"]):
        assert (a["where"], a["cycles"], a["bytes_in"], a["bytes_out"]) == (b["where"], b["cycles"], b["bytes_in"],
                                                                             b["bytes_out"])


def test_model_backend_for_single_layers(capsys):
    assert cli.main(["layer", "conv2d", "--backend", "model", "--stride", "2"]) == 0
    assert "yes" in capsys.readouterr().out


def _mobilenet_on_model_backend(tmp_path):
    path = tmp_path / "model.json"
    assert cli.main(["run", "mobilenet_v2", "--backend", "model", "--json", str(path)]) == 0
    return json.loads(path.read_text())["layers"]


def test_cost_model_within_tolerance_on_mobilenet(mobilenet_rtl_run, tmp_path):
    _, record = mobilenet_rtl_run
    rows = compare_records(record["layers"], _mobilenet_on_model_backend(tmp_path))
    assert len(rows) == 53
    assert max(abs(row["error"]) for row in rows) <= TOLERANCE
    assert all(row["rtl_cycles"] == row["model_cycles"] for row in rows)   # deterministic design: exact


def test_fidelity_check_catches_a_wrong_cost_model(mobilenet_rtl_run, monkeypatch, tmp_path):
    _, record = mobilenet_rtl_run
    real = GemmAccelerator.estimate

    def wrong(self, plan, dma):
        # A cost model that forgets the readout of the last tile (rows + cols + 1 cycles per layer) and
        # underestimates the A block load by 3%: small, plausible mistakes.
        stats = real(self, plan, dma)
        stats.cycles = int(stats.cycles * 0.97) - 17
        return stats
    monkeypatch.setattr(GemmAccelerator, "estimate", wrong)
    rows = compare_records(record["layers"], _mobilenet_on_model_backend(tmp_path))
    assert max(abs(row["error"]) for row in rows) > TOLERANCE


@pytest.mark.parametrize("bandwidth", [4, 16])
def test_cost_model_follows_dma_bandwidth(device_pool, bandwidth):
    from accelkit.sw.verification.random_layers import random_gemm
    from tests_params import DEFAULT_PARAMS
    accelerator, device = device_pool(DEFAULT_PARAMS, "verilator", DmaTiming(bandwidth, 4))
    gemm = random_gemm(np.random.default_rng(bandwidth), 100, 70, 300)
    _, stats = run_gemm(accelerator, device, gemm)
    assert stats.cycles == estimate_gemm(accelerator, gemm, device.dma)
