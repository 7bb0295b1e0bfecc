"""Content ablation: hold trace format fixed, vary content, and see how much difficulty signal survives.

One model captured over several traces files of the same items — e.g. ``own`` (its own
traces), ``teacher`` (the teacher's traces) and ``scrambled`` (``mimicry.traces.scramble`` of those
traces: same format and length, content destroyed). Per layer, the difficulty probe
(cross-validated ridge, identical folds in every condition) is fitted in each condition; the
drop ``ρ_reference − ρ_condition`` gets a paired bootstrap CI over items (the same resampled
items for both ρ). The summary layer is the one with the highest ρ averaged over all
conditions, so that the choice favours no condition. A length-only baseline per condition
shows how much of what survives is just trace length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mimicry.errors import InputError
from mimicry.stats import bootstrap_indices, percentile_ci
from mimicry.stats.columns import _rank, spearman_cols

from .base import (
    PALETTE,
    Result,
    cache_layers,
    group_kfold,
    make_labels,
    progress,
    resolve_groups,
)
from .difficulty import _length_features
from .ridge import ridge_cv_predict


def _boot_rho(y: np.ndarray, p: np.ndarray, idx: np.ndarray) -> np.ndarray:
    ry, rp = _rank(y[idx], axis=1), _rank(p[idx], axis=1)
    ry -= ry.mean(1, keepdims=True)
    rp -= rp.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ry * rp).sum(1) / np.sqrt((ry**2).sum(1) * (rp**2).sum(1))


def paired_drop(y: np.ndarray, pred_ref: np.ndarray, pred_cond: np.ndarray, *, n_boot: int,
                seed: int) -> dict:
    """Return ρ_ref − ρ_cond with a paired bootstrap CI and two-sided bootstrap p."""
    idx = bootstrap_indices(len(y), n_boot, seed)
    d = _boot_rho(y, pred_ref, idx) - _boot_rho(y, pred_cond, idx)
    drop = float(spearman_cols(y, pred_ref)[0] - spearman_cols(y, pred_cond)[0])
    lo, hi = percentile_ci(d)
    dd = d[np.isfinite(d)]
    p = float(min(1.0, 2 * min((dd <= 0).mean(), (dd >= 0).mean()) + 1 / (len(dd) + 1)))
    return {"drop": drop, "drop_ci_low": lo, "drop_ci_high": hi, "p_drop": p}


class ContentAblation:
    """Estimator: ``fit(X_ref, X_cond, y, folds)`` -> ``drop_`` (ρ_ref − ρ_cond, cross-validated).

    Hyper-parameters: ``alphas``, ``n_folds``, ``random_state``. ``score`` returns ``drop_``.
    """

    def __init__(self, alphas: Any = "auto", n_folds: int = 5, random_state: int = 0):
        self.alphas = alphas
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, X_ref: np.ndarray, X_cond: np.ndarray, y: np.ndarray,
            folds: np.ndarray | None = None) -> ContentAblation:
        """Fit the probe in both conditions with the same folds; set ``rho_ref_``, ``rho_cond_``, ``drop_``."""
        y = np.asarray(y, float)
        if folds is None:
            folds = group_kfold(np.arange(len(y)), self.n_folds, self.random_state)
        self.pred_ref_ = ridge_cv_predict(X_ref, y, folds, alphas=self.alphas)[0]
        self.pred_cond_ = ridge_cv_predict(X_cond, y, folds, alphas=self.alphas)[0]
        self.rho_ref_ = float(spearman_cols(y, self.pred_ref_)[0])
        self.rho_cond_ = float(spearman_cols(y, self.pred_cond_)[0])
        self.drop_ = self.rho_ref_ - self.rho_cond_
        return self

    def score(self, *args: Any) -> float:
        """Return the fitted drop ρ_ref − ρ_cond."""
        return float(self.drop_)


def run(conditions: dict[str, Any], *, tasks: Any = None, target: str = "human",
        site: str = "mean_reasoning", layers: list[int] | None = None, reference: str | None = None,
        groups: Any = "auto", n_folds: int = 5, alphas: Any = "auto", n_boot: int = 1000,
        standardize: str | None = "task", exclude_truncated: bool = True, seed: int = 0,
        progress_bar: bool = True) -> Result:
    """Return a :class:`Result`: ρ per condition × layer, drops vs ``reference`` with paired CIs.

    ``conditions``: ``{name: cache}`` of ONE model over different traces of the same items
    (first entry = reference unless ``reference`` is given). ``.tables["peak"]``: every
    condition at the layer with the highest mean ρ across conditions.
    """
    if len(conditions) < 2:
        raise InputError("the ablation needs at least two conditions (e.g. own and scrambled)",
                         fix="pass --conditions own=A.h5,scrambled=B.h5")
    reference = reference or next(iter(conditions))
    if reference not in conditions:
        raise InputError(f"reference condition {reference!r} not among {list(conditions)}")
    ref = conditions[reference]
    labels = make_labels(ref, target=target, tasks=tasks, standardize=standardize,
                         exclude_truncated=exclude_truncated)
    rows_of = {}
    for name, c in conditions.items():
        r = pd.Index(c.items["item_id"].astype(str)).get_indexer(labels.item_ids)
        rows_of[name] = r
    keep = np.all([r >= 0 for r in rows_of.values()], axis=0)
    n_missing = int((~keep).sum())
    layers = cache_layers(ref) if layers is None else list(layers)
    for name, c in conditions.items():   # NaN residuals = empty segment in that condition
        X0 = np.asarray(c.resid(layers[0], site))[np.where(keep, rows_of[name], 0)]
        keep &= np.isfinite(X0).all(1)
    n_empty = int((~keep).sum()) - n_missing
    if keep.sum() < 2 * n_folds:
        raise InputError(f"only {keep.sum()} items are in every condition's cache",
                         fix="capture every condition over the same items")
    y = labels.y[keep]
    g, gdesc = resolve_groups(labels, groups, n_folds, ref.items.reset_index(drop=True))
    folds = group_kfold(g[keep], n_folds, seed)
    preds: dict[tuple[str, int], np.ndarray] = {}
    for name, c in conditions.items():
        for layer in progress(layers, progress_bar, desc=f"ablation {name}", leave=False):
            X = np.asarray(c.resid(layer, site), np.float64)[rows_of[name][keep]]
            preds[(name, layer)] = ridge_cv_predict(X, y, folds, alphas=alphas, seed=seed)[0]
    length_rho = {}
    for name, c in conditions.items():
        lab = type(labels)(labels.item_ids[keep], rows_of[name][keep], y, labels.tasks[keep],
                           labels.target, labels.measure, {})
        F = _length_features(c, lab, site)
        if F is not None:
            length_rho[name] = float(spearman_cols(y, ridge_cv_predict(F, y, folds)[0])[0])
    idx = bootstrap_indices(len(y), n_boot, seed)
    out = []
    for layer in layers:
        for name in conditions:
            p = preds[(name, layer)]
            lo, hi = percentile_ci(_boot_rho(y, p, idx))
            row = {"condition": name, "layer": layer, "site": site, "n": len(y),
                   "rho": float(spearman_cols(y, p)[0]), "rho_ci_low": lo, "rho_ci_high": hi,
                   "length_rho": length_rho.get(name, np.nan)}
            if name != reference:
                row.update(paired_drop(y, preds[(reference, layer)], p, n_boot=n_boot,
                                       seed=seed))
            out.append(row)
    table = pd.DataFrame(out)
    mean_rho = table.groupby("layer")["rho"].mean()
    if (mean_rho.index > 0).any() and mean_rho[mean_rho.index > 0].notna().any():
        # layer 0 is the embeddings: a mean of token embeddings cannot see word order, so
        # a within-trace shuffle leaves it unchanged by construction
        mean_rho = mean_rho[mean_rho.index > 0]
    peak_layer = int(mean_rho.idxmax())
    peak = table[table["layer"] == peak_layer].reset_index(drop=True)
    meta = {"probe": "ablation", "reference": reference, "conditions": list(conditions),
            "site": site, "target": labels.target, "n": len(y), "groups": gdesc,
            "exclusions": {**labels.exclusions, "missing_in_some_condition": n_missing,
                           f"empty_segment:{site}": n_empty},
            "peak_layer": peak_layer, "peak_rule": "highest mean ρ across conditions, layers ≥ 1 (not the embeddings)",
            "n_boot": n_boot, "n_folds": n_folds, "seed": seed,
            "ci": "paired bootstrap over items of out-of-fold predictions"}
    return Result("ablation", table, tables={"peak": peak}, meta=meta, plotter=plot)


def plot(result: Result):
    """Return a figure: ρ by layer per condition (CI bands) and the drops at the peak layer."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    t = result.table
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.5))
    for k, (name, d) in enumerate(t.groupby("condition", sort=False)):
        c = PALETTE[k % len(PALETTE)]
        axes[0].plot(d["layer"], d["rho"], marker="o", ms=3, color=c, label=name)
        axes[0].fill_between(d["layer"], d["rho_ci_low"], d["rho_ci_high"], color=c, alpha=0.2)
        if d["length_rho"].notna().any():
            axes[0].axhline(d["length_rho"].iloc[0], color=c, ls=":", lw=1)
    axes[0].axvline(result.meta["peak_layer"], color="0.5", lw=0.5)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_xlabel("layer (0 = embeddings); dotted: length only")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel(f"difficulty probe ρ ({result.meta['site']})")
    axes[0].legend(fontsize=7, frameon=False)
    pk = result.tables["peak"].dropna(subset=["drop"])
    x = np.arange(len(pk))
    axes[1].bar(x, pk["drop"], color=[PALETTE[(i + 1) % len(PALETTE)] for i in x])
    axes[1].errorbar(x, pk["drop"], yerr=[pk["drop"] - pk["drop_ci_low"],
                                          pk["drop_ci_high"] - pk["drop"]], fmt="none", color="k")
    axes[1].set_xticks(x, pk["condition"])
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_ylabel(f"drop in ρ vs {result.meta['reference']} (layer "
                       f"{result.meta['peak_layer']})")
    fig.tight_layout()
    return fig
