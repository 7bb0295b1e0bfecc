"""Difficulty probe: how well is item difficulty linearly decodable, layer by layer?

Per site × layer, cross-validated ridge (outer grouped K-fold, inner α selection, closed form
through one eigendecomposition per fold — see :mod:`probes.ridge`) from residuals
``[n_items, d_model]`` to human difficulty (or the trace's log reasoning tokens). Reports
Spearman ρ and out-of-sample R² of the out-of-fold predictions with bootstrap CIs over items;
per site, a max-statistic permutation p over layers (``p_maxstat``: the peak layer corrected
for being chosen), simultaneous bootstrap bounds over layers, and the gain over the best
text-only baseline (:mod:`probes.baselines`: prompt token count, bag of prompt tokens; same
folds) with simultaneous bounds; and three controls: permuted labels (selectivity = ρ − mean permuted ρ, permutation p),
a length-only baseline (log token counts of the segments the site has seen) and, optionally,
the same architecture with random weights (``random_cache``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mimicry.stats import corr_summary, spearman_cols

from .base import (
    Labels,
    Result,
    cache_layers,
    cache_sites,
    group_kfold,
    make_labels,
    model_name,
    progress,
    read_resid,
    resolve_groups,
    segment_lengths,
)
from .ridge import RidgeProbe, ridge_cv_predict

SITE_SEGMENTS = {"last_prompt": ("prompt",), "mean_prompt": ("prompt",),
                 "think_end": ("prompt", "reasoning"), "mean_reasoning": ("prompt", "reasoning"),
                 "mean_answer": ("prompt", "reasoning", "answer")}


class DifficultyProbe(RidgeProbe):
    """Ridge probe from residuals ``[n, d_model]`` to difficulty; ``score`` = Spearman ρ.

    Same hyper-parameters and learned attributes as :class:`probes.ridge.RidgeProbe`; use
    :func:`run` for the layer-wise, cross-validated analysis with controls.
    """


def cv_scores(X: np.ndarray | None, y: np.ndarray, folds: np.ndarray, *, perms: np.ndarray,
              groups: np.ndarray | None = None, alphas="auto", inner: str = "loo",
              n_boot: int = 1000, seed: int = 0, gram: np.ndarray | None = None) -> dict:
    """Return ρ/R² with CIs, permutation p and null of one feature set, plus OOF predictions.

    ``X [n, d]``, ``y [n]``, ``folds [n]``, ``perms [n_perm, n]`` index permutations of y.
    """
    if X is not None and not np.any(np.ptp(np.asarray(X), axis=0) > 0):
        # identical features for every item (e.g. layer 0 at last_prompt): nothing to decode;
        # out-of-fold means would otherwise give a spurious negative ρ
        nan = float("nan")
        return {"n": len(y), "rho": nan, "rho_ci_low": nan, "rho_ci_high": nan, "r2": nan,
                "r2_ci_low": nan, "r2_ci_high": nan, "p_perm": nan, "perm_rho_mean": nan,
                "perm_rho_sd": nan, "selectivity": nan, "alpha_median": nan,
                "_pred": np.full(len(y), y.mean()), "constant_features": True}
    Y = np.column_stack([y, *(y[p] for p in perms)]) if len(perms) else y[:, None]
    pred, chosen = ridge_cv_predict(X, Y, folds, groups=groups, alphas=alphas, inner=inner,
                                    gram=gram, seed=seed)
    null = np.array([spearman_cols(Y[:, j + 1], pred[:, j + 1])[0] for j in range(len(perms))])
    out = corr_summary(y, pred[:, 0], n_boot=n_boot, seed=seed,
                       null=null if len(perms) else None)
    out["perm_rho_mean"] = float(null.mean()) if len(null) else np.nan
    out["perm_rho_sd"] = float(null.std()) if len(null) else np.nan
    out["selectivity"] = out["rho"] - (out["perm_rho_mean"] if len(null) else 0.0)
    out["alpha_median"] = float(np.median(chosen[:, 0]))
    out["_pred"] = pred[:, 0]
    out["_null"] = null
    return out


def _length_features(cache: Any, labels: Labels, site: str) -> np.ndarray | None:
    lens = segment_lengths(cache.items.reset_index(drop=True))
    segs = [s for s in SITE_SEGMENTS.get(site, ("prompt", "reasoning", "answer"))
            if s in lens.columns]
    if not segs:
        return None
    F = np.log1p(lens[segs].to_numpy(float)[labels.rows])
    return np.nan_to_num(F)


def run(cache: Any, *, tasks: Any = None, target: str = "human", sites: list[str] | None = None,
        layers: list[int] | None = None, groups: Any = "auto", n_folds: int = 5,
        alphas: Any = "auto", inner: str = "loo", n_perm: int = 100, n_boot: int = 1000,
        random_cache: Any = None, standardize: str | None = "task",
        exclude_truncated: bool = True, seed: int = 0, name: str | None = None,
        progress_bar: bool = True) -> Result:
    """Return a :class:`Result` with one row per site × layer: ρ, R², CIs, controls.

    ``tasks``: TaskSuite / suite name / items file / Series item_id -> label (for the human
    target). ``random_cache``: a cache of the same architecture with random weights over the
    same items (the random-init control). ``groups``: ``"auto"`` (tasks if ≥ ``n_folds``
    tasks, else items), ``"task"``, ``"item"``, a column of ``cache.items`` or an array.
    """
    labels = make_labels(cache, target=target, tasks=tasks, standardize=standardize,
                         exclude_truncated=exclude_truncated)
    items = cache.items.reset_index(drop=True)
    sites = sites or cache_sites(cache)
    layers = cache_layers(cache) if layers is None else list(layers)
    rrows_all = None
    if random_cache is not None:
        from mimicry.cache_identity import require_same_architecture

        require_same_architecture(cache, random_cache, "random-init control")
        rrows_all = pd.Index(random_cache.items["item_id"].astype(str)).get_indexer(
            labels.item_ids)
        if (rrows_all < 0).any():
            from mimicry.errors import InputError

            raise InputError(f"random-init cache lacks {(rrows_all < 0).sum()} of the items",
                             fix="capture the random-init model over the same traces")
    rows, preds, per_site, site_labels, skipped = [], {}, {}, {}, {}
    for site in sites:
        # items whose segment is empty have NaN residuals at this site: excluded, counted
        keep = np.isfinite(read_resid(cache, layers[0], site, labels.rows)).all(1)
        lab = labels if keep.all() else labels.subset(keep, f"empty_segment:{site}")
        if lab.n < max(10, 2 * n_folds):
            skipped[site] = f"only {lab.n} items have {site} residuals (empty segment)"
            continue
        g, gdesc = resolve_groups(lab, groups, n_folds, items)
        folds = group_kfold(g, n_folds, seed)
        rng = np.random.default_rng(seed)
        perms = np.array([rng.permutation(lab.n) for _ in range(n_perm)],
                         dtype=int).reshape(n_perm, lab.n)
        rrows = None if rrows_all is None else rrows_all[keep]
        site_labels[site] = (lab.item_ids, lab.y)
        per_site[site] = {"n": lab.n, "exclusions": lab.exclusions, "groups": gdesc,
                          "n_groups": int(len(np.unique(g)))}
        kw = dict(groups=g, alphas=alphas, inner=inner, n_boot=n_boot, seed=seed)
        F = _length_features(cache, lab, site)
        base = cv_scores(F, lab.y, folds, perms=perms[:0], **kw) if F is not None else None
        site_rows, site_preds, site_null = [], [], []
        for layer in progress(layers, progress_bar, desc=f"difficulty {site}", leave=False):
            X = read_resid(cache, layer, site, lab.rows)
            s = cv_scores(X, lab.y, folds, perms=perms, **kw)
            preds[(site, layer)] = s.pop("_pred")
            nl = s.pop("_null", None)
            const = s.get("constant_features", False)
            site_preds.append(np.full(lab.n, np.nan) if const else preds[(site, layer)])
            site_null.append(np.full(n_perm, np.nan) if const or nl is None or not len(nl)
                             else nl)
            row = {"model": name or model_name(cache), "site": site, "layer": layer,
                   "target": lab.target, **s}
            if base is not None:
                row.update(length_rho=base["rho"], length_rho_ci_low=base["rho_ci_low"],
                           length_rho_ci_high=base["rho_ci_high"])
            if rrows is not None:
                Xr = np.asarray(random_cache.resid(layer, site), np.float64)[rrows]
                r = cv_scores(Xr, lab.y, folds, perms=perms[:0], **kw)
                row.update(random_rho=r["rho"], random_rho_ci_low=r["rho_ci_low"],
                           random_rho_ci_high=r["rho_ci_high"])
            site_rows.append(row)
        rows += _corrected(site_rows, lab, folds, g, np.array(site_preds),
                           np.array(site_null) if n_perm else None, cache, items, tasks,
                           n_boot, seed)
    if not rows:
        from mimicry.errors import InputError

        raise InputError(f"no site has enough items: {skipped}", fix="use another --site")
    table = pd.DataFrame(rows)
    first = next(iter(per_site.values()))
    meta = {"probe": "difficulty", "target": labels.target, "measure": labels.measure,
            "n": first["n"], "exclusions": first["exclusions"], "groups": first["groups"],
            "n_groups": first["n_groups"], "sites": per_site, "skipped_sites": skipped, "n_folds": n_folds, "inner": inner,
            "alphas": alphas if isinstance(alphas, str) else list(map(float, alphas)),
            "n_perm": n_perm, "n_boot": n_boot, "seed": seed, "standardize": standardize,
            "ci": "percentile bootstrap over items of the out-of-fold predictions"}
    return Result("difficulty", table, meta=meta, plotter=plot,
                  arrays={"pred": preds, "labels": site_labels})


def _corrected(rows: list[dict], lab: Labels, folds, groups, preds, null, cache, items, tasks,
               n_boot: int, seed: int) -> list[dict]:
    """Return ``rows`` with max-stat p over layers and the gain over text-only baselines."""
    from .baselines import layer_evidence, prompt_texts, text_baselines

    lens = segment_lengths(items)
    pt = lens["prompt"].to_numpy(float)[lab.rows] if "prompt" in lens.columns else None
    pt = pt if pt is not None and np.isfinite(pt).all() else None
    bl = text_baselines(lab.y, folds, prompt_tokens=pt, texts=prompt_texts(lab.item_ids, tasks),
                        groups=groups, seed=seed)
    ev = layer_evidence(lab.y, preds, null, bl, n_boot=n_boot, seed=seed)
    cols = ["p_maxstat", "p_min", "rho_sim_low", "rho_sim_high", "baseline", "baseline_rho", "gain",
            "gain_sim_low", "gain_sim_high", "n_layers_tested"]
    return [{**r, **ev.iloc[k][cols].to_dict()} for k, r in enumerate(rows)]


def peak(table: pd.DataFrame, site: str | None = None) -> pd.Series:
    """Return the row with the highest ρ (optionally within one site)."""
    t = table if site is None else table[table["site"] == site]
    return t.loc[t["rho"].idxmax()]


def plot(result: Result, *, sites: list[str] | None = None):
    """Return a figure: ρ by layer per site with CI bands, permuted null, length and random-init."""
    from .figures import difficulty_figure

    return difficulty_figure(result, sites=sites)
