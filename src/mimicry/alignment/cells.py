"""Behavioural alignment: does a model's reasoning cost track human difficulty? (DESIGN.md).

``align(traces, suite)`` joins traces to the suite's human norms, applies the stated
exclusions, and returns an :class:`AlignmentResult`: per model × task Pearson r of log cost
vs the human measure (log RT in ms, or the error rate for accuracy-only tasks) with a
percentile bootstrap CI over items and a permutation p, Spearman alongside; per model r̄ by
Fisher z and the across-task r of task means; and, with roles, the teacher/student/base
comparisons in :mod:`mimicry.alignment.roles`. Every statistic is defined in docs/alignment.md.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import stats
from ..errors import InputError, MimicryError
from ..tasks.items import TaskSuite
from ..traces import Trace, read_traces

ROLE_NAMES = ("teacher", "student", "base")
COSTS = ("reasoning_tokens", "total_tokens")
R_MEASURE, ACC_MEASURE = "log_rt_ms", "error_rate"
TABLE_COLUMNS = ["model", "task", "n", "r", "ci_low", "ci_high", "p_perm", "spearman",
                 "spearman_p", "spearman_ci_low", "spearman_ci_high", "accuracy", "n_accuracy", "mean_log_cost", "measure",
                 "reliability", "r_disattenuated", "n_excluded"]
EXCLUSION_COLUMNS = ["model", "task", "item_id", "reason", "detail"]


@dataclass
class AlignmentResult:
    """Alignment tables (pandas), the JSON summary, and figure/save helpers.

    ``table``: one row per model × task (columns ``TABLE_COLUMNS``); ``summary``: JSON-ready
    dict; ``exclusions``: one row per excluded trace or cell; ``points``: the included items
    (``model, task, item_id, log_cost, y, measure``); ``extra``: role/fingerprint tables.
    """

    table: pd.DataFrame
    summary: dict[str, Any]
    exclusions: pd.DataFrame
    points: pd.DataFrame
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    def figures(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Return ``{name: Figure}``: scatter, forest and, with roles, delta_r,
        negative_transfer, inflation (``names``: only these)."""
        from . import figures as fb

        roles = self.summary.get("roles", {})
        want = set(names) if names is not None else None
        figs: dict[str, Any] = {}

        def add(name, make):
            if want is None or name in want:
                figs[name] = make()

        add("scatter", lambda: fb.scatter_figure(
            self.points, self.table, synthetic=bool(self.summary.get("synthetic_norms"))))
        add("forest", lambda: fb.forest_figure(self.table, self.summary.get("per_model", {})))
        if "delta_r" in self.extra and len(self.extra["delta_r"]):
            add("delta_r", lambda: fb.delta_r_figure(self.extra["delta_r"], roles))
        nt = self.extra.get("negative_transfer")
        if nt is not None and len(nt):
            add("negative_transfer", lambda: fb.negative_transfer_figure(
                nt, roles.get("student", "student"), roles.get("base", "base")))
        inf, info = self.extra.get("inflation"), self.summary.get("inflation") or {}
        if inf is not None and len(inf.dropna(subset=["ie_base", "ie_student"])):
            add("inflation", lambda: fb.inflation_figure(
                inf, info.get("fit"), info.get("fit_through_origin"),
                student=roles.get("student", "student"), base=roles.get("base", "base")))
        return figs

    def save(self, out_dir: str | Path, *, figures: Iterable[str] | None = None) -> list[Path]:
        """Write tables, ``summary.json`` and figures (PNG+PDF) into ``out_dir``; return paths.

        ``figures``: names of the figures to draw (default: all of :meth:`figures`).

        Everything is written into a temporary folder first and moved in only when complete.
        """
        from .. import plots
        from ..io import atomic_write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".align-", dir=out))
        try:
            self.table.to_csv(tmp / "alignment.csv", index=False)
            self.exclusions.to_csv(tmp / "exclusions.csv", index=False)
            self.points.to_csv(tmp / "items.csv", index=False)
            for name, df in self.extra.items():
                df.to_csv(tmp / f"{name}.csv", index=False)
            atomic_write_json(tmp / "summary.json", self.summary)
            for name, fig in self.figures(figures).items():
                plots.save_figure(fig, tmp / name)
            written = []
            for f in sorted(tmp.iterdir()):
                os.replace(f, out / f.name)
                written.append(out / f.name)
            return written
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: str | Path) -> AlignmentResult | None:
        """Return the result :meth:`save` wrote into ``folder`` (None when it holds none)."""
        import json

        from ..io import read_csv_if_exists

        d = Path(folder)
        table = read_csv_if_exists(d / "alignment.csv")
        if table is None:
            return None
        summary = json.loads((d / "summary.json").read_text()) \
            if (d / "summary.json").exists() else {}
        parts = {k: read_csv_if_exists(d / f"{k}.csv") for k in ("exclusions", "items")}
        extra = {f.stem: read_csv_if_exists(f) for f in sorted(d.glob("*.csv"))
                 if f.stem not in ("alignment", "exclusions", "items")}
        return cls(table, summary,
                   parts["exclusions"] if parts["exclusions"] is not None else pd.DataFrame(),
                   parts["items"] if parts["items"] is not None else pd.DataFrame(), extra)



# --------------------------------------------------------------------------- inputs


def _load(traces: Iterable[Trace | str | Path]) -> list[tuple[Trace, str]]:
    out: list[tuple[Trace, str]] = []
    for t in traces:
        if isinstance(t, Trace):
            out.append((t, "<python>"))
        else:
            out.extend((tr, str(t)) for tr in read_traces(t))
    if not out:
        raise InputError("no traces given", fix="pass at least one traces JSONL file")
    return out


def _frame(pairs: list[tuple[Trace, str]], suite: TaskSuite) -> pd.DataFrame:
    unknown: dict[str, list[str]] = {}
    rows, seen = [], {}
    for t, src in pairs:
        item = suite.get(str(t.item_id))
        if item is None:
            unknown.setdefault(src, []).append(str(t.item_id))
            continue
        key = (t.model, item.item_id)
        if key in seen:
            raise InputError(f"two traces for model {t.model!r} item {item.item_id!r} "
                             f"(also in {seen[key]})", file=src,
                             fix="keep one trace per model × item")
        seen[key] = src
        rows.append({"model": str(t.model), "task": item.task, "item_id": item.item_id,
                     "reasoning_tokens": t.reasoning_tokens, "answer_tokens": t.answer_tokens,
                     "correct": t.correct, "finish_reason": t.finish_reason, "source": src,
                     "rt_ms": item.human.rt_ms, "human_accuracy": item.human.accuracy})
    if unknown:
        src, ids = next(iter(unknown.items()))
        n = sum(len(v) for v in unknown.values())
        raise InputError(f"{n} trace(s) for items not in suite {suite.name!r}, "
                         f"e.g. {', '.join(repr(i) for i in ids[:3])}", file=src,
                         fix="pass the suite these traces were generated on (--tasks)")
    return pd.DataFrame(rows)


def _task_measures(suite: TaskSuite) -> dict[str, str]:
    """Return the measure per task: log RT if any item has an RT, else the error rate."""
    out: dict[str, str] = {}
    for it in suite:
        if it.human.rt_ms is not None:
            out[it.task] = R_MEASURE
        else:
            out.setdefault(it.task, ACC_MEASURE)
    return out


def _cost(df: pd.DataFrame, cost: str) -> pd.Series:
    rt = pd.to_numeric(df["reasoning_tokens"], errors="coerce")
    if cost == "total_tokens":
        return rt + pd.to_numeric(df["answer_tokens"], errors="coerce")
    return rt


def _exclude(df: pd.DataFrame, measures: dict[str, str], *, exclude_truncated: bool,
             cost: str) -> tuple[pd.Series, list[dict]]:
    """Return a keep mask over traces and the item-level exclusion records."""
    c = _cost(df, cost)
    y_missing = np.where(df["task"].map(measures) == R_MEASURE, df["rt_ms"].isna(),
                         df["human_accuracy"].isna())
    reasons = pd.Series(None, index=df.index, dtype=object)
    checks = [
        (exclude_truncated & (df["finish_reason"] == "length"), "truncated",
         "finish_reason == 'length' (cut by the token limit)"),
        (c.isna(), "missing token count", f"{cost} is missing"),
        (c <= 0, "zero tokens", f"{cost} <= 0: log cost undefined"),
        (pd.Series(y_missing, index=df.index), "no human norm",
         "the item lacks the task's human measure"),
    ]
    recs = []
    for mask, reason, detail in checks:
        new = mask.fillna(False).astype(bool) & reasons.isna()
        reasons[new] = reason
        recs += [{"model": r.model, "task": r.task, "item_id": r.item_id, "reason": reason,
                  "detail": detail} for r in df[new].itertuples()]
    return reasons.isna(), recs


def _validate_roles(roles: Mapping[str, str] | None, models: list[str]) -> dict[str, str]:
    roles = dict(roles or {})
    for role, model in roles.items():
        if role not in ROLE_NAMES:
            raise MimicryError(f"unknown role {role!r}", fix=f"use {', '.join(ROLE_NAMES)}")
        if model not in models:
            raise MimicryError(f"role {role}={model!r}: no traces for that model",
                               fix=f"models found: {', '.join(models)}")
    return roles


# --------------------------------------------------------------------------- statistics


def align(traces: Iterable[Trace | str | Path], suite: TaskSuite, *,
          roles: Mapping[str, str] | None = None, seed: int = 0, n_boot: int = 10_000,
          n_perm: int = 10_000, min_items: int = 5, exclude_truncated: bool = True,
          cooks: bool = False, cost: str = "reasoning_tokens",
          progress: bool = True) -> AlignmentResult:
    """Return the :class:`AlignmentResult` of traces (Trace objects or JSONL paths) on a suite.

    ``roles`` maps ``teacher``/``student``/``base`` (any subset) to model names. ``cost`` is
    ``"reasoning_tokens"`` (default) or ``"total_tokens"`` (reasoning + answer, for models that
    do not use ``<think>``). Raises :class:`InputError` for traces of items not in the suite.
    """
    from . import roles as alignment_roles

    if cost not in COSTS:
        raise MimicryError(f"unknown cost {cost!r}", fix=f"use one of {', '.join(COSTS)}")
    if min_items < 3:
        raise MimicryError(f"min_items={min_items} is too small", fix="use min_items >= 3")
    df = _frame(_load(traces), suite)
    models = list(dict.fromkeys(df["model"]))
    roles = _validate_roles(roles, models)
    measures = _task_measures(suite)
    keep, excl = _exclude(df, measures, exclude_truncated=exclude_truncated, cost=cost)
    df["log_cost"] = np.log(_cost(df, cost).where(keep))
    df["measure"] = df["task"].map(measures)
    df["y"] = np.where(df["measure"] == R_MEASURE,
                       np.log(pd.to_numeric(df["rt_ms"], errors="coerce")),
                       1 - pd.to_numeric(df["human_accuracy"], errors="coerce"))
    df["included"] = keep
    rows, cells = [], [(m, t) for m in models for t in suite.tasks
                       if ((df.model == m) & (df.task == t)).any()]
    for m, t in tqdm(cells, desc="align", disable=not progress):
        rows.append(_cell(df, m, t, excl, suite, seed=seed, n_boot=n_boot, n_perm=n_perm,
                          min_items=min_items, cooks=cooks))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    exclusions = pd.DataFrame(excl, columns=EXCLUSION_COLUMNS)
    pts = df[df["included"]][["model", "task", "item_id", "log_cost", "y", "measure"]]
    pts = pts.reset_index(drop=True)
    summary = _summary(table, pts, exclusions, suite, models, measures, roles,
                       {m: int(len(suite) - (df.model == m).sum()) for m in models},
                       dict(seed=seed, n_boot=n_boot, n_perm=n_perm, min_items=min_items,
                            exclude_truncated=exclude_truncated, cooks=cooks, cost=cost))
    extra = alignment_roles.analyse(df, pts, table, models, roles, summary, seed=seed,
                                    n_boot=n_boot, n_perm=n_perm, min_items=min_items)
    return AlignmentResult(table, summary, exclusions, pts, extra)


def _cell(df: pd.DataFrame, model: str, task: str, excl: list[dict], suite: TaskSuite, *,
          seed: int, n_boot: int, n_perm: int, min_items: int, cooks: bool) -> dict:
    sel = (df.model == model) & (df.task == task)
    cell = df[sel]
    known = cell["correct"].dropna()
    acc = float(known.astype(bool).mean()) if len(known) else math.nan
    inc = cell[cell["included"]]
    x, y = inc["log_cost"].to_numpy(float), inc["y"].to_numpy(float)
    if cooks and len(inc) >= 4:
        d = stats.cooks_distance(x, y)
        out = ~(d <= 4 / len(inc))
        for r, dv in zip(inc[out].itertuples(), d[out]):
            excl.append({"model": model, "task": task, "item_id": r.item_id,
                         "reason": "cooks distance", "detail": f"D={dv:.3g} > 4/n={4/len(inc):.3g}"})
        df.loc[inc.index[out], "included"] = False
        inc, x, y = inc[~out], x[~out], y[~out]
    rel = suite.reliability.get(task)
    rel = float(rel) if rel is not None and math.isfinite(float(rel)) else math.nan
    row = dict(model=model, task=task, n=len(inc), accuracy=acc, n_accuracy=len(known),
               mean_log_cost=float(x.mean()) if len(x) else math.nan,
               measure=cell["measure"].iloc[0], reliability=rel,
               n_excluded=int(len(cell) - len(inc)))
    nan_stats = dict(r=math.nan, ci_low=math.nan, ci_high=math.nan, p_perm=math.nan,
                     spearman=math.nan, spearman_p=math.nan, spearman_ci_low=math.nan,
                     spearman_ci_high=math.nan, r_disattenuated=math.nan)
    constant = len(x) and (np.ptp(x) == 0 or np.ptp(y) == 0)
    if len(inc) < min_items or constant:
        why = "constant cost or measure" if constant and len(inc) >= min_items else \
            f"n={len(inc)} < min_items={min_items}"
        excl.append({"model": model, "task": task, "item_id": None,
                     "reason": "too few items" if len(inc) < min_items else "constant values",
                     "detail": f"cell not analysed: {why}"})
        df.loc[inc.index, "included"] = False
        return {**row, **nan_stats}
    from scipy.stats import spearmanr

    c = stats.correlate(x, y, n_boot=n_boot, n_perm=n_perm, seed=seed)
    sp = spearmanr(x, y)
    s_lo, s_hi = stats.bootstrap_ci(x, y, method="spearman", n_boot=n_boot, seed=seed)
    dis = c.r / math.sqrt(rel) if rel > 0 else math.nan
    return {**row, "r": c.r, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_perm": c.p,
            "spearman": float(sp.statistic), "spearman_p": float(sp.pvalue),
            "spearman_ci_low": s_lo, "spearman_ci_high": s_hi,
            "r_disattenuated": dis}


def _summary(table: pd.DataFrame, pts: pd.DataFrame, exclusions: pd.DataFrame,
             suite: TaskSuite, models: list[str], measures: dict[str, str],
             roles: dict[str, str], missing: dict[str, int],
             settings: dict) -> dict[str, Any]:
    import platform

    import scipy

    from .. import __version__

    per_model = {}
    for m in models:
        t = table[(table.model == m) & table.r.notna()]
        fm = stats.fisher_mean(t.r.to_numpy(), t.n.to_numpy()).to_dict()
        per_model[m] = {**fm, "tasks": t.task.tolist(), "across_task": _across(pts, m, t)}
    return {
        "suite": suite.name, "synthetic_norms": bool(getattr(suite, "synthetic", False)),
        "measure_by_task": measures, "models": models, "roles": roles,
        **settings,
        "bootstrap": "expanded percentile CI over items, seed=seed; permutation p two-sided, +1 "
                     "corrected, seed=seed+1",
        "per_model": per_model,
        "suite_items_without_trace": missing,
        "exclusions": {"total": int(len(exclusions)),
                       "by_reason": {str(k): int(v) for k, v in
                                     exclusions["reason"].value_counts().items()},
                       "by_model": {str(k): int(v) for k, v in
                                    exclusions["model"].value_counts().items()}},
        "versions": {"mimicry": __version__, "numpy": np.__version__,
                     "scipy": scipy.__version__, "pandas": pd.__version__,
                     "python": platform.python_version()},
    }


def _across(pts: pd.DataFrame, model: str, t: pd.DataFrame) -> dict[str, Any]:
    """Return the across-task r of task means (mean log cost vs mean log RT), RT tasks only."""
    tasks = t[t.measure == R_MEASURE].task.tolist()
    p = pts[(pts.model == model) & pts.task.isin(tasks)]
    g = p.groupby("task", sort=False)[["log_cost", "y"]].mean()
    k = len(g)
    res: dict[str, Any] = {"k": k, "tasks": g.index.tolist(),
                           "mean_log_cost": g.log_cost.tolist(), "mean_log_rt_ms": g.y.tolist()}
    if k < 3:
        return {**res, "r": None, "note": "needs >= 3 RT tasks"}
    from scipy.stats import pearsonr

    x, y = g.log_cost.to_numpy(), g.y.to_numpy()
    r = stats.pearson(x, y)
    lo, hi = stats.fisher_ci(r, k)
    p_perm = stats.exact_permutation_p(x, y) if k <= 8 else stats.permutation_p(x, y)
    return {**res, "r": r, "ci_low": lo, "ci_high": hi, "ci_method": "Fisher z (k-3)",
            "p_perm": p_perm, "p_perm_method": "exact (all k! orders)" if k <= 8 else
            "10k permutations", "p_t": float(pearsonr(x, y).pvalue)}
