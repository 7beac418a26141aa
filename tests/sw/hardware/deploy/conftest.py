"""Shared by the board tests: digits_cnn recorded on Verilator (`accelkit run --record`) and its board program."""

import json

import numpy as np
import pytest

from accelkit.accelerators.gemm import GemmAccelerator
from accelkit.sw.commands import main as cli
from accelkit.sw.hardware.deploy.board_program import write_program
from accelkit.sw.zoo import resolve_model

#: digits_cnn's deepest reduction is K=288; a small array keeps the Verilator build short
PARAMS = {"rows": 4, "cols": 4, "data_width": 32, "k_max": 1024, "a_depth": 1024}
PARAM_TEXT = ",".join(f"{key}={value}" for key, value in PARAMS.items())


@pytest.fixture(scope="session")
def digits_on_the_board_way(tmp_path_factory):
    """(folder, host JSON, host output): digits_cnn recorded on Verilator, and its board program."""
    work = tmp_path_factory.mktemp("board-run")
    code = cli.main(["run", "digits_cnn", "--params", PARAM_TEXT, "--seed", "3", "--record", str(work / "digits"),
                     "--output", str(work / "host.npy"), "--json", str(work / "host.json")])
    assert code == 0
    write_program(resolve_model("digits_cnn"), GemmAccelerator(**PARAMS), work / "digits.board")
    return work, json.loads((work / "host.json").read_text()), np.load(work / "host.npy")


@pytest.fixture
def board_params():
    """The design the recording and the program are for."""
    return dict(PARAMS)
