"""Recording a layer's device transactions and replaying them on another device (driver/trace.py)."""

import numpy as np
import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.driver.kinds import get_kind
from accelkit.driver.trace import DeviceTrace, RecordingDevice, replay
from accelkit.errors import DeviceError

SMALL = GemmAccelerator.small_params


def _recorded(device_pool, kind, seed, **shape):
    accelerator, device = device_pool(SMALL)
    layer, inputs = get_kind(kind).random(np.random.default_rng(seed), **shape)
    recorder = RecordingDevice(device)
    output, stats = accelerator.run(accelerator.plan(layer, *(x.shape for x in inputs)), recorder, *inputs)
    assert np.array_equal(output, layer.reference(*inputs))
    return recorder.trace, output, stats


def test_a_verilator_trace_replays_bit_exact_and_cycle_exact_on_amaranth(device_pool, tmp_path):
    trace, _, stats = _recorded(device_pool, "fc", 3, batch=3, k=20, n=6)
    assert trace.count("run") == stats.jobs and trace.count("send") >= 1 and trace.count("receive") >= 1
    trace.save(tmp_path / "fc")
    loaded = DeviceTrace.load(tmp_path / "fc")
    assert loaded.entries == trace.entries and all(np.array_equal(a, b) for a, b in zip(loaded.payloads, trace.payloads))
    _, amaranth = device_pool(SMALL, backend="amaranth")
    report = replay(loaded, amaranth)
    assert report.ok, report.mismatches
    assert report.timing == []          # the same DMA timing model: the same cycles
    assert report.jobs == stats.jobs and report.writes == trace.count("write")


def test_replay_finds_a_device_that_answers_differently(device_pool):
    trace, _, _ = _recorded(device_pool, "conv2d", 5, height=5, width=4, in_channels=3, out_channels=5, kernel=3)
    received = next(e for e in trace.entries if e["op"] == "receive")
    trace.payloads[received["payload"]] = trace.payloads[received["payload"]] ^ np.uint8(1)
    _, device = device_pool(SMALL)
    report = replay(trace, device)
    assert not report.ok
    assert report.mismatches[0]["differing_bytes"] > 0 and report.mismatches[0]["entry"] == trace.entries.index(received)


def test_replay_refuses_a_trace_of_another_stream_width(device_pool, tmp_path):
    trace, _, _ = _recorded(device_pool, "fc", 1, batch=1, k=8, n=2)
    trace.device["data_width"] = 64
    _, device = device_pool(SMALL)
    with pytest.raises(DeviceError, match="64-bit stream"):
        replay(trace, device)
    (tmp_path / "bad.jsonl").write_text("not json\n")
    with pytest.raises(DeviceError, match="not a readable device trace"):
        DeviceTrace.load(tmp_path / "bad")


def test_layer_record_and_replay_commands(tmp_path):
    from accelkit.sw.commands import main as cli
    from tests_params import SMALL_PARAMS
    small = ",".join(f"{k}={v}" for k, v in SMALL_PARAMS.items())
    trace = str(tmp_path / "t")
    assert cli.main(["layer", "fc", "--batch", "2", "--k", "9", "--n", "3", "--params", small, "--seed", "3",
                     "--record", trace]) == 0
    assert cli.main(["replay", trace, "--backend", "amaranth",
                     "--json", str(tmp_path / "r.json")]) == 0
    import json
    assert json.loads((tmp_path / "r.json").read_text())["report"]["ok"]
    assert cli.main(["replay", trace, "--params", "rows=2,cols=2,data_width=32"]) == 2      # another design
    assert cli.main(["layer", "fc", "--backend", "model", "--record", trace]) == 2
