"""Figures and the shared figure style (each function returns a Figure; never ``plt.show()``).

Style: the Okabe–Ito colour-blind-safe palette (``PALETTE``, ``color(i)``), labelled axes
with units, 95% CI bands/bars. ``save_figure(fig, stem)`` writes ``stem.png`` and ``stem.pdf``
atomically. Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot
state, no GUI backend needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from scipy import stats as sps

from .io import atomic_path

# Okabe & Ito (2008): orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple,
# black.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
           "#000000"]
TASK_MARKERS = ["o", "s", "^", "v", "P", "X", "*", "h"]
MEASURE_LABEL = {"log_rt_ms": "human RT (ms, log scale)",
                 "error_rate": "human error rate (proportion)"}


def color(i: int) -> str:
    """Return the i-th Okabe–Ito colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def new_figure(width: float = 6.4, height: float = 4.8) -> Figure:
    """Return an empty Figure with the house style (constrained layout, 150 dpi)."""
    return Figure(figsize=(width, height), dpi=150, layout="constrained")


def save_figure(fig: Figure, path_stem: str | Path, *, png_dpi: float | None = None,
                tight: bool = False) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (atomically); return both paths.

    ``png_dpi`` overrides the figure's dpi for the PNG; ``tight`` crops to the drawn area.
    """
    stem = Path(path_stem)
    out = []
    for ext in ("png", "pdf"):
        kw: dict = {"bbox_inches": "tight"} if tight else {}
        if ext == "png" and png_dpi is not None:
            kw["dpi"] = png_dpi
        path = stem.with_name(stem.name + "." + ext)
        with atomic_path(path, suffix="." + ext) as tmp:
            fig.savefig(tmp, format=ext, **kw)
        out.append(path)
    return out


def fit_band(x, y, grid, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (fit, low, high) ``[len(grid)]``: OLS line and the t CI of the mean prediction."""
    x, y, grid = (np.asarray(a, dtype=float) for a in (x, y, grid))
    n = x.size
    xm = x.mean()
    sxx = float(((x - xm) ** 2).sum())
    b = float(((x - xm) * (y - y.mean())).sum()) / sxx
    a = float(y.mean() - b * xm)
    s = math.sqrt(float(((y - a - b * x) ** 2).sum()) / (n - 2))
    fit = a + b * grid
    half = sps.t.ppf(0.5 + level / 2, n - 2) * s * np.sqrt(1 / n + (grid - xm) ** 2 / sxx)
    return fit, fit - half, fit + half


def _log_axis(axis, set_scale) -> None:
    """Log scale with plain-number major labels and unlabelled minor ticks (fast, no overlap)."""
    set_scale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def scatter_figure(points: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """Return log cost vs the human measure, one panel per task, one colour per model.

    ``points``: ``model, task, log_cost, y, measure`` (y = log RT or error rate); ``table``:
    the alignment table (r, CI and n go in the legend). Lines: OLS fit with 95% CI band.
    """
    tasks = list(dict.fromkeys(points.task)) or ["(no data)"]
    models = list(dict.fromkeys(table.model))
    ncol = min(3, len(tasks))
    nrow = math.ceil(len(tasks) / ncol)
    fig = new_figure(4.0 * ncol, 3.4 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, task in zip(axes, tasks):
        sub = points[points.task == task]
        measure = sub.measure.iloc[0] if len(sub) else "log_rt_ms"
        for i, m in enumerate(models):
            p = sub[sub.model == m]
            if p.empty:
                continue
            x = np.exp(p.log_cost.to_numpy())
            yv = p.y.to_numpy()
            y = np.exp(yv) if measure == "log_rt_ms" else yv
            row = table[(table.model == m) & (table.task == task)]
            lab = m
            if len(row) and np.isfinite(row.r.iloc[0]):
                rr = row.iloc[0]
                lab = f"{m}: r={rr.r:.2f} [{rr.ci_low:.2f}, {rr.ci_high:.2f}], n={int(rr.n)}"
            ax.scatter(x, y, s=10, alpha=0.45, color=color(i), edgecolor="none", label=lab)
            if len(p) >= 3 and np.ptp(p.log_cost) > 0:
                g = np.linspace(p.log_cost.min(), p.log_cost.max(), 50)
                f, lo, hi = fit_band(p.log_cost, yv, g)
                tr = np.exp if measure == "log_rt_ms" else (lambda v: v)
                ax.plot(np.exp(g), tr(f), color=color(i), lw=1.5)
                ax.fill_between(np.exp(g), tr(lo), tr(hi), color=color(i), alpha=0.2, lw=0)
        _log_axis(ax.xaxis, ax.set_xscale)
        if measure == "log_rt_ms":
            _log_axis(ax.yaxis, ax.set_yscale)
        ax.set_title(task)
        ax.set_xlabel("reasoning tokens (count, log scale)")
        ax.set_ylabel(MEASURE_LABEL.get(measure, measure))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="best", frameon=False)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    return fig


def forest_figure(table: pd.DataFrame, per_model: dict[str, Any]) -> Figure:
    """Return the forest plot: r̄ per model (Fisher z, 95% CI) with each task's r and CI."""
    models = list(dict.fromkeys(table.model))
    tasks = list(dict.fromkeys(table.task))
    fig = new_figure(6.4, 1.2 + 0.55 * max(1, len(models)))
    ax = fig.subplots()
    seen: set[str] = set()
    for i, m in enumerate(models):
        yb = len(models) - 1 - i
        t = table[(table.model == m) & table.r.notna()]
        for j, task in enumerate(tasks):
            row = t[t.task == task]
            if row.empty:
                continue
            off = (j - (len(tasks) - 1) / 2) * 0.35 / max(1, len(tasks))
            rr = row.iloc[0]
            ax.errorbar(rr.r, yb + off, xerr=[[rr.r - rr.ci_low], [rr.ci_high - rr.r]],
                        fmt=TASK_MARKERS[j % len(TASK_MARKERS)], ms=4, color="0.55", lw=0.8,
                        alpha=0.8, label=task if i == 0 or task not in seen else None)
            seen.add(task)
        s = per_model.get(m, {})
        rb = s.get("r_bar")
        if rb is not None and np.isfinite(rb):
            lo, hi = s.get("ci_low"), s.get("ci_high")
            if lo is not None and np.isfinite(lo):
                ax.errorbar(rb, yb, xerr=[[rb - lo], [hi - rb]], fmt="D", ms=7, capsize=4,
                            color=color(i), lw=2)
            else:
                ax.plot(rb, yb, "D", ms=7, color=color(i))
    ax.axvline(0, color="0.3", lw=0.8, ls="--")
    ax.set_yticks(range(len(models)), models[::-1])
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Pearson r, log cost vs human measure (unitless; ◆ r̄ by Fisher z, 95% CI; "
                  "grey: tasks)", fontsize=8)
    ax.set_ylabel("model")
    if seen:
        ax.legend(title="task (grey)", fontsize=6, title_fontsize=7, frameon=False,
                  loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def delta_r_figure(delta: pd.DataFrame, roles: dict[str, str]) -> Figure:
    """Return Δr = r_student − r_teacher per task with paired-bootstrap 95% CIs."""
    fig = new_figure(6.4, 1.2 + 0.45 * max(1, len(delta)))
    ax = fig.subplots()
    yy = np.arange(len(delta))[::-1]
    ax.errorbar(delta.delta_r, yy, xerr=[delta.delta_r - delta.ci_low,
                                         delta.ci_high - delta.delta_r],
                fmt="o", capsize=3, color=color(5))
    ax.axvline(0, color="0.3", lw=0.8, ls="--")
    ax.set_yticks(yy, delta.task)
    ax.set_xlabel(f"Δr = r({roles.get('student', 'student')}) − r({roles.get('teacher', 'teacher')})"
                  " (unitless, 95% paired bootstrap CI)", fontsize=8)
    ax.set_ylabel("task")
    return fig
