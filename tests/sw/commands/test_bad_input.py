"""Issue 13's cases: every bad input ends as a clean error naming the problem, or a correct result.

All cases run once, two at a time, each in a forked child with a time bound, so
a signal or a hang is seen as such instead of taking the test session down.
"""

import re

import pytest

from accelkit.sw.verification.fuzz import Case, run_cases
from bad_inputs import CASES, argv, make_files


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = make_files(tmp_path_factory.mktemp("bad_inputs"))
    cases = [Case(argv(command, folder), name, timeout=300.0) for name, command, _, _ in CASES]
    return {outcome.case.what: outcome for outcome in run_cases(cases, workers=2)}


@pytest.mark.parametrize("name, command, expected, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_case(outcomes, name, command, expected, pattern):
    outcome = outcomes[name]
    assert outcome.kind == expected, f"{command}: {outcome.kind} (exit {outcome.code})\n{outcome.stderr[-3000:]}"
    if expected == "clean error":
        assert outcome.code == 2
        assert re.search(pattern, outcome.stderr), outcome.stderr[-3000:]
        assert "Traceback" not in outcome.stderr
