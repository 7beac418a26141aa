"""The optional SCALE-Sim benchmark says what is missing instead of failing obscurely."""

import sys

from accelkit.sw.commands import main as cli


def test_missing_scalesim_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "scalesim", None)          # import fails, as when not installed
    monkeypatch.setitem(sys.modules, "scalesim.scale_sim", None)
    assert cli.main(["bench", "scalesim", "--models", "digits_cnn", "--backend", "model"]) == 2
    assert "pip install scalesim==3.0.0" in capsys.readouterr().err
