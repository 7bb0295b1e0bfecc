"""One output format for probe results: Result.save writes it, load_run / load_results read it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from experiments.layout import RunFolder
from experiments.reader import load_run
from mimicry.errors import InputError
from probes import Result
from probes.results import load_results, save_results


def _result(name: str, shift: float) -> Result:
    table = pd.DataFrame({"layer": [0, 1, 2], "rho": np.array([0.1, 0.25, 1 / 3]) + shift,
                          "site": ["last_prompt"] * 3})
    heads = pd.DataFrame({"layer": [1, 1], "head": [0, 1], "q": [0.01, 0.5 + shift]})
    return Result(name, table, {"heads": heads}, {"n": 40, "seed": 7, "exclusions": {"x": 1}})


def _run_folder(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    run.config.write_text(json.dumps({"name": "t", "models": []}))
    return run


def test_result_save_round_trips_through_load_run(tmp_path):
    run = _run_folder(tmp_path)
    r = _result("difficulty", 0.0)
    written = r.save(run.probes_dir, unit="teacher", figure=False)
    assert set(written) == {run.probe_table("difficulty"), run.probe_table("difficulty", "heads"),
                            run.probe_meta("difficulty")}
    loaded = load_run(run.root)
    main = loaded.probes["difficulty"]
    assert main["unit"].tolist() == ["teacher"] * 3
    pd.testing.assert_frame_equal(main.drop(columns="unit"), r.table)
    back = loaded.results("difficulty")["teacher"]
    pd.testing.assert_frame_equal(back.table.drop(columns="unit"), r.table)
    pd.testing.assert_frame_equal(back.tables["heads"].drop(columns="unit"), r.tables["heads"])
    assert back.meta == r.meta
    meta = json.loads(run.probe_meta("difficulty").read_text())
    assert meta["probe"] == "difficulty" and meta["units"] == ["teacher"] and meta["seed"] == 7


def test_save_results_of_several_units_split_back_per_unit(tmp_path):
    a, b = _result("entropy", 0.0), _result("entropy", 0.5)
    save_results([("teacher", a), ("student", b)], tmp_path, "entropy", seed=3,
                 extra={"options": {"n_boot": 10}}, figure=False)
    back = load_results(tmp_path, "entropy")
    assert list(back) == ["teacher", "student"]
    for unit, want in (("teacher", a), ("student", b)):
        pd.testing.assert_frame_equal(back[unit].table.drop(columns="unit"), want.table)
        pd.testing.assert_frame_equal(back[unit].tables["heads"].drop(columns="unit"),
                                      want.tables["heads"])
    info = json.loads((tmp_path / "entropy.json").read_text())
    assert info["seed"] == 3 and info["options"] == {"n_boot": 10}


def test_a_figure_per_unit_and_clear_errors_for_other_files(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = _result("planning", 0.0)
    r.plotter = lambda res: plt.figure()
    paths = r.save(tmp_path)
    assert tmp_path / "planning__all.png" in paths and tmp_path / "planning__all.pdf" in paths
    with pytest.raises(InputError, match="no results of probe 'similarity'"):
        load_results(tmp_path, "similarity")
    (tmp_path / "old.csv").write_text("a\n1\n")
    (tmp_path / "old.json").write_text(json.dumps({"n": 3}))  # a meta-only JSON: not the format
    with pytest.raises(InputError, match="not a probe results file"):
        load_results(tmp_path, "old")
