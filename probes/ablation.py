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
from mimicry.stats import bootstrap_indices, bootstrap_p, percentile_ci, spearman_cols
from mimicry.stats.correlation import _rank

from .base import (
    ProbeEstimator,
    Result,
    cache_layers,
    group_kfold,
    make_labels,
    progress,
    resolve_groups,
)
from .base import model_name as _model_name
from .difficulty import _length_features
from .ridge import RidgeProbe, ridge_cv_predict


def _boot_rho(y: np.ndarray, p: np.ndarray, idx: np.ndarray) -> np.ndarray:
    ry, rp = _rank(y[idx], axis=1), _rank(p[idx], axis=1)
    ry -= ry.mean(1, keepdims=True)
    rp -= rp.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ry * rp).sum(1) / np.sqrt((ry**2).sum(1) * (rp**2).sum(1))


def _drop(y: np.ndarray, pred_ref: np.ndarray, pred_cond: np.ndarray) -> float:
    """Return ρ(y, pred_ref) − ρ(y, pred_cond) (Spearman): the drop, for run() and the estimator."""
    return float(spearman_cols(y, pred_ref)[0] - spearman_cols(y, pred_cond)[0])


def paired_drop(y: np.ndarray, pred_ref: np.ndarray, pred_cond: np.ndarray, *, n_boot: int,
                seed: int) -> dict:
    """Return ρ_ref − ρ_cond with a paired bootstrap CI and two-sided bootstrap p."""
    idx = bootstrap_indices(len(y), n_boot, seed)
    d = _boot_rho(y, pred_ref, idx) - _boot_rho(y, pred_cond, idx)
    drop = _drop(y, pred_ref, pred_cond)
    lo, hi = percentile_ci(d, len(y))
    p = bootstrap_p(d, len(y))  # the p of the same interval rule: p < 0.05 iff the CI excludes 0
    return {"drop": drop, "drop_ci_low": lo, "drop_ci_high": hi, "p_drop": p}


class ContentAblation(ProbeEstimator):
    """Estimator: one ridge probe per condition; ``score`` = ρ_reference − ρ_condition on (X, y).

    ``X = np.hstack([X_ref, X_cond])`` ``[n, d_ref + d_cond]``: the same items' residuals in
    the reference condition (e.g. the model's own traces) and in the ablated one (e.g. the
    scrambled traces); ``y [n]``: difficulty. Hyper-parameters: ``alphas``, ``inner``,
    ``inner_folds``, ``random_state`` (those of :class:`probes.ridge.RidgeProbe`) and
    ``n_ref_features`` (how many leading columns of ``X`` are the reference; None: half).
    Learned: ``ref_``, ``cond_`` (the fitted ridge probes), ``n_features_in_``.

    ``predict(X) [n, 2]``: the two probes' predictions; ``score(X, y)``: the drop ``ρ(y,
    pred_ref) − ρ(y, pred_cond)`` on ``(X, y)``. :func:`run` computes the same drop, through
    the same functions, on out-of-fold predictions: with its folds,
    ``cross_val_predict(ContentAblation(alphas), X, y, cv=PredefinedSplit(folds))`` gives
    its predictions of the two conditions.
    """

    def __init__(self, alphas: Any = "auto", inner: str = "loo", inner_folds: int = 5,
                 n_ref_features: int | None = None, random_state: int = 0):
        self.alphas = alphas
        self.inner = inner
        self.inner_folds = inner_folds
        self.n_ref_features = n_ref_features
        self.random_state = random_state

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (X_ref, X_cond) from the stacked ``X``."""
        X = self._xy(X)[0]
        k = X.shape[1] // 2 if self.n_ref_features is None else int(self.n_ref_features)
        if not 0 < k < X.shape[1] or (self.n_ref_features is None and X.shape[1] % 2):
            raise InputError(f"cannot split X's {X.shape[1]} columns into reference and "
                             f"condition (n_ref_features={self.n_ref_features})",
                             fix="pass X = np.hstack([X_ref, X_cond]) and, when the two "
                                 "differ in width, n_ref_features=X_ref.shape[1]")
        return X[:, :k], X[:, k:]

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
            ) -> ContentAblation:
        """Fit a ridge probe in each condition on ``X [n, d_ref + d_cond]``, ``y [n]``; return self."""
        X, y = self._xy(X, y)
        Xr, Xc = self._split(X)
        kw = dict(alphas=self.alphas, inner=self.inner, inner_folds=self.inner_folds,
                  random_state=self.random_state)
        self.ref_ = RidgeProbe(**kw).fit(Xr, y, groups)
        self.cond_ = RidgeProbe(**kw).fit(Xc, y, groups)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return ``[n, 2]``: the reference probe's and the condition probe's predictions."""
        self._check_fitted()
        Xr, Xc = self._split(X)
        return np.column_stack([self.ref_.predict(Xr), self.cond_.predict(Xc)])

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Return the drop ρ(y, pred_ref) − ρ(y, pred_cond) on ``(X, y)`` (Spearman)."""
        X, y = self._xy(X, y)
        P = self.predict(X)
        return _drop(y, P[:, 0], P[:, 1])


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
    from mimicry.cache_identity import require_same_model

    require_same_model(conditions, "ablation")
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
            lo, hi = percentile_ci(_boot_rho(y, p, idx), len(y))
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
    meta = {"probe": "ablation", "model": _model_name(conditions[reference], "model"),
            "reference": reference, "conditions": list(conditions),
            "site": site, "target": labels.target, "n": len(y), "groups": gdesc,
            "exclusions": {**labels.exclusions, "missing_in_some_condition": n_missing,
                           f"empty_segment:{site}": n_empty},
            "peak_layer": peak_layer, "peak_rule": "highest mean ρ across conditions, layers ≥ 1 (not the embeddings)",
            "n_boot": n_boot, "n_folds": n_folds, "seed": seed,
            "ci": "paired bootstrap over items of out-of-fold predictions"}
    return Result("ablation", table, tables={"peak": peak}, meta=meta, plotter=plot)


def plot(result: Result):
    """Return a figure: ρ by layer per condition (CI bands) and the drops at the peak layer."""
    from .figures import ablation_figure

    return ablation_figure(result)
