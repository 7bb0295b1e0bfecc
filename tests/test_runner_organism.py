"""The organism config end to end through the runner (fewer items, lighter statistics)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import experiments
from experiments.runner import organism_config, run_experiment

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
                          "reliance", "verdict"],
                "options": {"difficulty": light, "entropy": light, "similarity": light,
                            "planning": light, "ablation": {"n_boot": 100}}})
    status = run_experiment(cfg)
    return out, cfg, status


def test_every_stage_completes(organism_run):
    out, cfg, status = organism_run
    for s in ("generate", "align", "capture", "reliance", "report"):
        assert status[s]["status"] == "done", status
        assert (out / ".stages" / f"{s}.json").exists()
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
    from experiments.support import load_suites

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
    run = experiments.load_run(out)
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
    # the organism's ground truth for both mimics, reached through the whole pipeline (the
    # mastery student: test_mastery_call_through_the_runner)
    calls = dict(zip(v.student, v.call))
    assert {k: calls[k] for k in ("student_mimic_content", "student_mimic_length")} == {
        "student_mimic_content": "surface mimicry", "student_mimic_length": "surface mimicry"}
    assert "verdict:" in repr(run)
    meta = json.loads((out / "probes" / "verdict.json").read_text())
    assert meta["seed"] == cfg.seed


def test_reliance_stage_and_probe_match_the_traces(organism_run):
    out, cfg, status = organism_run
    from experiments.layout import RunFolder

    # the base answers directly (no reasoning): it is not tested; every reasoning model is
    t = pd.read_csv(out / "probes" / "reliance.csv")
    assert set(t.control) == {"scrambled", "empty", "filler"}  # the stage wrote the controls
    pooled = t[(t.task == "all") & (t.control == "scrambled")].set_index("model")
    assert set(pooled.index) == {"teacher", "student_mastery", "student_mimic_content",
                                 "student_mimic_length"}
    assert not any(p.exists() for p in (RunFolder(out).self_scrambled("base"), RunFolder(out).after_scrambled("base")))
    for key in pooled.index:
        own = pd.read_json(out / "traces" / f"{key}.jsonl", lines=True)
        own = own[~((own.finish_reason == "length") & (own.answer_text.fillna("") == ""))]
        forced = pd.read_json(RunFolder(out).after_scrambled(key), lines=True)
        m = own.merge(forced, on="item_id", suffixes=("_own", "_forced"))
        a, b = m.correct_own.to_numpy(bool), m.correct_forced.to_numpy(bool)
        row = pooled.loc[key]
        assert row.n == len(m) == N_ITEMS
        assert row.reliance == pytest.approx(a.mean() - b.mean(), abs=1e-12)
        k, n = int((a & ~b).sum()), int((a ^ b).sum())
        assert (row.own_only, row.forced_only) == (k, n - k)
        # McNemar: exact binomial on the discordant items, at every size
        p = stats.binomtest(k, n, 0.5).pvalue if n else 1.0
        assert row.p == pytest.approx(p, rel=1e-9)
        if key in ("teacher", "student_mastery"):  # reasoning that computes the answer
            assert row.reliance > 0 and row.p < 0.05 and row.ci_low > 0, (key, row)
    for key in pooled.index:  # the controls: own vs after an empty / a filler reasoning
        own = pd.read_json(out / "traces" / f"{key}.jsonl", lines=True)
        own = own[~((own.finish_reason == "length") & (own.answer_text.fillna("") == ""))]
        for c in ("empty", "filler"):
            after = pd.read_json(RunFolder(out).after_control(key, c), lines=True)
            m = own.merge(after, on="item_id", suffixes=("_own", "_forced"))
            a, b = m.correct_own.to_numpy(bool), m.correct_forced.to_numpy(bool)
            row = t[(t.task == "all") & (t.control == c) & (t.model == key)].iloc[0]
            assert row.n == len(m) == N_ITEMS
            assert row.reliance == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    ev = pd.read_csv(out / "probes" / "verdict.csv")
    rel = ev[ev.evidence.str.startswith("reliance")].set_index(["student", "evidence"])
    for c in ("", "_empty", "_filler"):  # W is decided with both controls, all finite
        for s in ("student_mastery", "student_mimic_content", "student_mimic_length"):
            assert np.isfinite(rel.loc[(s, f"reliance{c}"), ["value", "p"]].to_numpy(
                float)).all(), (s, c)
        assert rel.loc[("student_mastery", f"reliance{c}"), "value"] == pytest.approx(
            t[(t.task == "all") & (t.control == (c[1:] or "scrambled"))
              & (t.model == "student_mastery")].reliance.iloc[0])
    why = pd.read_csv(out / "probes" / "verdict_calls.csv").set_index(
        "student").loc["student_mastery", "decided_by"]
    assert "W: its reasoning does work" in why and "also vs empty and filler" in why, why
    md = (out / "report.md").read_text()
    behaviour = md.split("## Behaviour", 1)[1].split("## Mechanism", 1)[0]
    assert "### Reliance" in behaviour and "probes/reliance__all.png" in behaviour


@pytest.mark.xfail(strict=True, reason=(
    "the verdict rule of issue 10 (frozen in 22a629f) calls the demo's mastery student "
    "'inconclusive': its planning does not beat the prompt-token-count text baseline (the "
    "organism's prompt length gives the difficulty away), so P is not shown; not tuned away"))
def test_mastery_call_through_the_runner(organism_run):
    out, _, _ = organism_run
    calls = pd.read_csv(out / "probes" / "verdict_calls.csv").set_index("student")
    assert calls.loc["student_mastery", "call"] == "policy transfer"


def test_mastery_verdict_is_what_the_frozen_rule_gives(organism_run):
    out, _, _ = organism_run
    calls = pd.read_csv(out / "probes" / "verdict_calls.csv").set_index("student")
    why = calls.loc["student_mastery", "decided_by"]
    assert calls.loc["student_mastery", "call"] == "inconclusive", why
    assert "open: P" in why and "W: its reasoning does work" in why
