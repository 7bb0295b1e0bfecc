"""align(): per-cell numbers, exclusions, accuracy-only suites, roles — vs independent numpy/scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mimicry import stats as S
from mimicry.alignment import align
from mimicry.tasks.items import HumanNorms, Item, TaskSuite
from mimicry.traces import Trace

TASKS = {"t1": 7.0, "t2": 8.0, "t3": 9.0, "t4": 10.0}  # mean log RT (ms) per task
N_PER_TASK = 60
ACC_BASE = {"t1": 0.9, "t2": 0.8, "t3": 0.7, "t4": 0.6}
INFLATION = 2.44


def _rt_suite(rng) -> tuple[TaskSuite, dict[str, float]]:
    items, y = [], {}
    for t, mu in TASKS.items():
        for i in range(N_PER_TASK):
            iid = f"{t}-{i}"
            y[iid] = mu + rng.normal()
            items.append(Item(iid, t, human=HumanNorms(rt_ms=float(np.exp(y[iid])))))
    return TaskSuite("synthetic", items), y


@pytest.fixture(scope="module")
def roles_data():
    """Teacher tracks log RT (r ≈ 0.89); base weakly (r ≈ 0.29); the student copies the base's
    allocation, inflated so that its inverse efficiency is 2.44 × the base's on every task,
    and loses ~20% of the base's correct answers (negative transfer)."""
    rng = np.random.default_rng(0)
    suite, y = _rt_suite(rng)
    traces = []
    for it in suite:
        t, yi = it.task, y[it.item_id]
        traces.append(Trace(it.item_id, "T", task=t, correct=bool(rng.random() < 0.9),
                            reasoning_tokens=round(float(np.exp(yi - 1 + 0.5 * rng.normal())))))
    base_cost, base_ok = {}, {}
    for it in suite:
        yi = y[it.item_id]
        base_cost[it.item_id] = float(np.exp(4 + 0.3 * (yi - TASKS[it.task]) + rng.normal()
                                             + 0.5 * list(TASKS).index(it.task)))
        base_ok[it.item_id] = bool(rng.random() < ACC_BASE[it.task])
    stud_ok = {k: v and rng.random() > 0.2 for k, v in base_ok.items()}
    for t in TASKS:
        ids = [i.item_id for i in suite if i.task == t]
        acc_b = np.mean([base_ok[i] for i in ids])
        acc_s = np.mean([stud_ok[i] for i in ids])
        for i in ids:
            traces.append(Trace(i, "B", task=t, correct=base_ok[i],
                                reasoning_tokens=base_cost[i]))
            traces.append(Trace(i, "S", task=t, correct=stud_ok[i],
                                reasoning_tokens=base_cost[i] * INFLATION * acc_s / acc_b))
    res = align(traces, suite, roles={"teacher": "T", "student": "S", "base": "B"},
                n_boot=2000, n_perm=2000, seed=1, progress=False)
    return suite, y, traces, res


def _frame(traces, y):
    df = pd.DataFrame([t.to_dict() for t in traces])
    df["y"] = df.item_id.map(y)
    df["lc"] = np.log(df.reasoning_tokens.astype(float))
    return df


def test_table_matches_scipy(roles_data):
    suite, y, traces, res = roles_data
    df = _frame(traces, y)
    assert {"model", "task", "n", "r", "ci_low", "ci_high", "p_perm", "spearman", "spearman_p",
            "accuracy", "mean_log_cost", "measure"} <= set(res.table.columns)
    assert len(res.table) == 12
    for row in res.table.itertuples():
        d = df[(df.model == row.model) & (df.task == row.task)]
        assert row.n == N_PER_TASK
        assert row.r == pytest.approx(sps.pearsonr(d.lc, d.y).statistic, abs=1e-12)
        assert row.spearman == pytest.approx(sps.spearmanr(d.lc, d.y).statistic, abs=1e-12)
        assert row.spearman_p == pytest.approx(sps.spearmanr(d.lc, d.y).pvalue)
        assert row.accuracy == pytest.approx(d.correct.mean())
        assert row.mean_log_cost == pytest.approx(d.lc.mean())
        assert row.ci_low < row.r < row.ci_high
        assert (row.spearman_ci_low, row.spearman_ci_high) == pytest.approx(
            S.bootstrap_ci(d.lc, d.y, method="spearman", n_boot=2000, seed=1))
        assert row.measure == "log_rt_ms"
    pm = res.summary["per_model"]["T"]
    rs = res.table[res.table.model == "T"].r.to_numpy()
    assert pm["r_bar"] == pytest.approx(np.tanh(np.arctanh(rs).mean()))
    assert pm["k"] == 4


def test_delta_r_paired_bootstrap(roles_data):
    suite, y, traces, res = roles_data
    df = _frame(traces, y)
    d = res.extra["delta_r"]
    assert len(d) == 4
    true_delta = 0.3 / math.sqrt(0.09 + 1) - 1 / math.sqrt(1 + 0.25)  # ≈ -0.607
    for row in d.itertuples():
        t = df[(df.model == "T") & (df.task == row.task)].set_index("item_id")
        s = df[(df.model == "S") & (df.task == row.task)].set_index("item_id").loc[t.index]
        want = np.corrcoef(s.lc, s.y)[0, 1] - np.corrcoef(t.lc, t.y)[0, 1]
        assert row.delta_r == pytest.approx(want, abs=1e-12)
        assert row.ci_high < 0 and row.p < 0.01
    assert d.delta_r.mean() == pytest.approx(true_delta, abs=0.15)
    assert res.summary["delta_r"]["across_tasks"]["n"] == 4


def test_negative_transfer_mcnemar(roles_data):
    suite, y, traces, res = roles_data
    df = _frame(traces, y)
    nt = res.extra["negative_transfer"]
    for row in nt.itertuples():
        b = df[(df.model == "B") & (df.task == row.task)].set_index("item_id").correct
        s = df[(df.model == "S") & (df.task == row.task)].set_index("item_id").correct[b.index]
        n10 = int((b & ~s).sum())
        n01 = int((~b & s).sum())
        assert (row.base_only, row.student_only) == (n10, n01)
        assert n01 == 0 and row.diff < 0
        if n10 + n01 < 25:
            assert row.p == pytest.approx(sps.binomtest(n01, n10 + n01).pvalue)
    across = res.summary["negative_transfer"]["across_tasks"]
    assert across["wilcoxon_p"] == pytest.approx(
        sps.wilcoxon(nt.acc_student, nt.acc_base).pvalue)
    assert res.summary["negative_transfer"]["n_tasks_student_worse"] == 4


def test_inflation_law_slope(roles_data):
    suite, y, traces, res = roles_data
    df = _frame(traces, y)
    g = df.groupby(["model", "task"]).agg(cost=("reasoning_tokens", "mean"),
                                          acc=("correct", "mean"))
    ie = g.cost / g.acc
    ib, is_ = ie["B"].loc[list(TASKS)], ie["S"].loc[list(TASKS)]
    inf = res.summary["inflation"]
    lr = sps.linregress(ib, is_)
    assert inf["fit"]["slope"] == pytest.approx(lr.slope, rel=1e-9)
    assert inf["fit"]["slope"] == pytest.approx(INFLATION, rel=1e-6)
    assert inf["fit_through_origin"]["slope"] == pytest.approx(INFLATION, rel=1e-6)
    assert inf["n_tasks"] == 4 and inf["dropped_tasks"] == []


def test_fingerprints_relative_effort_kl(roles_data):
    suite, y, traces, res = roles_data
    df = _frame(traces, y)
    w = df.pivot(index="item_id", columns="model", values="lc")
    w["task"] = w.index.str.split("-").str[0]
    w["y"] = w.index.map(y)
    z = w.groupby("task")[["T", "S", "B", "y"]].transform(lambda v: (v - v.mean()) / v.std())
    from scipy.spatial.distance import pdist

    fp = res.extra["fingerprints"].set_index("item_id").loc[z.index]
    np.testing.assert_allclose(fp["T"], z["T"], atol=1e-12)
    rsa = res.extra["rsa"].set_index("model")
    want = sps.spearmanr(pdist(z[["T"]]), pdist(z[["y"]])).statistic
    assert rsa.loc["T", "human"] == pytest.approx(want, abs=1e-6)  # float near-ties
    assert rsa.loc["human", "T"] == rsa.loc["T", "human"]
    # relative effort of S: mean over items of log cost_S − mean over models
    re = res.summary["relative_effort"]["S"]
    assert re["mean_log_ratio"] == pytest.approx((w["S"] - w[["T", "S", "B"]].mean(1)).mean())
    # KL(human ‖ T) on task t1: cost shares vs RT shares
    kl = res.extra["kl"]
    t1 = w[w.task == "t1"]
    got = kl[(kl.task == "t1") & (kl.p == "human") & (kl.q == "T")].kl.item()
    assert got == pytest.approx(sps.entropy(np.exp(t1.y), np.exp(t1["T"])))


def test_exclusions_counted(rng=None):
    rng = np.random.default_rng(5)
    suite, y = _rt_suite(rng)
    traces = []
    for k, it in enumerate(suite):
        tok = float(np.exp(y[it.item_id] - 2 + 0.3 * rng.normal()))
        fr = "length" if k % 10 == 0 else "stop"
        if k % 17 == 0:
            tok = 0
        if it.task == "t4" and k % 2:
            continue
        traces.append(Trace(it.item_id, "M", reasoning_tokens=tok, finish_reason=fr))
    few = [t for t in traces if not t.item_id.startswith("t4")] + \
        [t for t in traces if t.item_id.startswith("t4")][:4]
    res = align(few, suite, n_boot=500, n_perm=500, progress=False)
    ex = res.exclusions
    n_trunc = sum(t.finish_reason == "length" for t in few)
    n_zero = sum(t.reasoning_tokens == 0 and t.finish_reason != "length" for t in few)
    assert (ex.reason == "truncated").sum() == n_trunc
    assert (ex.reason == "zero tokens").sum() == n_zero
    assert res.summary["exclusions"]["by_reason"]["too few items"] == 1
    row = res.table[res.table.task == "t4"].iloc[0]
    assert math.isnan(row.r) and row.n < 5
    t1 = res.table[res.table.task == "t1"].iloc[0]
    assert t1.n + t1.n_excluded == N_PER_TASK
    kept = res.points[(res.points.task == "t1")]
    assert len(kept) == t1.n
    # truncated traces kept on request
    res2 = align(few, suite, n_boot=200, n_perm=200, exclude_truncated=False, progress=False)
    assert (res2.exclusions.reason == "truncated").sum() == 0


def test_cooks_exclusion_and_accuracy_measure():
    rng = np.random.default_rng(8)
    items, traces = [], []
    for i in range(30):
        acc = float(rng.uniform(0.2, 1.0))
        items.append(Item(f"s{i}", "syl", human=HumanNorms(accuracy=acc)))
        tok = float(np.exp(5 + 2 * (1 - acc) + 0.2 * rng.normal()))
        traces.append(Trace(f"s{i}", "M", reasoning_tokens=tok))
    traces[0].reasoning_tokens = 1e6  # an outlier
    suite = TaskSuite("acc", items)
    res = align(traces, suite, n_boot=300, n_perm=300, progress=False)
    row = res.table.iloc[0]
    err = np.array([1 - it.human.accuracy for it in items])
    lc = np.log([t.reasoning_tokens for t in traces])
    assert row.measure == "error_rate"
    assert row.r == pytest.approx(sps.pearsonr(lc, err).statistic)
    res_c = align(traces, suite, n_boot=300, n_perm=300, cooks=True, progress=False)
    from mimicry.stats import cooks_distance

    d = cooks_distance(lc, err)
    out = d > 4 / 30
    assert (res_c.exclusions.reason == "cooks distance").sum() == out.sum() >= 1
    assert res_c.table.iloc[0].r == pytest.approx(sps.pearsonr(lc[~out], err[~out]).statistic)
    assert res_c.summary["cooks"] is True


def test_save_and_figures(roles_data, tmp_path):
    *_, res = roles_data
    figs = res.figures()
    assert set(figs) >= {"scatter", "forest", "delta_r"}
    ax = figs["scatter"].axes[0]
    assert "tokens" in ax.get_xlabel() and "ms" in ax.get_ylabel()
    paths = res.save(tmp_path / "o")
    names = {p.name for p in paths}
    assert {"alignment.csv", "summary.json", "scatter.png", "scatter.pdf", "forest.png",
            "forest.pdf", "delta_r.csv", "negative_transfer.csv", "inflation.csv"} <= names
    s = json.loads((tmp_path / "o" / "summary.json").read_text())  # strict JSON: no NaN
    assert s["roles"] == {"teacher": "T", "student": "S", "base": "B"}
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]
    back = pd.read_csv(tmp_path / "o" / "alignment.csv")
    np.testing.assert_allclose(back.r, res.table.r)


def test_noise_ceiling_and_missing_items():
    rng = np.random.default_rng(9)
    suite, y = _rt_suite(rng)
    suite = TaskSuite("rel", list(suite), reliability={"t1": 0.64, "t2": None})
    traces = [Trace(it.item_id, "M", reasoning_tokens=float(np.exp(y[it.item_id] + rng.normal())))
              for it in suite if not it.item_id.endswith("-0")]
    res = align(traces, suite, n_boot=200, n_perm=200, progress=False)
    t = res.table.set_index("task")
    assert t.loc["t1", "reliability"] == 0.64
    assert t.loc["t1", "r_disattenuated"] == pytest.approx(t.loc["t1", "r"] / 0.8)
    assert math.isnan(t.loc["t2", "r_disattenuated"])
    assert res.summary["suite_items_without_trace"] == {"M": 4}
