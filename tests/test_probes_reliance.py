"""probes.reliance: accuracy own − after scrambled reasoning, paired bootstrap CI, McNemar.

Numbers are checked against a hand-worked example, scipy (exact binomial, chi² survival) and
a numpy bootstrap drawn directly from ``default_rng(seed)``; run() against counts made here.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from experiments.cli import main
from mimicry.errors import InputError
from mimicry.tasks.items import Item, TaskSuite
from mimicry.traces import Trace, append_traces
from probes import reliance
from probes.reliance import Reliance


def _expanded(dist, n):
    """The expanded percentile 95% CI written out: quantiles at Φ(±√(n/(n−1))·t_(n−1, .975))."""
    c = np.sqrt(n / (n - 1)) * sps.t.ppf(0.975, n - 1)
    d = np.asarray(dist, float)
    return tuple(np.quantile(d[np.isfinite(d)], sps.norm.cdf([-c, c])))


def test_hand_worked_exact_mcnemar():
    own = [1, 1, 1, 0, 1, 0, 1, 1, 0, 0]
    forced = [0, 1, 0, 0, 1, 1, 0, 0, 0, 0]
    est = Reliance(n_boot=200, random_state=0).fit(own, forced)
    # own right & forced wrong: items 0, 2, 6, 7 (4); forced right & own wrong: item 5 (1)
    assert (est.mcnemar_.a_only, est.mcnemar_.b_only) == (4, 1)
    assert est.diff_ == pytest.approx(0.6 - 0.3)   # (4 - 1) / 10
    assert est.score(own, forced) == est.diff_
    # two-sided exact binomial of 1 in 5 at 1/2: 2 * (C(5,0) + C(5,1)) / 2^5 = 12/32
    assert est.p_ == pytest.approx(12 / 32)
    assert est.p_ == pytest.approx(sps.binomtest(1, 5, 0.5).pvalue)
    assert est.mcnemar_.method == "exact-binomial"
    none_discordant = Reliance(n_boot=50).fit([1, 0, 1], [1, 0, 1])
    assert (none_discordant.diff_, none_discordant.p_) == (0.0, 1.0)
    assert none_discordant.ci_ == (0.0, 0.0)


def test_exact_mcnemar_at_25_discordant_and_more():
    rng = np.random.default_rng(3)
    # 20 own-only, 8 forced-only, 30 concordant (28 discordant): still the exact test
    own = np.r_[np.ones(20), np.zeros(8), np.ones(15), np.zeros(15)].astype(bool)
    forced = np.r_[np.zeros(20), np.ones(8), np.ones(15), np.zeros(15)].astype(bool)
    perm = rng.permutation(own.size)
    est = Reliance(n_boot=100).fit(own[perm], forced[perm])
    assert est.mcnemar_.method == "exact-binomial"
    assert est.p_ == pytest.approx(sps.binomtest(8, 28, 0.5).pvalue)
    assert est.diff_ == pytest.approx((20 - 8) / 58)


def test_bootstrap_ci_is_paired_over_items():
    rng = np.random.default_rng(0)
    own = rng.random(40) < 0.7
    forced = np.where(rng.random(40) < 0.6, own, rng.random(40) < 0.4)
    n_boot, seed = 500, 11
    est = Reliance(n_boot=n_boot, random_state=seed).fit(own, forced)
    idx = np.random.default_rng(seed).integers(0, 40, size=(n_boot, 40))   # same items, both
    dist = own[idx].mean(1) - forced[idx].mean(1)
    assert est.ci_ == pytest.approx(_expanded(dist, 40))
    assert est.ci_[0] <= est.diff_ <= est.ci_[1]
    with pytest.raises(InputError, match="same non-empty items"):
        Reliance().fit(own, forced[:-1])
    with pytest.raises(InputError, match="same non-empty items"):
        Reliance().fit([], [])


# --- run(): traces of two models, two tasks, with every kind of exclusion -------------------

N = 24


def _pattern(model: str):
    """Return (own_correct, forced_correct) [N]: a fixed, model-specific pattern."""
    rng = np.random.default_rng({"teacher": 1, "student": 2}[model])
    own = rng.random(N) < 0.8
    if model == "teacher":   # scrambling costs accuracy
        return own, np.where(rng.random(N) < 0.6, False, own)
    forced = own.copy()   # answers change both ways (3 and 3): no reliance
    forced[np.flatnonzero(own)[:3]] = False
    forced[np.flatnonzero(~own)[:3]] = True
    return own, forced


def _traces(model: str):
    own_c, forced_c = _pattern(model)
    own, forced = [], []
    for i in range(N):
        task = "a" if i % 2 else "b"
        reasoning = f"step {i} compute" if i % 5 else "ok"   # i % 5 == 0: scramble left it
        own.append(Trace(item_id=f"q{i}", model=model, task=task, prompt="p",
                         reasoning=reasoning, answer_text="x", correct=bool(own_c[i]),
                         finish_reason="stop"))
        forced.append(Trace(item_id=f"q{i}", model=model, task=task, prompt="p",
                            reasoning=reasoning if i % 5 == 0 else f"compute {i} step",
                            answer_text="y", correct=bool(forced_c[i]), finish_reason="stop"))
    # exclusions: q24 own cut before </think>; q25 has no forced answer; q26 not in the
    # suite; q27 unscored
    own.append(Trace(item_id="q24", model=model, task="a", prompt="p", reasoning="r",
                     answer_text="", correct=False, finish_reason="length"))
    forced.append(Trace(item_id="q24", model=model, task="a", correct=True))
    own.append(Trace(item_id="q25", model=model, task="a", correct=True, answer_text="x"))
    own.append(Trace(item_id="q26", model=model, task="a", correct=True, answer_text="x"))
    forced.append(Trace(item_id="q26", model=model, task="a", correct=False))
    own.append(Trace(item_id="q27", model=model, task="b", correct=None, answer_text="x"))
    forced.append(Trace(item_id="q27", model=model, task="b", correct=True))
    return own, forced


def _suite():
    return TaskSuite("s", [Item(f"q{i}", "a" if i % 2 else "b", prompt="p", answer="x")
                           for i in [*range(N), 24, 25, 27]])


@pytest.fixture()
def traces():
    o1, f1 = _traces("teacher")
    o2, f2 = _traces("student")
    return o1 + o2, f2 + f1     # forced rows in another order: paired by (model, item)


def _expected(model, sel, seed, n_boot):
    own, forced = _pattern(model)
    own, forced = own[sel], forced[sel]
    idx = np.random.default_rng(seed).integers(0, own.size, size=(n_boot, own.size))
    dist = own[idx].mean(1) - forced[idx].mean(1)
    n10, n01 = int((own & ~forced).sum()), int((~own & forced).sum())
    disc = n10 + n01
    p = 1.0 if disc == 0 else sps.binomtest(n01, disc, 0.5).pvalue if disc < 25 else \
        sps.chi2.sf((abs(n10 - n01) - 1) ** 2 / disc, 1)
    return {"n": own.size, "acc_own": own.mean(), "acc_forced": forced.mean(),
            "reliance": own.mean() - forced.mean(), "own_only": n10, "forced_only": n01,
            "p": p, "ci_low": _expanded(dist, own.size)[0],
            "ci_high": _expanded(dist, own.size)[1]}


def test_run_rows_and_exclusions(traces):
    own, forced = traces
    r = reliance.run(own, forced, tasks=_suite(), n_boot=300, seed=4)
    t = r.table
    assert list(t["model"].unique()) == ["teacher", "student"]
    assert sorted(t["task"].unique()) == ["a", "all", "b"]
    odd = np.arange(N) % 2 == 1
    for model in ("teacher", "student"):
        for task, sel in (("all", np.ones(N, bool)), ("a", odd), ("b", ~odd)):
            row = t[(t["model"] == model) & (t["task"] == task)].iloc[0]
            for k, v in _expected(model, sel, 4, 300).items():
                assert row[k] == pytest.approx(v), (model, task, k)
        ex = r.meta["exclusions"][model]
        assert ex == {"not_in_suite": 1, "truncated_own": 1, "no_forced_answer": 1,
                      "unscored": 1}
        assert r.meta["n"][model] == N
        assert r.meta["reasoning_unchanged_by_scramble"][model] == 5   # i = 0, 5, 10, 15, 20
    teacher = t[(t["model"] == "teacher") & (t["task"] == "all")].iloc[0]
    student = t[(t["model"] == "student") & (t["task"] == "all")].iloc[0]
    assert teacher["reliance"] > 0.3 and teacher["p"] < 0.01
    assert (student["reliance"], student["p"]) == (0.0, 1.0)
    assert (student["own_only"], student["forced_only"]) == (3, 3)
    assert (r.meta["seed"], r.meta["n_boot"]) == (4, 300)

    # without a suite: tasks come from the traces, and q26 counts as an item
    r2 = reliance.run(own, forced, n_boot=50, seed=0)
    assert r2.meta["exclusions"]["teacher"]["not_in_suite"] == 0
    assert r2.meta["n"]["teacher"] == N + 1


def test_run_errors(traces, tmp_path):
    own, forced = traces
    renamed = [Trace(**{**f.to_dict(), "model": "x-" + f.model}) for f in forced]
    with pytest.raises(InputError, match=r"no model has both.*'student'.*'x-student'.*--name"):
        reliance.run(own, renamed, n_boot=10)
    with pytest.raises(InputError, match=r"model 'teacher': only 25 items.*truncated_own"):
        reliance.run(own, forced, n_boot=10, min_items=26)
    only_teacher = [f for f in forced if f.model == "teacher"]
    r = reliance.run(own, only_teacher, n_boot=10)
    assert r.meta["models_without_forced"] == ["student"]
    assert set(r.table["model"]) == {"teacher"}
    with pytest.raises(InputError, match="forced traces not found"):
        reliance.run(own, tmp_path / "nope.jsonl")
    marked = [Trace(**{**f.to_dict(), "meta": {"forced_reasoning": True}}) for f in forced]
    reliance.run(own, marked, n_boot=10)
    with pytest.raises(InputError, match="own traces first"):   # arguments swapped
        reliance.run(marked, own, n_boot=10)


def test_plot_is_a_figure(traces):
    import matplotlib.figure

    r = reliance.run(*traces, n_boot=50)
    fig = r.plot()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 2


def test_cli_writes_the_numbers_of_run(traces, tmp_path, capsys):
    own, forced = traces
    fo, ff = tmp_path / "own.jsonl", tmp_path / "forced.jsonl"
    append_traces(fo, own)
    append_traces(ff, forced)
    out = tmp_path / "rel"
    assert main(["probe", "reliance", str(fo), str(ff), "--out", str(out), "--n-boot", "200",
                 "--seed", "7"]) == 0
    got = pd.read_csv(out / "reliance.csv").drop(columns="unit")
    want = reliance.run(fo, ff, n_boot=200, seed=7).table
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                  check_dtype=False)
    meta = json.loads((out / "reliance.json").read_text())
    assert meta["seed"] == 7  # the format `mimicry run` writes: each unit's meta under "meta"
    assert meta["meta"]["all"]["exclusions"]["teacher"]["truncated_own"] == 1
    assert (out / "reliance__all.png").stat().st_size > 0 and (out / "reliance__all.pdf").exists()
    assert "teacher" in capsys.readouterr().out

    out2 = tmp_path / "rel2"
    assert main(["probe", "reliance", str(fo), "--out", str(out2)]) == 2
    assert "two traces files" in capsys.readouterr().err
    assert main(["probe", "reliance", str(fo), str(tmp_path / "nope.jsonl"),
                 "--out", str(out2)]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    assert not out2.exists()
