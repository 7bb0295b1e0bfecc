"""Figures of the layer-wise probes: difficulty, entropy, planning, ablation, similarity.

Where probe figure code goes: one function per probe, taking the probe's ``Result`` and
returning a :class:`matplotlib.figure.Figure` in the house style of :mod:`mimicry.plots`
(a fixed colour per model for the whole run, conditions by line style and hatch, at most two
panels per row, legends outside the data, integer layer ticks, units on every axis). A probe's
``plot`` calls its function here; :mod:`probes.figures_calls` holds reliance and the verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mimicry.plots import (
    CONDITIONS,
    condition_style,
    layer_axis,
    legend_outside,
    model_style,
    note,
    panel_grid,
)

RHO = "cross-validated Spearman ρ (unitless)"
DEPTH = "relative depth (layer / number of layers)"
TARGET_NAMES = {"human": "difficulty norm", "log_reasoning_tokens": "log reasoning tokens"}


def _target(t: str | None) -> str:
    return TARGET_NAMES.get(str(t), str(t))


def _band(ax, x, lo, hi, color, alpha=0.18):
    ax.fill_between(x, lo, hi, color=color, alpha=alpha, lw=0)


def difficulty_figure(result, *, sites: list[str] | None = None) -> Figure:
    """Return ρ by layer per site (≤ 2 panels per row): probe, permuted null, length, random-init."""
    t = result.table
    sites = sites or list(dict.fromkeys(t["site"]))
    fig, axes = panel_grid(len(sites), sharey=True, height=3.0)
    for ax, site in zip(axes, sites):
        for model, d in t[t["site"] == site].groupby("model", sort=False):
            st = model_style(model)
            ax.plot(d["layer"], d["rho"], color=st.color, marker=st.marker, ms=4,
                    label=f"{model}: difficulty probe")
            _band(ax, d["layer"], d["rho_ci_low"], d["rho_ci_high"], st.color)
            if "perm_rho_mean" in d and d["perm_rho_mean"].notna().any():
                _band(ax, d["layer"], d["perm_rho_mean"] - 2 * d["perm_rho_sd"],
                      d["perm_rho_mean"] + 2 * d["perm_rho_sd"], "0.5", 0.25)
                ax.fill_between([], [], [], color="0.5", alpha=0.25, label="permuted labels ±2 SD")
            if "length_rho" in d and d["length_rho"].notna().any():
                ax.axhline(d["length_rho"].dropna().iloc[0], color="0.2", ls=":", lw=1,
                           label="length-only baseline")
            if "random_rho" in d and d["random_rho"].notna().any():
                ax.plot(d["layer"], d["random_rho"], color=st.color, ls="--", lw=1,
                        label=f"{model}: random-init weights")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"site {site}", fontsize=9)
        layer_axis(ax.xaxis)
    for i, ax in enumerate(axes):
        if i % 2 == 0:
            ax.set_ylabel(RHO)
    models = ", ".join(dict.fromkeys(t["model"]))
    fig.suptitle(f"Difficulty probe ({models}): activations → {_target(result.meta.get('target'))}"
                 ", 95% CI", fontsize=9.5)
    legend_outside(fig)
    return fig


def entropy_figure(result, *, layer: int | None = None) -> Figure:
    """Return entropy by difficulty bin, ρ by relative depth, and one model's per-head ρ map."""
    t, bins, heads = result.table, result.tables["bins"], result.tables["heads"]
    models = list(dict.fromkeys(t["model"]))
    seg = result.meta.get("segment", "reasoning")
    fig, axes = panel_grid(3, height=3.3)
    for m in models:
        st = model_style(m)
        tm = t[t["model"] == m]
        lay = layer or int(tm.loc[tm["rho"].abs().idxmax(), "layer"])
        bm = bins[(bins["model"] == m) & (bins["layer"] == lay)]
        axes[0].plot(bm["difficulty_mid"], bm["mean"], marker=st.marker, color=st.color,
                     label=f"{m} (layer {lay})")
        _band(axes[0], bm["difficulty_mid"], bm["ci_low"], bm["ci_high"], st.color)
        axes[1].plot(tm["rel_depth"], tm["rho"], marker=st.marker, ms=4, color=st.color)
        _band(axes[1], tm["rel_depth"], tm["rho_ci_low"], tm["rho_ci_high"], st.color, 0.12)
        if tm["partial_rho"].notna().any():
            axes[1].plot(tm["rel_depth"], tm["partial_rho"], ls="--", color=st.color, lw=1)
    axes[0].set_xlabel("difficulty (bin median, SD within task)")
    axes[0].set_ylabel(f"attention entropy over the {seg} (nats)")
    axes[0].set_title("entropy by difficulty (layer with the largest |ρ|)", fontsize=8.5)
    legend_outside(axes[0], where="below", ncol=2)
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_xlabel(DEPTH)
    axes[1].set_ylabel("Spearman ρ(entropy, difficulty) (unitless)")
    axes[1].set_title("ρ by depth (dashed: partial ρ given log length)", fontsize=8.5)
    h0 = heads[heads["model"] == models[0]]
    grid = h0.pivot(index="layer", columns="head", values="rho")
    vmax = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    lay0, nh = grid.index.to_numpy(int), grid.shape[1]
    im = axes[2].imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="RdBu_r",
                        vmin=-vmax, vmax=vmax,
                        extent=(-0.5, nh - 0.5, lay0.min() - 0.5, lay0.max() + 0.5))
    sig = h0[h0["q"] < 0.05]
    axes[2].scatter(sig["head"], sig["layer"], marker="x", color="k", s=14,
                    label="q < 0.05 (BH-FDR over heads)")
    axes[2].set_xticks(range(nh))
    layer_axis(axes[2].yaxis, "layer (1 = first block)")
    axes[2].set_xlabel("head")
    axes[2].set_title(f"per-head Spearman ρ, {models[0]}", fontsize=8.5)
    fig.colorbar(im, ax=axes[2], fraction=0.05, label="ρ (unitless)")
    legend_outside(axes[2], where="below")
    skipped = result.meta.get("skipped") or {}
    if skipped:
        note(fig, "Not shown: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))
    return fig


def planning_figure(result) -> Figure:
    """Return ρ by relative depth per model, one panel per target; teacher's probe dashed."""
    t = result.table
    targets = list(dict.fromkeys(t["target"]))
    fig, axes = panel_grid(len(targets), sharey=True)
    tr = result.tables.get("transfer", pd.DataFrame())
    models = list(dict.fromkeys(t["role"]))
    for ax, target in zip(axes, targets):
        for m in models:
            st = model_style(m)
            d = t[(t["role"] == m) & (t["target"] == target)]
            if not len(d):
                continue
            ax.plot(d["rel_depth"], d["rho"], marker=st.marker, ms=4, color=st.color,
                    label=f"{m}: own probe")
            _band(ax, d["rel_depth"], d["rho_ci_low"], d["rho_ci_high"], st.color, 0.12)
            if len(tr):
                dt = tr[(tr["student"] == m) & (tr["target"] == target)]
                if len(dt):
                    ax.plot(dt["rel_depth"], dt["rho"], ls="--", color=st.color, lw=1.2,
                            label=f"{m}: the teacher's probe")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{result.meta['site']} state → {_target(target)}", fontsize=9)
        ax.set_xlabel(DEPTH)
    axes[0].set_ylabel(RHO)
    fig.suptitle("Planning: does the state before any reasoning predict the effort to come? "
                 "(95% CI)", fontsize=9.5)
    legend_outside(fig)
    return fig


def ablation_figure(result) -> Figure:
    """Return ρ by layer per trace condition (line styles) and the drops at the peak layer."""
    t = result.table
    model = result.meta.get("model") or "model"
    st = model_style(model)
    fig, axes = panel_grid(2)
    for k, (name, d) in enumerate(t.groupby("condition", sort=False)):
        sty = condition_style(k)
        axes[0].plot(d["layer"], d["rho"], color=st.color, ms=4, label=f"{name} traces",
                     **sty)
        _band(axes[0], d["layer"], d["rho_ci_low"], d["rho_ci_high"], st.color, 0.1)
    if t["length_rho"].notna().any():
        axes[0].axhline(t["length_rho"].dropna().iloc[0], color="0.3", ls=":", lw=1,
                        label="length-only baseline")
    axes[0].axvline(result.meta["peak_layer"], color="0.5", lw=0.6)
    axes[0].axhline(0, color="k", lw=0.5)
    layer_axis(axes[0].xaxis)
    axes[0].set_ylabel(f"difficulty probe ρ, site {result.meta['site']} (unitless)")
    axes[0].set_title(f"{model}: ρ by layer per trace condition (95% CI)", fontsize=8.5)
    legend_outside(axes[0], where="below", ncol=2)
    pk = result.tables["peak"].dropna(subset=["drop"]).reset_index(drop=True)
    conds = list(dict.fromkeys(t["condition"]))
    x = np.arange(len(pk))
    for i, r in pk.iterrows():
        k = conds.index(r["condition"]) if r["condition"] in conds else i + 1
        _, _, hatch, _ = CONDITIONS[k % len(CONDITIONS)]
        axes[1].bar(i, r["drop"], color=st.color, alpha=0.5, hatch=hatch, edgecolor="0.2")
    axes[1].errorbar(x, pk["drop"], yerr=[pk["drop"] - pk["drop_ci_low"],
                                          pk["drop_ci_high"] - pk["drop"]], fmt="none",
                     color="k", capsize=4)
    axes[1].set_xticks(x, [f"{c} traces" for c in pk["condition"]])
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_ylabel(f"drop in ρ vs {result.meta['reference']} traces (unitless)")
    axes[1].set_title(f"drop at the peak layer {result.meta['peak_layer']} (95% paired CI)",
                      fontsize=8.5)
    return fig


def similarity_figure(result) -> Figure:
    """Return CKA and RSA heatmaps (teacher × student layers) and the depth-matched curves."""
    names = result.meta.get("names", ["teacher", "student"])
    fig, axes = panel_grid(3, height=3.4)
    titles = (("cka", "debiased linear CKA" if result.meta.get("debiased") else "linear CKA"),
              ("rsa", "RSA (Spearman)"))
    for ax, (key, title) in zip(axes, titles):
        a = np.asarray(result.arrays[key], float)
        im = ax.imshow(a, origin="lower", aspect="auto", cmap="viridis",
                       vmin=min(0.0, float(np.nanmin(a))), vmax=1.0)
        layer_axis(ax.xaxis, f"{names[1]} layer (0 = embeddings)")
        layer_axis(ax.yaxis, f"{names[0]} layer (0 = embeddings)")
        ax.set_title(f"{title}, {names[0]} × {names[1]}", fontsize=8.5)
        fig.colorbar(im, ax=ax, fraction=0.05, label=f"{title} (unitless, ≤ 1)")
    t = result.table
    c = model_style(names[1]).color
    ax = axes[2]
    ax.plot(t["rel_depth"], t["cka"], marker="o", ms=4, color=c, label="CKA")
    _band(ax, t["rel_depth"], t["cka_ci_low"], t["cka_ci_high"], c)
    ax.plot(t["rel_depth"], t["cka_perm_mean"], color="0.5", ls=":", label="CKA, shuffled rows")
    if "procrustes" in t:
        ax.plot(t["rel_depth"], t["procrustes"], marker="s", ms=4, color=c, ls="--",
                label="Procrustes (held-out)")
        ax.plot(t["rel_depth"], t["procrustes_shuffled"], color="0.5", ls="-.", lw=1,
                label="Procrustes, shuffled rows")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel(DEPTH)
    ax.set_ylabel("similarity (unitless, ≤ 1)")
    ax.set_title(f"depth-matched layers, {names[1]} vs {names[0]} (95% CI)", fontsize=8.5)
    legend_outside(ax)
    return fig
