"""The organism config end to end through the runner (fewer items, lighter statistics)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mimicry
from mimicry.runner import organism_config, run_experiment

N_ITEMS = 30


def checkpoints_or_skip():
    org = pytest.importorskip("mimicry.organism")
    missing = [r for r in org.ROLES if not (org.CHECKPOINTS / r / "config.json").exists()]
    if missing:
        pytest.skip(f"organism checkpoints not committed yet: {missing}")


@pytest.fixture(scope="module")
def organism_run(tmp_path_factory):
    checkpoints_or_skip()
    out = tmp_path_factory.mktemp("organism") / "run"
    light = {"n_perm": 20, "n_boot": 100}
    cfg = organism_config(
        out=str(out), max_items_per_task=N_ITEMS,
        alignment={"n_boot": 500, "n_perm": 500},
        probes={"names": ["difficulty", "entropy", "similarity", "planning", "ablation",
                          "verdict"],
                "options": {"difficulty": light, "entropy": light, "similarity": light,
                            "planning": light, "ablation": {"n_boot": 100}}})
    status = run_experiment(cfg)
    return out, cfg, status


def test_every_stage_completes(organism_run):
    out, cfg, status = organism_run
    for s in ("generate", "align", "capture", "report"):
        assert status[s]["status"] == "done", status
    # every probe either wrote its table or is reported with the reason (never silently absent)
    notes = " ".join(status["probe"]["notes"])
    for name in cfg.probes.names:
        assert (out / "probes" / f"{name}.csv").exists() or f"{name}:" in notes, (name, notes)
    assert (out / "probes" / "difficulty.csv").exists()
    assert (out / "probes" / "verdict_calls.csv").exists()
    md = (out / "report.md").read_text()
    assert "Not available yet" not in md  # every step is installed


def test_alignment_matches_scipy_on_the_traces(organism_run):
    out, cfg, _ = organism_run
    from mimicry.runsupport import load_suites

    suite = load_suites(cfg)
    norms = pd.DataFrame([{"item_id": it.item_id, "d": it.human.difficulty} for it in suite])
    table = pd.read_csv(out / "alignment" / "alignment.csv")
    tr = pd.read_json(out / "traces" / "teacher.jsonl", lines=True).merge(norms, on="item_id")
    tr = tr[(tr.finish_reason != "length") & (tr.reasoning_tokens > 0)]
    r = stats.pearsonr(np.log(tr.reasoning_tokens), np.log(tr.d)).statistic
    row = table[table.model == "teacher"].iloc[0]
    assert row.n == len(tr) and row.r == pytest.approx(r, abs=1e-9)


def test_caches_and_load_run(organism_run):
    out, cfg, _ = organism_run
    run = mimicry.load_run(out)
    own = ["teacher", "base", "student_mastery", "student_mimic_content", "student_mimic_length"]
    students = own[2:]
    expected = set(own) | {f"{s}__on_teacher" for s in students} | {
        f"{s}__scrambled" for s in students}
    assert set(run.caches) == expected
    c = run.caches["teacher"]
    assert len(c.items) == N_ITEMS
    assert c.resid(1, "last_prompt").shape[0] == N_ITEMS
    v = run.verdict
    calls = pd.read_csv(out / "probes" / "verdict_calls.csv")
    assert set(calls.student) == set(students) and v is not None and len(v)
    # the organism's ground truth, reached through the whole pipeline
    assert dict(zip(v.student, v.call)) == {"student_mastery": "policy transfer",
                                            "student_mimic_content": "surface mimicry",
                                            "student_mimic_length": "surface mimicry"}
    assert "verdict:" in repr(run)
    meta = json.loads((out / "probes" / "verdict.run.json").read_text())
    assert meta["seed"] == cfg.seed
