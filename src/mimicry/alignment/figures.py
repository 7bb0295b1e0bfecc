"""Behavioural figures: cost vs difficulty, r̄ forest, Δr, negative transfer, inflation law.

Each function returns a :class:`matplotlib.figure.Figure` in the house style of
:mod:`mimicry.plots` (fixed colour and marker per model, legends outside the data, units on
every axis). :meth:`mimicry.alignment.AlignmentResult.figures` draws all of them, so the CLI
(``mimicry align``) and the runner write the same files under the same names.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..plots import (
    MEASURE_LABEL,
    TASK_MARKERS,
    fit_band,
    legend_outside,
    log_axis,
    model_style,
    new_figure,
    note,
    panel_grid,
    rt_label,
)
from ..stats import wilson_ci

X_SHIFT = 0.015  # log units between neighbouring models in the scatter (≈ 1.5% of the cost)


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, int | float | np.floating) and math.isfinite(v)


def scatter_figure(points: pd.DataFrame, table: pd.DataFrame, *,
                   synthetic: bool = False) -> Figure:
    """Return log cost vs the difficulty norm, one panel per task (≤ 2 per row), one style per model.

    ``points``: ``model, task, log_cost, y, measure`` (y = log RT or error rate); ``table``:
    the alignment table (r, CI and n go in the legend). Lines: OLS fit with its 95% CI band.
    Models are shifted by 1.5% of the cost from each other, so identical series stay visible.
    """
    tasks = list(dict.fromkeys(points.task)) or ["(no data)"]
    models = list(dict.fromkeys(table.model))
    fig, axes = panel_grid(len(tasks), width=4.8, height=3.6)
    mid = (len(models) - 1) / 2
    for ax, task in zip(axes, tasks):
        sub = points[points.task == task]
        measure = sub.measure.iloc[0] if len(sub) else "log_rt_ms"
        rt = measure == "log_rt_ms"
        for k, m in enumerate(models):
            st = model_style(m)
            p = sub[sub.model == m]
            row = table[(table.model == m) & (table.task == task)]
            if p.empty:
                continue
            shift = (k - mid) * X_SHIFT
            lx = p.log_cost.to_numpy(float)
            yv = p.y.to_numpy(float)
            lab = m
            if len(row) and _finite(row.r.iloc[0]):
                rr = row.iloc[0]
                lab = f"{m}: r = {rr.r:.2f} [{rr.ci_low:.2f}, {rr.ci_high:.2f}], n = {int(rr.n)}"
            ax.scatter(np.exp(lx + shift), np.exp(yv) if rt else yv, s=16, marker=st.marker,
                       facecolors="none", edgecolors=st.color, linewidths=0.9, alpha=0.8,
                       label=lab)
            if len(p) >= 3 and np.ptp(lx) > 0:
                g = np.linspace(lx.min(), lx.max(), 50)
                f, lo, hi = fit_band(lx, yv, g)
                tr = np.exp if rt else (lambda v: v)
                ax.plot(np.exp(g + shift), tr(f), color=st.color, lw=1.4)
                ax.fill_between(np.exp(g + shift), tr(lo), tr(hi), color=st.color, alpha=0.15,
                                lw=0)
        log_axis(ax.xaxis, ax.set_xscale)
        if rt:
            log_axis(ax.yaxis, ax.set_yscale)
        ax.set_title(f"{task}: one point per item", fontsize=9)
        ax.set_xlabel("reasoning tokens (count, log scale)")
        ax.set_ylabel(rt_label(synthetic) if rt else MEASURE_LABEL.get(measure, measure))
        legend_outside(ax, where="below", fontsize=6.5)
    if len(models) > 1:
        note(fig, f"Models are shifted by {X_SHIFT:.1%} of the cost from each other, so "
                  "series that coincide stay visible; lines: least-squares fit, band: 95% CI.")
    return fig


def forest_figure(table: pd.DataFrame, per_model: dict[str, Any]) -> Figure:
    """Return the forest plot: r̄ per model (◆, Fisher z, 95% CI) with each task's r (grey)."""
    models = list(dict.fromkeys(table.model))
    tasks = list(dict.fromkeys(table.task))
    fig = new_figure(6.4, 1.4 + 0.5 * max(1, len(models)))
    ax = fig.subplots()
    shown: set[str] = set()
    for i, m in enumerate(models):
        yb = len(models) - 1 - i
        st = model_style(m)
        t = table[(table.model == m) & table.r.notna()]
        for j, task in enumerate(tasks):
            row = t[t.task == task]
            if row.empty:
                continue
            off = (j - (len(tasks) - 1) / 2) * 0.5 / max(1, len(tasks))
            rr = row.iloc[0]
            ax.errorbar(rr.r, yb + off, xerr=[[rr.r - rr.ci_low], [rr.ci_high - rr.r]],
                        fmt=TASK_MARKERS[j % len(TASK_MARKERS)], ms=4, color="0.6", lw=0.8,
                        clip_on=False, label=task if task not in shown else None, zorder=2)
            shown.add(task)
        s = per_model.get(m, {})
        rb = s.get("r_bar")
        if _finite(rb):
            lo, hi = s.get("ci_low"), s.get("ci_high")
            xerr = [[rb - lo], [hi - rb]] if _finite(lo) and _finite(hi) else None
            ax.errorbar(rb, yb, xerr=xerr, fmt="D", ms=7, capsize=4, color=st.color, lw=2,
                        mec="white", mew=0.6, clip_on=False, zorder=3)
            ax.annotate(f"{rb:.2f}", (rb, yb), xytext=(0, 7), textcoords="offset points",
                        ha="center", fontsize=7, color=st.color)
        else:
            ax.text(0.02, yb, "no r: no task with enough included traces (see exclusions)",
                    fontsize=7, color="0.35", va="center", ha="left")
    ax.axvline(0, color="0.3", lw=0.8, ls="--")
    ax.set_yticks(range(len(models)), models[::-1])
    for lab, m in zip(ax.get_yticklabels(), models[::-1]):
        lab.set_color(model_style(m).color)
    ax.set_ylim(-0.6, len(models) - 0.4)
    ax.set_xlim(-1.08, 1.08)
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.set_xlabel("Pearson r of log cost with the difficulty norm (unitless)")
    ax.set_title("Alignment per model: ◆ r̄ over tasks (Fisher z, 95% CI), grey: each task's r",
                 fontsize=9)
    if shown:
        legend_outside(ax, title="task (grey, 95% CI)")
    return fig


def delta_r_figure(delta: pd.DataFrame, roles: dict[str, str]) -> Figure:
    """Return Δr = r_student − r_teacher per task with paired-bootstrap 95% CIs (value printed)."""
    stud, teach = roles.get("student", "student"), roles.get("teacher", "teacher")
    fig = new_figure(6.4, 1.5 + 0.45 * max(1, len(delta)))
    ax = fig.subplots()
    yy = np.arange(len(delta))[::-1]
    c = model_style(stud).color
    d = delta.delta_r.to_numpy(float)
    lo, hi = delta.ci_low.to_numpy(float), delta.ci_high.to_numpy(float)
    ax.errorbar(d, yy, xerr=[np.clip(d - lo, 0, None), np.clip(hi - d, 0, None)], fmt="o",
                capsize=4, color=c, ms=6)
    for x, y, a, b in zip(d, yy, lo, hi):
        ax.annotate(f"Δr = {x:+.3f} [{a:+.3f}, {b:+.3f}]", (x, y), xytext=(0, 8),
                    textcoords="offset points", ha="center", fontsize=7)
    ax.axvline(0, color="0.3", lw=0.8, ls="--")
    span = np.nanmax(np.abs(np.r_[lo, hi, d, 0.0])) if len(d) else 0.0
    half = max(0.1, 1.15 * float(span))
    ax.set_xlim(-half, half)
    ax.set_ylim(-0.7, len(delta) - 0.3)
    ax.set_yticks(yy, delta.task)
    ax.set_xlabel(f"Δr = r({stud}) − r({teach})  (Pearson r units; 95% paired bootstrap CI)",
                  fontsize=8)
    ax.set_title(f"Change in alignment from {teach} to {stud} (left of 0: {stud} tracks "
                 "difficulty less)", fontsize=8.5)
    return fig


def _transfer_title(nt: pd.DataFrame) -> str:
    q = nt.get("q_bh", nt.get("p", pd.Series(np.nan, index=nt.index))).to_numpy(float)
    diff = (nt["acc_student"] - nt["acc_base"]).to_numpy(float)
    sig = np.isfinite(q) & (q < 0.05)
    down, up = int((sig & (diff < 0)).sum()), int((sig & (diff > 0)).sum())
    k = len(nt)
    if down and not up:
        return f"Negative transfer: student below its base ({down} of {k} tasks, q < .05)"
    if up and not down:
        return f"No negative transfer: student above its base ({up} of {k} tasks, q < .05)"
    if up and down:
        return f"Mixed: student below its base on {down}, above on {up} of {k} tasks"
    return "Student vs its base: no task differs at q < .05"


def negative_transfer_figure(nt: pd.DataFrame, student: str = "student", base: str = "base",
                             colours: dict[str, str] | None = None) -> Figure:
    """Return grouped bars of base vs student accuracy per task with Wilson 95% CIs.

    ``nt``: ``negative_transfer.csv`` (``task, n, acc_base, acc_student, p, q_bh``). The title
    says which way the difference goes; ``colours`` (model → colour) overrides the run style.
    """
    colours = colours or {}
    tasks = nt["task"].astype(str).tolist()
    x = np.arange(len(tasks))
    w = 0.38
    fig = new_figure(max(4.6, 1.1 * len(tasks) + 2.4), 3.9)
    ax = fig.subplots()
    for off, col, name, role in ((-w / 2, "acc_base", base, "base"),
                                 (w / 2, "acc_student", student, "student")):
        acc = nt[col].to_numpy(float)
        n = nt["n"].to_numpy(float)
        lo, hi = wilson_ci(acc * n, n)
        c = colours.get(name, model_style(name).color)
        lab = role if name == role else f"{role}: {name}"
        ax.bar(x + off, acc, w, color=c, label=lab, edgecolor="#333333", linewidth=0.6,
               alpha=0.85)
        err = np.clip(np.vstack([acc - lo, hi - acc]), 0, None)  # float noise at 0 and 1
        ax.errorbar(x + off, acc, yerr=err, fmt="none", ecolor="#333333", capsize=3, lw=1)
    for i, row in enumerate(nt.itertuples()):
        q = getattr(row, "q_bh", getattr(row, "p", math.nan))
        if q is not None and np.isfinite(q):
            ax.text(i, 1.04, f"q = {q:.2g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, tasks, rotation=20 if len(tasks) > 3 else 0,
                  ha="right" if len(tasks) > 3 else "center")
    ax.set_xlim(-0.9, len(tasks) - 0.1)
    ax.set_ylim(0, 1.15)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("accuracy (proportion correct)")
    ax.set_title(_transfer_title(nt) + "\n95% Wilson CIs; q: McNemar, BH-adjusted over tasks",
                 fontsize=8.5)
    legend_outside(ax)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def inflation_figure(inf: pd.DataFrame, fit: dict | None, fit0: dict | None = None, *,
                     student: str = "student", base: str = "base") -> Figure:
    """Return student vs base inverse efficiency per task with the fitted slopes and 95% band.

    ``inf``: ``inflation.csv`` (``task, ie_base, ie_student``); ``fit``: the summary's
    ``inflation.fit`` (slope, intercept, slope CI); ``fit0``: the fit through the origin.
    """
    d = inf.dropna(subset=["ie_base", "ie_student"])
    fig = new_figure(5.0, 4.2)
    ax = fig.subplots()
    c = model_style(student).color
    xb, ys = d["ie_base"].to_numpy(float), d["ie_student"].to_numpy(float)
    xmax = float(np.nanmax(xb)) * 1.2 if len(d) else 1.0
    ymax = float(np.nanmax(np.r_[ys, xb])) * 1.2 if len(d) else 1.0
    grid = np.linspace(0, xmax, 50)
    ax.plot(grid, grid, ls=":", color="#777777", lw=1, label="no inflation (y = x)")
    if fit0 and fit0.get("slope") is not None:
        s0 = fit0["slope"]
        ax.fill_between(grid, fit0["ci_low"] * grid, fit0["ci_high"] * grid, color=c,
                        alpha=0.18, lw=0,
                        label=f"95% CI of slope [{fit0['ci_low']:.2f}, {fit0['ci_high']:.2f}]")
        ax.plot(grid, s0 * grid, color=c, lw=1.5, label=f"y = {s0:.2f}·x (through the origin)")
    if fit and fit.get("slope") is not None:
        ax.plot(grid, fit["intercept"] + fit["slope"] * grid, color=c, lw=1, ls="--",
                label=f"OLS with intercept: slope {fit['slope']:.2f} "
                      f"[{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]")
    ax.scatter(xb, ys, color=c, marker=model_style(student).marker, s=26, zorder=3,
               label="one task")
    for row in d.itertuples():
        ax.annotate(str(row.task), (row.ie_base, row.ie_student), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    ax.set_xlabel(f"{base}: inverse efficiency (tokens per correct answer)")
    ax.set_ylabel(f"{student}: inverse efficiency\n(tokens per correct answer)")
    ax.set_title("\n".join(textwrap.wrap(f"Inflation law: {student} vs {base}, one point per "
                                         "task", 60)), fontsize=9)
    legend_outside(ax, where="below")
    ax.spines[["top", "right"]].set_visible(False)
    return fig
