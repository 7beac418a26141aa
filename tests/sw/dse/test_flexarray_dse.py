"""accelkit dse on flexarray: per-layer mappings recorded, exported, and reused by layer signature."""

import json

import pytest

optuna = pytest.importorskip("optuna")

from accelkit.accelerators.base import get_accelerator
from accelkit.accelerators.flexarray import compiler, search
from accelkit.sw.dse.boards import get_board
from accelkit.sw.dse.evaluate import Evaluator, load_workload
from accelkit.sw.dse.reuse import choices_from

SMALL = "multipliers=8|16,dn_bw=4,rn_bw=4|8,rn=0,acc_depth=16|32"
POINT = {"multipliers": 16, "dn_bw": 4, "rn_bw": 8, "rn": 0, "acc_depth": 32}


def _dse(tmp_path, model, db, *extra):
    from accelkit.sw.commands.main import main
    from accelkit.sw.dse import search as dse_search
    # each command starts as a fresh process would: no evaluator (and its per-layer cache) left from the last
    dse_search._evaluator.cache_clear()
    out = tmp_path / f"{model}.json"
    code = main(["dse", model, "--accel", "flexarray", "--space", SMALL, "--trials", "4", "--storage", str(db),
                 "--runner", "serial", "--yosys", "0", "--confirm", "0", "--sampler", "random", "--json", str(out),
                 *extra])
    return code, json.loads(out.read_text())


@pytest.fixture
def counted(monkeypatch):
    """Calls of the mapping search (what tuning reuse skips)."""
    calls = []
    real = search.best_mapping

    def best_mapping(design, structure, *args, **options):
        calls.append(structure.kind)
        return real(design, structure, *args, **options)
    monkeypatch.setattr(search, "best_mapping", best_mapping)
    return calls


def test_flexarray_dse_records_and_exports_the_mappings(tmp_path):
    db, exported = tmp_path / "d.db", tmp_path / "chosen.json"
    code, record = _dse(tmp_path, "digits_cnn", db, "--export", str(exported))
    assert code == 0 and record["summary"]["trials"] == 4 and record["front"]
    layers = len(load_workload("digits_cnn").layers)
    # every trial searched a mapping per layer (5 layers of digits_cnn; points drawn twice are cached)
    assert record["summary"]["choice_searches"] >= layers and record["summary"]["choices_reused"] == 0
    for point in record["front"]:
        assert len(point["mappings"]) == layers
    # stored in the study by (design parameters, layer signature)
    table = choices_from(db, "flexarray")
    assert table and all(len(by_signature) == layers for by_signature in table.values())
    chosen = json.loads(exported.read_text())
    assert chosen["accelerator"] == "flexarray" and chosen["confirmed_on"] is None
    assert [row["layer"] for row in chosen["mappings"]] == [index for index, _, _ in
                                                            load_workload("digits_cnn").layers]
    accelerator = get_accelerator("flexarray", chosen["params"])
    workload = {index: (layer, shapes) for index, layer, shapes in load_workload("digits_cnn").layers}
    for row in chosen["mappings"]:
        layer, shapes = workload[row["layer"]]
        # the exported mapping is the one the mapping compiler's search picks for this design and layer
        assert compiler.Mapping.from_dict(row["mapping"]) == search.best_mapping(
            accelerator.design, compiler.structure_of(layer, shapes[0]))


def test_a_stored_mapping_skips_the_search_and_gives_the_same_cycles(counted):
    workload = load_workload("digits_cnn")
    fresh = Evaluator(accel="flexarray", workload=workload, board=get_board("pynq-z1"))
    counted.clear()
    first = fresh.evaluate(POINT)
    assert len(counted) == len(workload.layers) == fresh.searched and fresh.reused == 0
    again = Evaluator(accel="flexarray", workload=workload, board=get_board("pynq-z1"))
    counted.clear()
    reused = again.evaluate(POINT, first.mappings)
    assert counted == [] and again.searched == 0 and again.reused == len(workload.layers)
    assert reused.cycles == first.cycles and reused.mappings == first.mappings
    # a stored mapping that does not fit the design is not used blindly: the layer is searched again
    bad = {signature: {**mapping, "rows": 1024} for signature, mapping in first.mappings.items()}
    third = Evaluator(accel="flexarray", workload=workload, board=get_board("pynq-z1"))
    counted.clear()
    assert third.evaluate(POINT, bad).cycles == first.cycles and len(counted) == len(workload.layers)


def test_reuse_on_another_model_skips_the_searches_of_shared_layers(tmp_path, counted):
    db = tmp_path / "d.db"
    code, first = _dse(tmp_path, "digits_cnn", db)
    assert code == 0
    # digits_cnn_msq: the same layer structures as digits_cnn, other quantization (other plan signatures)
    code, scratch = _dse(tmp_path, "digits_cnn_msq", tmp_path / "scratch.db")
    assert code == 0 and scratch["summary"]["choices_reused"] == 0
    code, reused = _dse(tmp_path, "digits_cnn_msq", tmp_path / "reused.db", "--reuse", str(db))
    assert code == 0
    # the front points of the first study are tried first; their layers' mappings are all stored
    assert reused["summary"]["choices_reused"] > 0
    assert reused["summary"]["choice_searches"] < scratch["summary"]["choice_searches"]
    for point in reused["front"]:
        for other in scratch["front"]:
            if other["params"] == point["params"]:
                assert other["cycles"] == point["cycles"], "a reused mapping gave other cycles than a search"


def test_reuse_of_a_file_that_is_not_a_database_is_refused(tmp_path, capsys):
    from accelkit.sw.commands.main import main
    bogus = tmp_path / "bogus.db"
    bogus.write_text("not a database")
    code = main(["dse", "digits_cnn", "--accel", "flexarray", "--space", SMALL, "--trials", "2", "--storage",
                 str(tmp_path / "x.db"), "--runner", "serial", "--yosys", "0", "--confirm", "0", "--reuse",
                 str(bogus)])
    assert code == 2 and "not an optuna database" in capsys.readouterr().err
