"""Figures of the probes that make or feed a call: reliance and the verdict.

Same house style as :mod:`probes.figures` (fixed colour per model from :mod:`mimicry.plots`).
The verdict figure is one row per evidence, each with its own unit, and marks the rows that
decided the call.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure

from mimicry.plots import legend_outside, model_style, new_figure

# evidence -> what its number is measured in
EVIDENCE_UNITS = {
    "behaviour_r": "Pearson r", "teacher_behaviour_r": "Pearson r",
    "delta_r": "Δr, Pearson r units", "accuracy_vs_base": "Δ accuracy (proportion)",
    "inflation_slope": "ratio (tokens/tokens)", "reliance": "Δ accuracy (proportion)",
    "teacher_reliance": "Δ accuracy (proportion)", "planning_rho": "Spearman ρ",
    "teacher_planning_rho": "Spearman ρ", "planning_transfer_rho": "Spearman ρ",
    "difficulty_peak_rho": "Spearman ρ", "cka_to_teacher": "CKA (0–1)",
    "entropy_slope": "nats per SD of difficulty", "ablation_drop": "Δ Spearman ρ",
    "reliance_empty": "Δ accuracy (proportion)", "reliance_filler": "Δ accuracy (proportion)",
    "teacher_reliance_empty": "Δ accuracy (proportion)",
    "teacher_reliance_filler": "Δ accuracy (proportion)",
    "compute_rise": "Δ decoding accuracy, end − start", "teacher_compute_rise":
    "Δ decoding accuracy, end − start", "steer_teacher_mapped": "slope, log(1 + tokens) per α",
    "steer_own": "slope, log(1 + tokens) per α", "patch_effect": "share of the token gap",
}
# the letter a reason of the verdict starts with -> the evidence rows it reads
REASON_ROWS = {"T": ("teacher_behaviour_r",), "A": ("behaviour_r",), "C": ("delta_r",),
               "N": ("accuracy_vs_base",), "P": ("planning_rho",),
               "W": ("accuracy_vs_base", "reliance"), "R": ("teacher_reliance",),
               "W-": ("reliance", "teacher_reliance"), "X": ("behaviour_r",),
               "M": ("compute_rise",), "M-": ("compute_rise", "teacher_compute_rise")}


def reliance_figure(result) -> Figure:
    """Return accuracy after own vs scrambled reasoning per model, and reliance with its CI."""
    t = result.table[result.table["task"] == "all"]
    if "control" in t.columns:   # the empty/filler control rows are tables of their own
        t = t[t["control"] == "scrambled"]
    t = t.reset_index(drop=True)
    x = np.arange(len(t))
    fig = new_figure(10.0, 3.6)
    axes = fig.subplots(1, 2)
    for i, r in t.iterrows():
        st = model_style(r["model"])
        axes[0].bar(i - 0.2, r["acc_own"], 0.4, color=st.color, edgecolor="0.2",
                    label="own reasoning" if i == 0 else None)
        axes[0].bar(i + 0.2, r["acc_forced"], 0.4, color="white", edgecolor=st.color,
                    hatch="///", label="its reasoning, content scrambled" if i == 0 else None)
    axes[0].set_xticks(x, t["model"], rotation=20, ha="right", fontsize=8)
    axes[0].set_ylabel("accuracy (proportion correct)")
    axes[0].set_ylim(0, 1.02)
    axes[0].set_title("accuracy after each kind of reasoning", fontsize=8.5)
    legend_outside(fig)
    for i, r in t.iterrows():
        st = model_style(r["model"])
        axes[1].errorbar(r["reliance"], i, xerr=[[r["reliance"] - r["ci_low"]],
                                                 [r["ci_high"] - r["reliance"]]],
                         fmt=st.marker, color=st.color, capsize=3, ms=6)
    axes[1].set_yticks(x, [f"{m}\n(McNemar p = {p:.2g})" for m, p in zip(t["model"], t["p"])],
                       fontsize=7.5)
    axes[1].set_ylim(len(t) - 0.5, -0.5)   # first model on top, as in the left panel
    axes[1].axvline(0, color="k", lw=0.5)
    axes[1].set_xlabel("reliance = accuracy own − scrambled (proportion)")
    axes[1].set_title("does the answer depend on the reasoning? (95% paired CI)", fontsize=8.5)
    return fig


def decided_rows(reasons: str) -> set[str]:
    """Return the evidence rows named by a verdict's ``decided_by`` text (``"A: …; W-: …"``)."""
    from .verdict_reasons import rule_letters

    return {row for letter in rule_letters(reasons)[0] for row in REASON_ROWS.get(letter, ())}


def _fmt(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{v:.3f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"


def verdict_figure(result) -> Figure:
    """Return the evidence of one teacher/student pair, one row per evidence with its unit.

    Rows that decided the call are bold and shaded; each row prints value [95% CI] and how it
    reads. Several students: one block of rows per student.
    """
    tab = result.table
    calls = result.tables.get("calls")
    studs = list(dict.fromkeys(tab["student"]))
    teacher = result.meta.get("teacher", "teacher")
    rows = [(s, r) for s in studs for _, r in tab[tab["student"] == s].iterrows()]
    fig = new_figure(8.2, 1.3 + 0.36 * len(rows) + 0.5 * len(studs))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0] if rows else []
    fig.get_layout_engine().set(h_pad=0.01, hspace=0.0)
    head = []
    for s in studs:
        c = calls[calls["student"] == s] if calls is not None and len(calls) else None
        call = c["call"].iloc[0] if c is not None and len(c) else result.meta.get(
            "calls", {}).get(s, "?")
        why = c["decided_by"].iloc[0] if c is not None and len(c) else ""
        head.append((s, call, why))
    decided = {s: (set(tab.loc[(tab["student"] == s) & tab["decided"].astype(bool), "evidence"])
                   if "decided" in tab.columns else decided_rows(w)) for s, _, w in head}
    for ax, (s, r) in zip(axes, rows):
        st = model_style(s)
        v, lo, hi = (float(r.get(k, np.nan)) for k in ("value", "ci_low", "ci_high"))
        key = decided[s]
        ev = str(r["evidence"])
        unit = EVIDENCE_UNITS.get(ev, "")
        lab = f"{ev}\n({unit})" if unit else ev
        if math.isfinite(v):
            if math.isfinite(lo) and math.isfinite(hi):
                ax.hlines(0, lo, hi, color=st.color, lw=2)
            ax.plot(v, 0, st.marker, color=st.color, ms=6)
            span = [x for x in (v, lo, hi, 0.0) if math.isfinite(x)]
            pad = max(0.05, 0.15 * (max(span) - min(span)))
            ax.set_xlim(min(span) - pad, max(span) + pad)
            ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if math.isfinite(lo) else ""
            txt = f"{_fmt(v)}{ci}  {r.get('reading', '')}"
        else:
            ax.set_xlim(-1, 1)
            txt = f"n/a  {'' if str(r.get('note')) == 'nan' else r.get('note', '')}"[:60]
        ax.axvline(0, color="0.4", lw=0.6)
        ax.set_yticks([0], [lab], fontsize=7, fontweight="bold" if ev in key else "normal")
        ax.set_ylim(-0.6, 0.6)
        ax.tick_params(axis="x", labelsize=6.5, pad=1, length=2)
        ax.text(1.02, 0.5, "\n".join(textwrap.wrap(txt, 40)), transform=ax.transAxes,
                fontsize=7, va="center",
                fontweight="bold" if ev in key else "normal")
        if ev in key:
            ax.set_facecolor("#FFF3C4")
        for sp in ("top", "right"):
            ax.spines[sp].set_visible(False)
    title = [f"Evidence for each student against teacher {teacher} (point: value, line: 95% CI;"
             " shaded, bold: rows that decided the call)"]
    for s, call, why in head:
        title.append(f"{s}: {call.upper()}")
        if why:
            title += textwrap.wrap("decided by " + why, 120)
    fig.suptitle("\n".join(title), fontsize=7.5, ha="left", x=0.01)
    return fig
