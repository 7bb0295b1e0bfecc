"""The held-out evaluation script's bookkeeping (no training): refusals and calls.csv merging."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("heldout", ROOT / "benchmarks" /
                                                  "organism_v2_heldout.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(seed, student, call):
    return {"seed": seed, "student": student, "call": call, "truth": "surface mimicry",
            "right": call == "surface mimicry", "decided_by": "C", "rule_commit": "abc",
            "organism_commit": "def"}


def test_side_by_side_runs_merge_into_one_calls_file(tmp_path):
    h = _script()
    path = tmp_path / "calls.csv"
    h.merge_calls(path, [_row(206, "student_posthoc", "surface mimicry")])
    h.merge_calls(path, [_row(205, "student_posthoc", "inconclusive"),
                         _row(205, "student_mastery", "policy transfer")])
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["seed"], r["student"]) for r in rows] == [
        ("205", "student_mastery"), ("205", "student_posthoc"), ("206", "student_posthoc")]
    assert list(rows[0]) == h.FIELDS
    h.merge_calls(path, [_row(205, "student_posthoc", "surface mimicry")])  # a seed run again
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["seed"], r["call"]) for r in rows] == [("205", "surface mimicry"),
                                                      ("206", "surface mimicry")]


def test_development_seeds_are_refused(capsys):
    h = _script()
    assert h.main(["--seeds", "201", "--allow-unfrozen"]) == 2
    assert "seeds [201] are development seeds" in capsys.readouterr().err
