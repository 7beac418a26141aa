"""`accelkit llm` on the tiny model: streamed text, the report, --json, and clear errors."""

import json

import gguf
import numpy as np

from accelkit.sw.commands import main as cli
from accelkit.sw.llm.tiny import TINY_PATH

TINY = "lanes=16,data_width=64,act_depth=256"


def test_llm_streams_and_reports(tmp_path, capsys):
    path = tmp_path / "llm.json"
    assert cli.main(["llm", str(TINY_PATH), "--prompt", "the model and", "--max-tokens", "3", "--accel", "bfp",
                     "--params", TINY, "--backend", "model", "--clock-mhz", "125", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cycles/token" in out and "weight-streaming bound" in out and "Q6_K" in out
    record = json.loads(path.read_text())
    assert record["generated_tokens"] == 3 and record["text"]
    assert record["kinds"]["ffn_down"]["where"] == ["bfp", "host"]
    assert "not Q6_K" in record["kinds"]["ffn_down"]["host_reason"]
    assert record["generation_cycles_per_token"] >= record["weight_stream_bound_cycles"] > 0
    assert record["tokens_per_second_at_clock"] == 125e6 / record["generation_cycles_per_token"]
    assert record["clock_source"] == "--clock-mhz" and "at 125 MHz (--clock-mhz)" in out
    assert record["params"]["lanes"] == 16


def test_llm_bad_models_are_clear_errors(tmp_path, capsys):
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(TINY_PATH.read_bytes()[:400_000])
    other = tmp_path / "bert.gguf"
    writer = gguf.GGUFWriter(str(other), "bert")
    writer.add_tensor("x", np.zeros(4, np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    for model, message in ((truncated, "truncated"), (other, "architecture 'bert' is not supported"),
                           (tmp_path / "none.gguf", "no such model file")):
        assert cli.main(["llm", str(model), "--prompt", "x", "--accel", "bfp", "--backend", "model"]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["llm", str(TINY_PATH), "--prompt", "x", "--accel", "gemm", "--backend", "model"]) == 2
    assert "does not run quantized MatMuls" in capsys.readouterr().err
