"""Report figures the alignment step does not draw: negative transfer and the inflation law.

Each function takes the table ``align`` saved (``negative_transfer.csv``, ``inflation.csv``)
and returns a ``matplotlib.figure.Figure`` (never shown). Okabe–Ito colours, labelled axes
with units, 95% intervals drawn.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mimicry.stats import wilson_ci  # noqa: F401  (re-exported for the report)

ROLE_COLOURS = {"teacher": "#0072B2", "student": "#D55E00", "base": "#009E73",
                "control": "#CC79A7"}




def negative_transfer_figure(nt: pd.DataFrame, student: str = "student", base: str = "base",
                             colours: dict[str, str] | None = None):
    """Return grouped bars of base vs student accuracy per task with Wilson 95% CIs.

    ``nt``: ``negative_transfer.csv`` (``task, n, acc_base, acc_student, p, q_bh``);
    ``colours``: model name → colour (to match the alignment figures).
    """
    colours = colours or {}
    import matplotlib.pyplot as plt

    tasks = nt["task"].astype(str).tolist()
    x = np.arange(len(tasks))
    w = 0.38
    fig, ax = plt.subplots(figsize=(max(4.6, 1.1 * len(tasks) + 2), 3.8))
    def who(role: str, name: str) -> str:
        return role if name == role else f"{role} ({name})"

    for off, col, lab, colour in ((-w / 2, "acc_base", who("base", base),
                                   colours.get(base, ROLE_COLOURS["base"])),
                                  (w / 2, "acc_student", who("student", student),
                                   colours.get(student, ROLE_COLOURS["student"]))):
        acc = nt[col].to_numpy(float)
        lo, hi = wilson_ci(acc * nt["n"].to_numpy(float), nt["n"].to_numpy(float))
        ax.bar(x + off, acc, w, color=colour, label=lab, edgecolor="#333333", linewidth=0.6)
        err = np.clip(np.vstack([acc - lo, hi - acc]), 0, None)  # float noise at 0 and 1
        ax.errorbar(x + off, acc, yerr=err, fmt="none", ecolor="#333333",
                    capsize=3, lw=1)
    for i, row in enumerate(nt.itertuples()):
        q = getattr(row, "q_bh", getattr(row, "p", math.nan))
        if q is not None and np.isfinite(q):
            ax.text(i, 1.06, f"q={q:.2g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, tasks, rotation=20 if len(tasks) > 3 else 0, ha="right"
                  if len(tasks) > 3 else "center")
    ax.set_xlim(-0.9, len(tasks) - 0.1)  # keeps bars narrow when there are few tasks
    ax.set_ylim(0, 1.18)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("accuracy (proportion correct)")
    ax.set_title("Negative transfer: student vs its base\n(95% Wilson CIs; q: McNemar, BH-adjusted)",
                 fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=2)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def inflation_figure(inf: pd.DataFrame, fit: dict | None, fit0: dict | None = None):
    """Return student vs base inverse efficiency per task with the OLS line and its 95% band.

    ``inf``: ``inflation.csv`` (``task, ie_base, ie_student``); ``fit``: the summary's
    ``inflation.fit`` (slope, intercept, slope CI); ``fit0``: the fit through the origin.
    """
    import matplotlib.pyplot as plt

    d = inf.dropna(subset=["ie_base", "ie_student"])
    fig, ax = plt.subplots(figsize=(5.0, 4.6))
    xb, ys = d["ie_base"].to_numpy(float), d["ie_student"].to_numpy(float)
    xmax = float(np.nanmax(xb)) * 1.2 if len(d) else 1.0
    ymax = float(np.nanmax(np.r_[ys, xb])) * 1.2 if len(d) else 1.0
    grid = np.linspace(0, xmax, 50)
    ax.plot(grid, grid, ls=":", color="#777777", lw=1, label="no inflation (y = x)")
    if fit0 and fit0.get("slope") is not None:
        s0 = fit0["slope"]
        ax.fill_between(grid, fit0["ci_low"] * grid, fit0["ci_high"] * grid,
                        color=ROLE_COLOURS["student"], alpha=0.18, lw=0,
                        label=f"95% CI of slope [{fit0['ci_low']:.2f}, {fit0['ci_high']:.2f}]")
        ax.plot(grid, s0 * grid, color=ROLE_COLOURS["student"], lw=1.5,
                label=f"y = {s0:.2f}·x (through the origin)")
    if fit and fit.get("slope") is not None:
        ax.plot(grid, fit["intercept"] + fit["slope"] * grid, color="#0072B2", lw=1, ls="--",
                label=f"OLS with intercept: slope {fit['slope']:.2f} "
                      f"[{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]")
    ax.scatter(xb, ys, color="#000000", s=22, zorder=3)
    for row in d.itertuples():
        ax.annotate(str(row.task), (row.ie_base, row.ie_student), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    ax.set_xlabel("base inverse efficiency (tokens per correct answer)")
    ax.set_ylabel("student inverse efficiency\n(tokens per correct answer)")
    ax.set_title("Inflation law: student vs base, one point per task", fontsize=9)
    ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=1)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
