"""Cross-model comparisons for :func:`mimicry.alignment.align` (definitions: docs/alignment.md).

Always (two or more models, or one model against humans): difficulty fingerprints with their
RSA matrix, relative effort, KL divergence between effort distributions. With roles:
Δr teacher→student (paired bootstrap over shared items), negative transfer (student vs base,
McNemar per task + a paired test across tasks) and the inflation law (student vs base inverse
efficiency). Each function returns a DataFrame and adds a JSON-ready entry to the summary.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import stats

HUMAN = "human"
RSA_MAX_PERM = 1000
RSA_MAX_ITEMS_FOR_P = 500  # Mantel test costs O(n_items² × n_perm); skipped above this


def analyse(df: pd.DataFrame, pts: pd.DataFrame, table: pd.DataFrame, models: list[str],
            roles: dict[str, str], summary: dict[str, Any], *, seed: int, n_boot: int,
            n_perm: int, min_items: int) -> dict[str, pd.DataFrame]:
    """Return the extra tables (fingerprints, rsa, relative_effort, kl, and role tables).

    ``df``: every trace with ``correct``, ``included``, ``log_cost``; ``pts``: included items.
    Adds the matching summary entries in place.
    """
    kw = dict(seed=seed, n_boot=n_boot, n_perm=n_perm, min_items=min_items)
    extra: dict[str, pd.DataFrame] = {}
    models = [m for m in models if (pts.model == m).any()]  # a model with no kept item
    wide = _wide(pts, models)                                # would empty the intersection
    extra["fingerprints"], extra["rsa"] = fingerprints(wide, models, summary, **kw)
    if len(models) >= 2:
        extra["relative_effort"] = relative_effort(wide, models, summary, **kw)
    extra["kl"] = kl_table(wide, models, summary)
    t, s, b = roles.get("teacher"), roles.get("student"), roles.get("base")
    if t and s:
        extra["delta_r"] = delta_r(pts, t, s, summary, **kw)
    if s and b:
        extra["negative_transfer"] = negative_transfer(df, s, b, summary, seed=seed,
                                                       n_boot=n_boot)
        extra["inflation"] = inflation(df, s, b, summary)
    return extra


def _wide(pts: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Return items included for every model: ``task, item_id, y, <model>...`` (log cost)."""
    w = pts.pivot_table(index=["task", "item_id"], columns="model", values="log_cost",
                        sort=False)
    y = pts.groupby(["task", "item_id"], sort=False)["y"].first()
    w = w.reindex(columns=models).dropna()
    w.insert(0, "y", y.reindex(w.index))
    return w.reset_index()


def _z(v: pd.Series, task: pd.Series) -> pd.Series:
    g = v.groupby(task)
    sd = g.transform("std")
    return (v - g.transform("mean")) / sd.where(sd > 0)


def fingerprints(wide: pd.DataFrame, models: list[str], summary: dict, *, seed: int,
                 n_boot: int, n_perm: int, min_items: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (fingerprints ``[n_items, models + human]``, RSA matrix) and summarise them.

    A fingerprint is log cost z-scored within task (human: the measure z-scored within task)
    over the items every model kept, concatenated across tasks. RSA = Spearman of the upper
    triangles of the item × item RDMs |z_i − z_j|, Mantel p with item-label permutations.
    """
    fp = wide[["task", "item_id"]].copy()
    for m in [*models, HUMAN]:
        fp[m] = _z(wide["y"] if m == HUMAN else wide[m], wide["task"])
    fp = fp.dropna()
    names = [*models, HUMAN]
    mat = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    pairs = []
    if len(fp) >= max(min_items, 4):
        rdms = {m: stats.rdm(fp[m].to_numpy()) for m in names}
        rsa_perm = min(n_perm, RSA_MAX_PERM) if len(fp) <= RSA_MAX_ITEMS_FOR_P else 0
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                res = stats.rsa(rdms[a], rdms[b], n_perm=rsa_perm, seed=seed)
                c = stats.correlate(fp[a], fp[b], n_boot=n_boot, n_perm=n_perm, seed=seed)
                mat.loc[a, b] = mat.loc[b, a] = res.rho
                pairs.append({"a": a, "b": b, "rsa_rho": res.rho, "rsa_p_mantel": res.p,
                              "rsa_n_perm": res.n_perm, "fingerprint_r": c.r,
                              "fingerprint_ci": [c.ci_low, c.ci_high], "fingerprint_p": c.p})
    else:
        mat[:] = np.nan
    summary["fingerprints"] = {
        "n_items": int(len(fp)), "tasks": fp["task"].unique().tolist(), "pairs": pairs,
        "rsa_p_note": f"Mantel p with up to {RSA_MAX_PERM} permutations when n_items <= "
                      f"{RSA_MAX_ITEMS_FOR_P}, else null (cost O(n_items^2 x n_perm)); "
                      "fingerprint_r carries a bootstrap CI and permutation p"}
    rsa = mat.reset_index().rename(columns={"index": "model"})
    return fp.reset_index(drop=True), rsa


def relative_effort(wide: pd.DataFrame, models: list[str], summary: dict, *, seed: int,
                    n_boot: int, n_perm: int, min_items: int) -> pd.DataFrame:
    """Return per-item relative effort ``log cost_m − mean over models`` and summarise per model.

    Summary per model: mean relative effort (log ratio to the geometric mean of all models'
    costs on the item) with a bootstrap CI, as a ratio, and its correlation with the human
    measure z-scored within task (does the model spend *relatively* more on harder items?).
    """
    rel = wide[["task", "item_id"]].copy()
    lc = wide[models].to_numpy()
    rel[models] = lc - lc.mean(axis=1, keepdims=True)
    yz = _z(wide["y"], wide["task"]).to_numpy()
    out = {}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(rel), size=(n_boot, len(rel))) if len(rel) else None
    for m in models:
        v = rel[m].to_numpy()
        if len(v) < min_items:
            out[m] = {"n": len(v), "mean_log_ratio": None}
            continue
        lo, hi = stats.percentile_ci(v[idx].mean(axis=1), n=len(v))
        ok = np.isfinite(yz)
        c = stats.correlate(v[ok], yz[ok], n_boot=n_boot, n_perm=n_perm, seed=seed) \
            if ok.sum() >= min_items and np.ptp(v[ok]) > 0 else None
        out[m] = {"n": len(v), "mean_log_ratio": float(v.mean()), "ci": [lo, hi],
                  "ratio": math.exp(v.mean()), "ratio_ci": [math.exp(lo), math.exp(hi)],
                  "r_with_human": c.to_dict() if c else None}
    summary["relative_effort"] = out
    return rel


def kl_table(wide: pd.DataFrame, models: list[str], summary: dict) -> pd.DataFrame:
    """Return KL(P_a ‖ P_b) per task between effort distributions (models and human RT).

    P_m(i) = cost_m,i / Σ_j cost_m,j over the task's shared items (raw tokens); human
    P(i) = RT_i / Σ RT_j (RT tasks only; ``y`` holds log RT there). Natural log (nats).
    """
    rows = []
    for task, g in wide.groupby("task", sort=False):
        dist = {m: np.exp(g[m].to_numpy()) for m in models}
        if task in _rt_tasks(summary):
            dist[HUMAN] = np.exp(g["y"].to_numpy())
        for a, pa in dist.items():
            for b, pb in dist.items():
                if a != b:
                    rows.append({"task": task, "p": a, "q": b, "n": len(g),
                                 "kl": stats.kl_divergence(pa, pb)})
    kl = pd.DataFrame(rows, columns=["task", "p", "q", "n", "kl"])
    mean = kl.groupby(["p", "q"], sort=False)["kl"].mean() if len(kl) else pd.Series()
    summary["kl"] = {"definition": "KL(P||Q) = sum_i P_i ln(P_i/Q_i), P = cost share per item "
                     "within a task; mean over tasks",
                     "mean_over_tasks": [{"p": p, "q": q, "kl": v} for (p, q), v in mean.items()]}
    return kl


def _rt_tasks(summary: dict) -> set[str]:
    return {t for t, m in summary["measure_by_task"].items() if m == "log_rt_ms"}


def delta_r(pts: pd.DataFrame, teacher: str, student: str, summary: dict, *, seed: int,
            n_boot: int, n_perm: int, min_items: int) -> pd.DataFrame:
    """Return Δr = r_student − r_teacher per task on shared items (paired bootstrap CI and p)."""
    rows = []
    for task in pts.task.unique():
        a = pts[(pts.model == teacher) & (pts.task == task)].set_index("item_id")
        b = pts[(pts.model == student) & (pts.task == task)].set_index("item_id")
        shared = a.index.intersection(b.index)
        if len(shared) < min_items:
            continue
        d = stats.paired_corr_diff(a.loc[shared, "log_cost"], b.loc[shared, "log_cost"],
                                   a.loc[shared, "y"], n_boot=n_boot, seed=seed)
        rows.append({"task": task, "n": d.n, "r_teacher": d.r_a, "r_student": d.r_b,
                     "delta_r": d.delta, "ci_low": d.ci_low, "ci_high": d.ci_high, "p": d.p})
    out = pd.DataFrame(rows, columns=["task", "n", "r_teacher", "r_student", "delta_r",
                                      "ci_low", "ci_high", "p"])
    zt, zs = np.arctanh(out.r_teacher.clip(-.9999999, .9999999)), \
        np.arctanh(out.r_student.clip(-.9999999, .9999999))
    summary["delta_r"] = {
        "teacher": teacher, "student": student, "per_task": out.to_dict("records"),
        "pooled": _pooled_delta_r(pts, teacher, student, out.task.tolist(), seed=seed,
                                  n_boot=n_boot),
        "across_tasks": stats.paired_test(zt, zs).to_dict() | {
            "on": "Fisher z of per-task r (student - teacher)"},
        "r_bar_teacher": stats.fisher_mean(out.r_teacher).r_bar,
        "r_bar_student": stats.fisher_mean(out.r_student).r_bar}
    return out


def _pooled_delta_r(pts: pd.DataFrame, teacher: str, student: str, tasks: list[str], *,
                    seed: int, n_boot: int) -> dict | None:
    """Return r̄ teacher, r̄ student and Δr̄ (Fisher-z means over tasks) with stratified CIs.

    Items are resampled within their task, once for both models (mimicry.stats.pooled); the
    same tasks and items as the per-task rows. None when no task qualifies.
    """
    from ..stats.pooled import pooled_corr_diff

    if not tasks:
        return None
    p = pts[pts.task.isin(tasks)]
    a = p[p.model == teacher].set_index(["task", "item_id"])
    b = p[p.model == student].set_index(["task", "item_id"])
    shared = a.index.intersection(b.index)
    d = pooled_corr_diff(a.loc[shared, "log_cost"], b.loc[shared, "log_cost"],
                         a.loc[shared, "y"], shared.get_level_values("task"),
                         n_boot=n_boot, seed=seed)
    return {"delta_r": d.delta, "ci_low": d.ci_low, "ci_high": d.ci_high, "p": d.p, "n": d.n,
            "k": d.k, "r_bar_teacher": d.a.r_bar, "teacher_ci": [d.a.ci_low, d.a.ci_high],
            "teacher_p": d.a.p, "r_bar_student": d.b.r_bar,
            "student_ci": [d.b.ci_low, d.b.ci_high], "student_p": d.b.p, "n_boot": n_boot,
            "seed": seed, "method": "Fisher-z mean over tasks; paired bootstrap of items "
                                    "within task (expanded percentile CI, CI-consistent p)"}


def _acc(df: pd.DataFrame, model: str) -> pd.DataFrame:
    d = df[(df.model == model) & df.correct.notna()].set_index("item_id")
    return d


def negative_transfer(df: pd.DataFrame, student: str, base: str, summary: dict, *,
                      seed: int = 0, n_boot: int = 10_000) -> pd.DataFrame:
    """Return student vs base accuracy per task on shared items (McNemar, BH-FDR q).

    The summary adds ``pooled``: every shared item at once (exact McNemar on the pooled
    discordant pairs, stratified paired bootstrap CI of the accuracy difference).
    """
    s, b = _acc(df, student), _acc(df, base)
    rows = []
    for task in df.task.unique():
        shared = s[s.task == task].index.intersection(b[b.task == task].index)
        if not len(shared):
            continue
        mc = stats.mcnemar(b.loc[shared, "correct"].astype(bool),
                           s.loc[shared, "correct"].astype(bool))
        rows.append({"task": task, "n": mc.n, "acc_base": mc.acc_a, "acc_student": mc.acc_b,
                     "diff": mc.acc_b - mc.acc_a, "base_only": mc.a_only,
                     "student_only": mc.b_only, "statistic": mc.statistic, "p": mc.p,
                     "method": mc.method})
    out = pd.DataFrame(rows, columns=["task", "n", "acc_base", "acc_student", "diff",
                                      "base_only", "student_only", "statistic", "p", "method"])
    out["q_bh"] = stats.bh_fdr(out.p)[0] if len(out) else []
    pooled = None
    if len(out):
        from ..stats.pooled import pooled_paired_binary

        keys = [(t, i) for t in out.task for i in
                s[s.task == t].index.intersection(b[b.task == t].index)]
        ids = [i for _, i in keys]
        pb = pooled_paired_binary(b.loc[ids, "correct"].astype(bool),
                                  s.loc[ids, "correct"].astype(bool), [t for t, _ in keys],
                                  n_boot=n_boot, seed=seed)
        pooled = pb.to_dict()
    summary["negative_transfer"] = {
        "student": student, "base": base, "per_task": out.to_dict("records"),
        "pooled": pooled,
        "n_tasks_student_worse": int((out["diff"] < 0).sum()),
        "across_tasks": stats.paired_test(out.acc_base, out.acc_student).to_dict() | {
            "on": "per-task accuracy (student - base)"}}
    return out


def inflation(df: pd.DataFrame, student: str, base: str, summary: dict) -> pd.DataFrame:
    """Return per-task inverse efficiency (mean cost / accuracy) and the student-on-base slope.

    Mean cost is the arithmetic mean of reasoning tokens over the same traces as accuracy
    (every scored trace with a token count), truncated traces included at the tokens they
    spent (a lower bound; counted in ``n_truncated_<role>``), so a model that hits the token
    budget is not made to look less verbose than it is. Tasks where either accuracy is 0 or
    unknown are left out of the regression and listed (inverse efficiency is undefined).
    """
    rows, dropped = [], []
    for task in df.task.unique():
        r = {"task": task}
        for role, m in (("base", base), ("student", student)):
            d = df[(df.model == m) & (df.task == task)]
            tok = pd.to_numeric(d.reasoning_tokens, errors="coerce")
            use = tok.notna() & (tok > 0) & (d.correct.notna() | ~d.correct.notna().any())
            cost = float(tok[use].mean()) if use.any() else np.nan
            acc = d.correct.dropna().astype(bool).mean() if d.correct.notna().any() else np.nan
            r |= {f"mean_cost_{role}": cost, f"accuracy_{role}": acc,
                  f"n_truncated_{role}": int((use & (d.finish_reason == "length")).sum()),
                  f"ie_{role}": cost / acc if acc > 0 else np.nan}
        r["verbosity_ratio"] = r["mean_cost_student"] / r["mean_cost_base"]
        if not (np.isfinite(r["ie_base"]) and np.isfinite(r["ie_student"])):
            dropped.append({"task": task, "reason": "accuracy 0 or unknown, or no included "
                            "traces: inverse efficiency undefined"})
        rows.append(r)
    out = pd.DataFrame(rows)
    ok = out.dropna(subset=["ie_base", "ie_student"]) if len(out) else out
    fit = stats.ols(ok.ie_base, ok.ie_student).to_dict() if len(ok) >= 3 else None
    fit0 = stats.ols(ok.ie_base, ok.ie_student, through_origin=True).to_dict() \
        if len(ok) >= 2 else None
    summary["inflation"] = {"student": student, "base": base, "n_tasks": int(len(ok)),
                            "fit": fit, "fit_through_origin": fit0, "dropped_tasks": dropped,
                            "per_task": out.to_dict("records")}
    return out
