"""The runner over imported traces: stage resume, report contents, load_run, missing steps."""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import experiments
import mimicry
from experiments.config import config_from_dict
from experiments.runner import run_experiment

TASKS = {"spatial": 14, "relational": 16, "syllogisms": 12}


def make_inputs(root: Path, seed: int = 0) -> dict:
    """Write a user items file and three models' traces with known structure; return config."""
    rng = np.random.default_rng(seed)
    items = []
    with open(root / "items.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "task", "prompt", "answer", "human_rt_ms"])
        for t, n in TASKS.items():
            for i in range(n):
                rt = float(np.exp(rng.normal(8, 0.4)))
                items.append((f"{t}{i}", t, rt))
                w.writerow([f"{t}{i}", t, "question?", "1", round(rt, 1)])
    models = []
    for key, slope, noise, scale, acc in (("teacher", 1.5, 0.3, 6.0, 0.9),
                                          ("student", 0.4, 0.5, 6.5, 0.6),
                                          ("base", 0.2, 0.5, 5.5, 0.7)):
        p = root / f"{key}.jsonl"
        with open(p, "w") as f:
            for iid, t, rt in items:
                lc = scale + slope * (np.log(rt) - 8) + rng.normal(0, noise)
                f.write(json.dumps({"item_id": iid, "model": key, "task": t,
                                    "reasoning_tokens": int(np.exp(lc)), "finish_reason": "stop",
                                    "correct": bool(rng.random() < acc)}) + "\n")
        models.append({"key": key, "name": f"external/{key}", "role": key, "generate": False,
                       "capture": False, "traces": str(p)})
    return {"name": "imported", "suites": [str(root / "items.csv")], "out": str(root / "run"),
            "alignment": {"n_boot": 400, "n_perm": 400}, "models": models}


STAGES = ["generate", "align", "report"]


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    cfg = config_from_dict(make_inputs(root))
    status = run_experiment(cfg, stages=STAGES)
    return root, cfg, status


def test_first_run_completes_every_stage(done_run):
    root, _, status = done_run
    run = root / "run"
    assert {s: status[s]["status"] for s in STAGES} == dict.fromkeys(STAGES, "done")
    for s in STAGES:
        assert json.loads((run / ".stages" / f"{s}.json").read_text())["stage"] == s
    assert (run / "alignment" / "alignment.csv").exists()
    assert (run / "report.md").exists() and (run / "report.html").exists()


def test_second_run_skips_finished_stages(done_run, caplog):
    root, cfg, _ = done_run
    run = root / "run"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    caplog.set_level(logging.INFO)
    status = run_experiment(cfg, stages=STAGES)
    assert "already done (config hash matches): generate, align, report" in caplog.text
    assert all(status[s]["status"] == "skipped (done)" for s in STAGES)
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing rewritten


def test_changed_setting_reruns_that_stage_and_downstream(tmp_path):
    data = make_inputs(tmp_path)
    run_experiment(config_from_dict(data), stages=STAGES)
    data["alignment"] = {"n_boot": 300, "n_perm": 300}
    status = run_experiment(config_from_dict(data), stages=STAGES)
    assert status["generate"]["status"] == "skipped (done)"
    assert status["align"]["status"] == "done" and status["report"]["status"] == "done"
    summ = json.loads((tmp_path / "run" / "alignment" / "summary.json").read_text())
    assert summ["n_boot"] == 300


def test_report_tables_match_alignment_and_html_is_self_contained(done_run):
    root, _, _ = done_run
    run = root / "run"
    md = (run / "report.md").read_text()
    table = pd.read_csv(run / "alignment" / "alignment.csv")
    # every model × task r appears in the report's alignment table, to 3 decimals
    for row in table.itertuples():
        assert re.search(rf"\| {row.model} \| {row.task} \| {row.n} \| {row.r:.3f} \|", md)
    # independent check of one r: Pearson of log tokens vs log RT on the raw files
    items = pd.read_csv(root / "items.csv")
    tr = pd.read_json(root / "teacher.jsonl", lines=True).merge(items, on=["item_id", "task"])
    sp = tr[tr.task == "spatial"]
    r = stats.pearsonr(np.log(sp.reasoning_tokens), np.log(sp.human_rt_ms)).statistic
    got = table[(table.model == "teacher") & (table.task == "spatial")].r.item()
    assert got == pytest.approx(r, abs=1e-9)
    pm = json.loads((run / "alignment" / "summary.json").read_text())["per_model"]["teacher"]
    assert (f"| teacher | teacher | {pm['r_bar']:.2f} [{pm['ci_low']:.2f}, {pm['ci_high']:.2f}] |"
            in md.split("## Summary", 1)[1].split("##", 1)[0])
    for section in ("## Pipeline status", "## Behaviour", "### Negative transfer",
                    "### Inflation law", "## Mechanism", "## Verdict"):
        assert section in md
    # stages not asked for are reported as such, and probes say they did not run
    assert "| capture | not run |" in md and "| probe | not run |" in md
    assert "**No activation caches**" in md
    for link in re.findall(r"\]\(([^)]+\.(?:png|pdf))\)", md):
        assert (run / link).exists(), link
    html = (run / "report.html").read_text()
    n_figs = len(re.findall(r"!\[", md))
    assert n_figs >= 4  # scatter, forest, negative transfer, inflation (+ Δr)
    assert html.count("src='data:image/png;base64,") == n_figs
    assert not re.search(r"src=['\"](?!data:)", html)  # nothing loaded from disk


def test_negative_transfer_intervals_are_wilson():
    from mimicry.stats import wilson_ci

    k, n = np.array([0, 3, 7, 10]), np.array([10, 10, 10, 10])
    lo, hi = wilson_ci(k, n)
    for i in range(len(k)):
        ci = stats.binomtest(int(k[i]), int(n[i])).proportion_ci(method="wilson")
        assert (lo[i], hi[i]) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_load_run(done_run):
    root, _, _ = done_run
    run = experiments.load_run(root / "run")
    table = pd.read_csv(root / "run" / "alignment" / "alignment.csv")
    pd.testing.assert_frame_equal(run.alignment.table, table)
    assert set(run.alignment.summary["per_model"]) == {"teacher", "student", "base"}
    assert "negative_transfer" in run.alignment.extra
    assert len(run.caches) == 0 and run.probes == {} and run.verdict is None
    assert list(run.models.key) == ["teacher", "student", "base"]
    assert len(run.traces("student")) == sum(TASKS.values())
    r = repr(run)
    assert "teacher (teacher)" in r and "verdict:   not run" in r and "r̄ teacher" in r
    with pytest.raises(mimicry.MimicryError, match="not a run folder"):
        experiments.load_run(root)


def test_unknown_probe_option_fails_before_any_stage(tmp_path):
    data = make_inputs(tmp_path)
    data["probes"] = {"names": ["difficulty"], "options": {"difficulty": {"folds": 5}}}
    with pytest.raises(mimicry.MimicryError, match=r"no option\(s\) \['folds'\]") as e:
        run_experiment(config_from_dict(data), stages=STAGES)
    assert "n_folds" in e.value.render()  # the valid ones are named
    assert not (tmp_path / "run").exists()
    data["probes"]["options"] = {"difficulty": {"n_folds": 5}}  # the documented example
    assert run_experiment(config_from_dict(data), stages=["generate"])["generate"]["status"] \
        == "done"


def test_probe_unit_refused_by_the_data_is_noted_not_fatal(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import experiments.probing as pg
    from experiments.inputs import run_inputs
    from mimicry.errors import InputError

    run = tmp_path / "run"
    (run / "caches").mkdir(parents=True)
    for k in ("teacher", "student", "base"):
        (run / "caches" / f"{k}.h5").write_bytes(b"")
    monkeypatch.setattr(pg.ProbeInputs, "cache", lambda self, stem: stem)

    def no_figure():
        raise ValueError("no figure")

    def fake_run(cache, *, tasks=None, seed=0, name=None, n_folds=5, n_perm=100, n_boot=1000):
        if cache == "student":
            raise InputError("only 0 items have a usable human label")
        return SimpleNamespace(table=pd.DataFrame({"model": [cache], "rho": [0.5]}),
                               tables={}, meta={"seed": seed}, plot=no_figure)

    def refuse(*args, **kw):
        raise InputError("no labels")

    monkeypatch.setattr(pg, "probe_functions",
                        lambda: {"difficulty": fake_run, "similarity": refuse})
    cfg = config_from_dict(make_inputs(tmp_path))
    inp = run_inputs(cfg, run, None)
    units, note = pg.run_probe("difficulty", inp)
    assert note == "student not computed (only 0 items have a usable human label)"
    pg.save_units(units, run / "probes", "difficulty", seed=0)
    table = pd.read_csv(run / "probes" / "difficulty.csv")
    assert list(table.unit) == ["teacher", "base"] and list(table.model) == ["teacher", "base"]
    # every unit refused: the probe is reported as failed, nothing to write
    units, note = pg.run_probe("similarity", inp)
    assert not units and note.startswith("failed: student not computed (no labels)")


def test_control_is_compared_with_the_student(tmp_path):
    data = make_inputs(tmp_path)
    # an "RL after SFT" control whose cost tracks RT again (noisy copy of the teacher's)
    rows = [json.loads(x) for x in (tmp_path / "teacher.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(3)
    with open(tmp_path / "rl.jsonl", "w") as f:
        for r in rows:
            r = dict(r, model="rl", reasoning_tokens=int(r["reasoning_tokens"]
                                                          * rng.uniform(0.8, 1.25)))
            f.write(json.dumps(r) + "\n")
    data["models"].append({"key": "rl", "name": "external/rl", "role": "control",
                           "generate": False, "capture": False,
                           "traces": str(tmp_path / "rl.jsonl")})
    run_experiment(config_from_dict(data), stages=["generate", "align"])
    pair = tmp_path / "run" / "alignment" / "pairs" / "rl"
    assert json.loads((pair / "summary.json").read_text())["roles"] == {
        "teacher": "student", "student": "rl", "base": "base"}
    dr = pd.read_csv(pair / "delta_r.csv").set_index("task")
    items = pd.read_csv(tmp_path / "items.csv")
    for task in TASKS:
        r = {}
        for key in ("student", "rl"):
            t = pd.read_json(tmp_path / "run" / "traces" / f"{key}.jsonl", lines=True)
            t = t.merge(items, on=["item_id", "task"])
            t = t[t.task == task]
            r[key] = stats.pearsonr(np.log(t.reasoning_tokens), np.log(t.human_rt_ms)).statistic
        assert dr.loc[task, "delta_r"] == pytest.approx(r["rl"] - r["student"], abs=1e-9)
