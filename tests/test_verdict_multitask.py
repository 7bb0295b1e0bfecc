"""Verdict on the multi-task path (issue 10): pooled tests, layer correction, text baselines,
reliance controls, calibration. Each test fails on the rule and statistics before issue 10."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mimicry import stats as S
from mimicry.stats.pooled import (
    bootstrap_p,
    items_needed,
    pooled_corr,
    pooled_corr_diff,
    pooled_paired_binary,
    stratified_indices,
)
from mimicry.tasks.items import HumanNorms, Item, TaskSuite
from mimicry.traces import Trace
from probes import verdict
from probes.baselines import layer_evidence

SIZES = {"syllogisms": 64, "spatial": 56, "relational_4ps": 45, "relational_3ps": 16}


# --------------------------------------------------------------------------- pooled statistics


def test_stratified_indices_stay_within_task():
    strata = np.repeat(["a", "b", "c"], [5, 3, 7])
    idx = stratified_indices(strata, 50, 3)
    assert idx.shape == (50, 15)
    assert (strata[idx] == strata[None, :]).all()
    # one stratum: the same draws as the plain bootstrap
    one = stratified_indices(np.zeros(9), 20, 4)
    assert (one == S.bootstrap_indices(9, 20, 4)).all()


def test_pooled_corr_diff_vs_direct_loop():
    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1, 2], [20, 15, 12])
    y = rng.normal(size=strata.size)
    a = y + rng.normal(size=y.size)
    b = y + 2 * rng.normal(size=y.size)
    d = pooled_corr_diff(a, b, y, strata, n_boot=300, seed=5)
    idx = stratified_indices(strata, 300, 5)

    def zbar(x, rows):
        return np.tanh(np.mean([np.arctanh(sps.pearsonr(x[rows][strata == k],
                                                        y[rows][strata == k]).statistic)
                                for k in range(3)]))
    loop = np.array([zbar(b, i) - zbar(a, i) for i in idx])
    assert d.delta == pytest.approx(zbar(b, np.arange(y.size)) - zbar(a, np.arange(y.size)))
    lo, hi = np.quantile(loop, S.ci_levels(0.95, y.size))
    assert (d.ci_low, d.ci_high) == pytest.approx((lo, hi))
    assert d.p == pytest.approx(bootstrap_p(loop, y.size))
    pc = pooled_corr(b, y, strata, n_boot=300, seed=5)
    assert pc.r_bar == pytest.approx(d.b.r_bar) and pc.ci_low == pytest.approx(d.b.ci_low)


@pytest.mark.parametrize("n", [4, 16, 181])
def test_bootstrap_p_matches_the_ci_rule(n):
    """Defect 8: p < 0.05 exactly when the (expanded) interval excludes 0."""
    rng = np.random.default_rng(1)
    agree = 0
    for _ in range(300):
        dist = rng.normal(rng.uniform(-0.5, 0.5), 0.2, size=2000)
        lo, hi = S.percentile_ci(dist, n)
        excl = lo > 0 or hi < 0
        agree += excl == (bootstrap_p(dist, n) < 0.05)
    assert agree >= 297          # disagreements only at the quantile interpolation


def test_delta_r_p_consistent_with_its_ci():
    """Defect 8: the per-task Δr p follows the expanded interval (old: plain percentile tail)."""
    rng = np.random.default_rng(2)
    mismatch = 0
    for k in range(150):
        y = rng.normal(size=16)
        a = 0.5 * y + rng.normal(size=16)
        b = 0.5 * y + rng.normal(size=16)
        d = S.paired_corr_diff(a, b, y, n_boot=2000, seed=k)
        mismatch += (d.ci_low > 0 or d.ci_high < 0) != (d.p < 0.05)
    assert mismatch <= 2


def test_pooled_paired_binary_is_exact_mcnemar_over_all_items():
    rng = np.random.default_rng(3)
    strata = np.repeat(list(SIZES), list(SIZES.values()))
    a = rng.uniform(size=strata.size) < 0.8
    b = rng.uniform(size=strata.size) < 0.5
    r = pooled_paired_binary(a, b, strata, n_boot=500, seed=0)
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    assert (r.a_only, r.b_only) == (n10, n01)
    assert r.p == pytest.approx(sps.binomtest(n01, n10 + n01, 0.5).pvalue)
    assert r.diff == pytest.approx(b.mean() - a.mean()) and r.k == 4
    # b == c: p = 1
    same = pooled_paired_binary([1, 0, 1, 1], [0, 1, 1, 1], n_boot=50)
    assert same.p == 1.0


def test_items_needed():
    assert items_needed(-0.2, 0.1, 100, 0.6) == 25
    assert np.isnan(items_needed(np.nan, 0.1, 100, 0.6))


# --------------------------------------------------------------------------- 4-task align()


def _four_task(seed, r_teacher, r_student, acc_student=0.85, acc_base=0.8):
    rng = np.random.default_rng(seed)
    items, traces = [], []
    for task, n in SIZES.items():
        y = rng.standard_normal(n)
        rt = np.exp(7 + 0.4 * y)
        for i in range(n):
            items.append(Item(f"{task}{i}", task, prompt="p", answer="a",
                              human=HumanNorms(rt_ms=float(rt[i]))))
        for model, r, acc in (("T", r_teacher, 0.85), ("S", r_student, acc_student),
                              ("B", 0.0, acc_base)):
            lc = r * y + np.sqrt(1 - r * r) * rng.standard_normal(n)
            tok = np.exp(4 + 0.5 * lc).round().astype(int) + 1
            ok = rng.uniform(size=n) < acc
            traces += [Trace(item_id=f"{task}{i}", model=model, task=task,
                             reasoning_tokens=int(tok[i]), correct=bool(ok[i]))
                       for i in range(n)]
    return TaskSuite("four", items), traces


def _verdict(suite, traces, **kw):
    from mimicry.alignment import align

    al = align(traces, suite, roles={"teacher": "T", "student": "S", "base": "B"}, n_boot=2000,
               n_perm=200, progress=False)
    v = verdict.run(teacher="T", students="S", alignment=al, **kw)
    return v.tables["calls"].iloc[0], v.table.set_index("evidence"), al


def test_collapse_fires_with_four_tasks():
    """Defect 1: Δr below 0 in every task gives a C row with a CI and p, and the call."""
    suite, traces = _four_task(0, 0.75, 0.2)
    call, ev, al = _verdict(suite, traces)
    row = ev.loc["delta_r"]
    assert np.isfinite(row["ci_low"]) and row["ci_high"] < 0 and row["p"] < 0.05 / 2
    assert row["n"] == sum(SIZES.values())
    pooled = al.summary["delta_r"]["pooled"]
    assert pooled["k"] == 4 and pooled["delta_r"] == pytest.approx(row["value"])
    assert call["call"] == "surface mimicry" and "C:" in call["decided_by"]


def test_negative_transfer_fires_with_four_tasks():
    """Defect 2: accuracy below base in 4 tasks reaches p < 0.05 (Wilcoxon cannot: 0.125)."""
    suite, traces = _four_task(1, 0.6, 0.6, acc_student=0.45, acc_base=0.85)
    call, ev, _ = _verdict(suite, traces)
    row = ev.loc["accuracy_vs_base"]
    assert row["value"] < 0 and row["p"] < 1e-4 and np.isfinite(row["ci_high"])
    assert call["call"] == "surface mimicry" and "N:" in call["decided_by"]


def test_teacher_with_constant_cost_on_four_tasks_is_inconclusive():
    """Defect 3: a teacher whose r is undefined never lets a call through."""
    suite, traces = _four_task(2, 0.6, 0.6)
    traces = [Trace(**{**t.to_dict(), "reasoning_tokens": 50}) if t.model == "T" else t
              for t in traces]
    call, ev, _ = _verdict(suite, traces)
    assert call["call"] == "inconclusive" and call["decided_by"].startswith("T:")


def test_truncated_traces_count_in_mean_cost():
    """Defect 8: mean cost uses the same traces as accuracy (truncated included, counted)."""
    from mimicry.alignment import align

    suite, traces = _four_task(3, 0.6, 0.6)
    cut = {t.item_id for t in traces if t.model == "S"}
    cut = set(sorted(cut)[:20])
    traces = [Trace(**{**t.to_dict(), "reasoning_tokens": 4000, "finish_reason": "length",
                       "correct": False}) if t.model == "S" and t.item_id in cut else t
              for t in traces]
    al = align(traces, suite, roles={"teacher": "T", "student": "S", "base": "B"},
               n_boot=200, n_perm=100, progress=False)
    inf = pd.DataFrame(al.summary["inflation"]["per_task"]).set_index("task")
    for task in SIZES:
        tok = [t.reasoning_tokens for t in traces if t.model == "S" and t.task == task]
        assert inf.loc[task, "mean_cost_student"] == pytest.approx(np.mean(tok))
    assert inf["n_truncated_student"].sum() == 20


# --------------------------------------------------------------------------- layers, baselines


def _perm_null(y, preds, rng, n_perm=99):
    """Return Spearman ρ ``[L, n_perm]`` of each layer's prediction with y permuted (shared)."""
    n = y.size
    perms = np.argsort(rng.uniform(size=(n_perm, n)), axis=1)
    ry = sps.rankdata(y)
    ryp = (ry[perms] - ry.mean()) / ry.std()
    rp = sps.rankdata(preds, axis=1)
    rpz = (rp - rp.mean(1, keepdims=True)) / rp.std(1, keepdims=True)
    out = rpz @ ryp.T / n
    assert out[0, 0] == pytest.approx(sps.spearmanr(y[perms[0]], preds[0]).statistic)
    return out


def test_peak_layer_is_corrected_for_selection():
    """Defect 4: under the null, the peak of 13 layers is 'significant' ≤ ~5% (not ~23-50%)."""
    rng = np.random.default_rng(4)
    n, L, sets = 96, 13, 150
    hits_max = hits_sim = hits_naive = 0
    for k in range(sets):
        y = rng.standard_normal(n)
        preds = rng.standard_normal((L, n))
        null = _perm_null(y, preds, rng)
        t = layer_evidence(y, preds, null, n_boot=200, seed=k)
        pk = t["rho"].idxmax()
        hits_max += t.loc[pk, "p_maxstat"] < 0.05
        hits_sim += t.loc[pk, "rho_sim_low"] > 0
        naive = (1 + (null[pk] >= t.loc[pk, "rho"]).sum()) / 100     # uncorrected
        hits_naive += naive < 0.05
    assert hits_naive / sets > 0.2
    assert hits_max / sets <= 0.09 and hits_sim / sets <= 0.09


def test_gain_over_text_baseline_decides_p():
    """Defect 7: a layer that only re-reads prompt length has no gain: P does not hold."""
    rng = np.random.default_rng(5)
    n = 120
    y = rng.standard_normal(n)
    length = y + 0.3 * rng.standard_normal(n)                # prompt length tracks the target
    preds = np.vstack([length + 0.3 * rng.standard_normal(n) for _ in range(6)])
    null = _perm_null(y, preds, rng)
    t = layer_evidence(y, preds, null, {"prompt_tokens": length, "bag_of_tokens": None},
                       n_boot=300, seed=0)
    pk = t.loc[t["rho"].idxmax()]
    assert pk["p_maxstat"] < 0.05 and pk["rho_sim_low"] > 0.5 and pk["baseline"] == "prompt_tokens"
    assert pk["gain_sim_low"] <= 0
    row = verdict._row("s", "planning_rho", "x", pk["rho"], pk["rho_sim_low"], pk["rho_sim_high"],
                       pk["p_maxstat"], n, gain_low=pk["gain_sim_low"])
    good = [verdict._row("s", e, "x", .6, .4, .8, .001, 100) for e in
            ("behaviour_r", "teacher_behaviour_r", "reliance", "teacher_reliance")]
    call, reasons = verdict.decide(pd.DataFrame([*good, row]))
    assert call == "inconclusive" and any(r.startswith("open: P") for r in reasons)


def test_difficulty_rows_carry_maxstat_and_gain():
    from _probes_fake import make_fake

    from probes import difficulty

    cache, labels = make_fake(n=80, seed=1)
    cache.items["n_prompt_tokens"] = 10 + np.arange(80) % 3      # uninformative lengths
    r = difficulty.run(cache, tasks=labels, n_perm=30, n_boot=100, progress_bar=False)
    t = r.table
    assert {"p_maxstat", "gain", "gain_sim_low", "baseline"} <= set(t.columns)
    pk = t.loc[t["rho"].idxmax()]
    assert pk["p_maxstat"] == pytest.approx(1 / 31) and pk["baseline"] == "prompt_tokens"
    assert pk["p_min"] == pytest.approx(1 / 31)
    few = difficulty.run(cache, tasks=labels, n_perm=10, n_boot=100, progress_bar=False)
    row = verdict._peak_row("s", "difficulty_peak_rho", few.table.loc[few.table["rho"].idxmax()],
                            "difficulty")
    assert "smallest attainable p is 0.0909" in row["note"]
    assert pk["gain"] == pytest.approx(pk["rho"] - pk["baseline_rho"])


# --------------------------------------------------------------------------- reliance controls


def test_control_traces():
    from mimicry.traces.controls import empty_traces, filler_traces

    tr = [Trace(item_id="a", model="m", reasoning="x y z", reasoning_tokens=3, prompt="p")]
    e = empty_traces(tr)[0]
    assert e.reasoning == "" and e.reasoning_tokens == 0 and e.meta["control"] == "empty"
    f = filler_traces(tr)[0]
    assert f.reasoning == ". . ." and f.reasoning_tokens == 3 and tr[0].reasoning == "x y z"


def test_filler_matches_length_in_tokens_and_answer_after_takes_controls(tmp_path):
    from mimicry.generate import generate
    from mimicry.generate.forced import answer_after
    from mimicry.models import load_tokenizer
    from mimicry.organism import checkpoint_path, organism_suite
    from mimicry.traces import read_traces
    from mimicry.traces.controls import control_file
    from probes import reliance

    suite = organism_suite()
    items = list(suite)[:12]
    path = str(checkpoint_path("teacher"))
    own = tmp_path / "own.jsonl"
    generate(path, items, own, name="teacher", batch_size=12, max_new_tokens=40, progress=False)
    tok = load_tokenizer(path)
    files = {}
    for c in ("empty", "filler"):
        src = control_file(own, tmp_path / f"{c}.jsonl", c, tokenizer=tok)
        for o, g in zip(read_traces(own), read_traces(src)):
            n = len(tok(g.reasoning, add_special_tokens=False)["input_ids"])
            assert n == (0 if c == "empty" else o.reasoning_tokens)
        files[c] = tmp_path / f"{c}__answers.jsonl"
        answer_after(path, src, items, files[c], name="teacher", batch_size=12,
                     max_answer_tokens=4, progress=False)
    scr = tmp_path / "scr.jsonl"
    answer_after(path, own, items, scr, name="teacher", batch_size=12, max_answer_tokens=4,
                 progress=False)        # "forced" after its own reasoning: reliance 0
    res = reliance.run(own, scr, tasks=suite, empty=files["empty"], filler=files["filler"],
                       min_items=5)
    t = res.table.set_index(["control", "task"])
    assert set(t.index.get_level_values(0)) == {"scrambled", "empty", "filler"}
    own_acc = np.mean([x.correct for x in read_traces(own)])
    for c in ("empty", "filler"):
        acc = np.mean([x.correct for x in read_traces(files[c])])
        assert t.loc[(c, "all"), "reliance"] == pytest.approx(own_acc - acc)


# --------------------------------------------------------------------------- calibration


def test_calibration_fast():
    """The calibration harness, small: wrong definite calls stay rare in every scenario."""
    from probes import verdict_calibration as vc

    for sc in vc.SCENARIOS:
        r = vc.call_rates(sc, vc.BUNDLED, n_sets=50, seed=1000, n_boot=500, n_perm=50)
        assert r["wrong"] <= 0.1, r
        if sc in ("b", "c"):
            assert r["surface mimicry"] >= 0.8, r
        if sc == "a":
            assert r["policy transfer"] >= 0.6, r


def test_four_task_end_to_end_policy_transfer_and_post_hoc():
    """align() on 4 tasks + planning on fake caches + reliance: every rule on one path.

    'S' tracks difficulty like the teacher, plans its length beyond the (constant) prompt
    text and its answers depend on its reasoning -> policy transfer; 'P' is the same student
    whose answers ignore its reasoning (post-hoc) -> surface mimicry (the old rule passed it
    through accuracy above base).
    """
    from _probes_fake import FakeCache

    from mimicry.alignment import align
    from probes import planning, reliance

    suite, traces = _four_task(7, 0.7, 0.7, acc_student=0.9, acc_base=0.5)
    traces += [Trace(**{**t.to_dict(), "model": "P"}) for t in traces if t.model == "S"]
    ids = [it.item_id for it in suite]
    rng = np.random.default_rng(8)

    def cache(model, strength):
        tok = np.array([t.reasoning_tokens for t in traces if t.model == model], float)
        z = (np.log(tok) - np.log(tok).mean()) / np.log(tok).std()
        resid = {(la, "last_prompt"): rng.standard_normal((len(ids), 8)) for la in range(4)}
        resid[(2, "last_prompt")][:, 0] += strength * z
        items = pd.DataFrame({"item_id": ids, "task": [it.task for it in suite],
                              "reasoning_tokens": tok, "n_prompt": 12})
        return FakeCache(items, resid)

    caches = {"T": cache("T", 3), "S": cache("S", 3), "P": cache("P", 3)}
    plan = planning.run(caches, tasks=suite, teacher="T", n_perm=40, n_boot=300,
                        transfer=False, progress_bar=False)
    forced = []
    for t in traces:
        if t.model in ("T", "S", "P"):
            keep = t.model == "P" or rng.uniform() < 0.3
            forced.append(Trace(item_id=t.item_id, model=t.model, task=t.task,
                                correct=bool(t.correct) and keep if t.model != "P"
                                else bool(rng.uniform() < 0.9)))
    rel = reliance.run([t for t in traces if t.model != "B"], forced, tasks=suite, n_boot=500)
    calls = {}
    for s in ("S", "P"):
        al = align([t for t in traces if t.model in ("T", s, "B")], suite,
                   roles={"teacher": "T", "student": s, "base": "B"}, n_boot=1000, n_perm=200,
                   progress=False)
        # planning and reliance were run for every model: the other student is a known name
        v = verdict.run(teacher="T", students=s, alignment=al, planning=plan, reliance=rel,
                        known_models={"S", "P"} - {s})
        calls[s] = v.tables["calls"].iloc[0]
        ev = v.table.set_index("evidence")
        assert ev.loc["delta_r", "n"] == sum(SIZES.values()) and np.isfinite(
            ev.loc["delta_r", "ci_low"])
        assert ev.loc["planning_rho", "p"] == pytest.approx(1 / 41)      # max-stat p
        assert ev.loc["planning_rho", "gain_low"] > 0                     # text: constant
        assert ev.loc["accuracy_vs_base", "value"] > 0.2
    assert calls["S"]["call"] == "policy transfer", calls["S"]["decided_by"]
    assert calls["P"]["call"] == "surface mimicry", calls["P"]["decided_by"]
    assert calls["P"]["decided_by"].startswith("W-")


def test_cli_control_and_reliance_with_controls(tmp_path, capsys):
    from experiments.cli import main
    from mimicry.traces import append_traces, read_traces

    own = [Trace(item_id=f"i{k}", model="m", task="t", prompt="p", reasoning="a b c",
                 reasoning_tokens=3, correct=k % 4 != 0) for k in range(20)]
    append_traces(tmp_path / "own.jsonl", own)
    assert main(["scramble", str(tmp_path / "own.jsonl"), "--out", str(tmp_path / "f.jsonl"),
                 "--control", "filler"]) == 0
    assert [t.reasoning for t in read_traces(tmp_path / "f.jsonl")] == [". . ."] * 20
    forced = [Trace(**{**t.to_dict(), "correct": k % 2 == 0}) for k, t in enumerate(own)]
    empty = [Trace(**{**t.to_dict(), "correct": False}) for t in own]
    append_traces(tmp_path / "forced.jsonl", forced)
    append_traces(tmp_path / "empty.jsonl", empty)
    assert main(["probe", "reliance", str(tmp_path / "own.jsonl"), str(tmp_path / "forced.jsonl"),
                 "--empty", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "out"),
                 "--n-boot", "50"]) == 0
    t = pd.read_csv(tmp_path / "out" / "reliance.csv").set_index("control")
    assert t.loc["empty", "reliance"] == pytest.approx(15 / 20)      # 15 own-correct, 0 after
    assert t.loc["scrambled", "reliance"] == pytest.approx(15 / 20 - 10 / 20)
