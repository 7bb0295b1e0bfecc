"""Attention entropy against difficulty, per layer and head, for one or several models.

From ``cache.entropy(segment, variant) [n_items, n_layers, n_heads]`` and item difficulty:
- per layer (head mean): Spearman ρ with bootstrap CI and permutation p; the partial ρ given
  log segment length (ranks of log length regressed out of both); and the slope of entropy
  on difficulty from ``entropy ~ 1 + difficulty + log length`` (nats per SD of difficulty)
  with a bootstrap CI;
- per head: Spearman ρ and partial ρ with analytic p, Benjamini–Hochberg q over all heads;
- curves: mean entropy in difficulty quantile bins with bootstrap bands.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from mimicry.errors import InputError
from mimicry.stats import (
    bh_fdr,
    bootstrap_indices,
    correlate,
    partial_spearman,
    percentile_ci,
    spearman_cols,
)

from .base import (
    ProbeEstimator,
    Result,
    make_labels,
    model_name,
    segment_lengths,
)


class EntropyProbe(ProbeEstimator):
    """Estimator: entropy ``y [n]`` ~ 1 + difficulty + log length (OLS); ``score`` = (partial) ρ.

    ``X [n, 1]`` or ``[n, 2]``: column 0 difficulty, column 1 (optional) the log segment length
    (a 1-D ``X`` is difficulty alone); ``y [n]``: attention entropy (e.g. one layer's head mean).
    Hyper-parameter: ``covariate`` (use column 1 when ``X`` has it). Learned: ``coef_``
    (intercept, difficulty slope[, length slope]), ``slope_``, ``n_features_in_``.

    ``score(X, y)`` is the Spearman ρ of entropy with difficulty on ``(X, y)``, partial given
    log length when the covariate is used — the ``partial_rho`` (else ``rho``) of :func:`run`'s
    layer rows, through the same function. A rank correlation has nothing to learn, so the
    score does not use ``coef_``: under ``cross_val_score`` it asks whether the relation holds
    on held-out items; the learned effect size is ``slope_``.
    """

    def __init__(self, covariate: bool = True):
        self.covariate = covariate

    def _columns(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (difficulty [n], log length [n] or None) from ``X``."""
        X = self._xy(X)[0]
        if X.shape[1] > 2:
            raise InputError(f"X has {X.shape[1]} columns; expected difficulty and optionally "
                             "log length", fix="pass X = [difficulty] or [difficulty, log_len]")
        use = self.covariate and X.shape[1] == 2
        return X[:, 0], (X[:, 1] if use else None)

    def _design(self, X) -> np.ndarray:
        d, ll = self._columns(X)
        return np.column_stack([np.ones(len(d)), d] + ([ll] if ll is not None else []))

    def fit(self, X: np.ndarray, y: np.ndarray) -> EntropyProbe:
        """Fit OLS of entropy ``y [n]`` on difficulty (+ log length) ``X [n, 1|2]``; return self."""
        X, y = self._xy(X, y)
        self.coef_ = np.linalg.lstsq(self._design(X), y, rcond=None)[0]
        self.slope_ = float(self.coef_[1])
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return fitted entropy ``[n]`` for ``X [n, 1|2]``."""
        self._check_fitted()
        return self._design(X) @ self.coef_

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Return the Spearman ρ of entropy ``y`` with difficulty (partial given log length)."""
        self._check_fitted()
        X, y = self._xy(X, y)
        d, ll = self._columns(X)
        return _rho(d, y, ll)


def _rho(d: np.ndarray, e: np.ndarray, ll: np.ndarray | None) -> float:
    """Return Spearman ρ(entropy, difficulty), partial given ``ll`` when it is not None."""
    if ll is not None:
        return partial_spearman(e, d, ll)[0]
    return float(spearman_cols(np.asarray(d, float), np.asarray(e, float))[0])


def _boot_slopes(d: np.ndarray, e: np.ndarray, ll: np.ndarray | None, idx: np.ndarray):
    """Return the difficulty slope of the OLS fit on each bootstrap resample ``[B]``."""
    cols = [np.ones_like(d), d] + ([ll] if ll is not None else [])
    D = np.stack(cols, 1)[idx]                                  # [B, n, p]
    y = e[idx]
    XtX = np.einsum("bnp,bnq->bpq", D, D)
    Xty = np.einsum("bnp,bn->bp", D, y)
    ok = np.linalg.cond(XtX) < 1e12
    out = np.full(len(idx), np.nan)
    out[ok] = np.linalg.solve(XtX[ok], Xty[ok][..., None])[:, 1, 0]
    return out


def _one_model(name: str, cache: Any, labels, segment: str, variant: str, n_bins: int,
               n_boot: int, n_perm: int, seed: int, covariate: bool):
    E = np.asarray(cache.entropy(segment, variant), np.float64)[labels.rows]   # [n, L, H]
    ok = np.isfinite(E).all(axis=(1, 2))       # NaN = the segment is empty for that item
    items = cache.items.reset_index(drop=True)
    if segment == "reasoning" and "reasoning_tokens" in items.columns:
        # a model that answers directly has only the think markers in its "reasoning"
        ok &= pd.to_numeric(items["reasoning_tokens"], errors="coerce").to_numpy(float)[
            labels.rows] > 0
    if not ok.all():
        labels = labels.subset(ok, f"empty_segment:{segment}")
        E = E[ok]
    if labels.n < 10:
        raise InputError(f"only {labels.n} items have {segment} entropy",
                         fix="use another --segment or capture with entropy on")
    d = labels.y
    lens = segment_lengths(cache.items.reset_index(drop=True))
    ll = None
    if covariate and segment in lens.columns:
        ll = np.log1p(lens[segment].to_numpy(float)[labels.rows])
        if not np.all(np.isfinite(ll)) or ll.std() == 0:
            ll = None
        elif abs(np.corrcoef(labels.y, ll)[0, 1]) > 0.95:
            # length is (nearly) a function of difficulty: the length-adjusted slope is not
            # identifiable; report the unadjusted one and say so
            ll = None
    n, L, H = E.shape
    idx = bootstrap_indices(n, n_boot, seed)
    edges = np.quantile(d, np.linspace(0, 1, n_bins + 1))
    b = np.clip(np.searchsorted(edges, d, side="right") - 1, 0, n_bins - 1)
    layer_rows, bin_rows, head_rows = [], [], []
    for layer in range(L):
        e = E[:, layer, :].mean(1)
        c = correlate(e, d, method="spearman", n_boot=n_boot, n_perm=n_perm, seed=seed)
        pr, pp = partial_spearman(e, d, ll) if ll is not None else (np.nan, np.nan)
        probe = EntropyProbe(covariate=ll is not None).fit(
            d if ll is None else np.column_stack([d, ll]), e)
        lo, hi = percentile_ci(_boot_slopes(d, e, ll, idx), n)
        layer_rows.append({"model": name, "layer": layer + 1, "rel_depth": (layer + 1) / L,
                           "n": n, "rho": c.r, "rho_ci_low": c.ci_low, "rho_ci_high": c.ci_high,
                           "p_perm": c.p, "partial_rho": pr, "partial_p": pp,
                           "slope": probe.slope_, "slope_ci_low": lo, "slope_ci_high": hi,
                           "mean_entropy": float(e.mean())})
        rng = np.random.default_rng(seed + layer)
        for k in range(n_bins):
            m = np.flatnonzero(b == k)
            if len(m) == 0:
                continue
            boots = e[m][rng.integers(0, len(m), size=(n_boot, len(m)))].mean(1)
            blo, bhi = percentile_ci(boots, len(m))
            bin_rows.append({"model": name, "layer": layer + 1, "bin": k,
                             "difficulty_mid": float(np.median(d[m])), "n": len(m),
                             "mean": float(e[m].mean()), "ci_low": blo, "ci_high": bhi})
        for h in range(H):
            eh = E[:, layer, h]
            rho, p = sps.spearmanr(eh, d) if eh.std() > 0 else (np.nan, np.nan)
            hp = partial_spearman(eh, d, ll) if ll is not None and eh.std() > 0 \
                else (np.nan, np.nan)
            head_rows.append({"model": name, "layer": layer + 1, "head": h, "rho": float(rho),
                              "p": float(p), "partial_rho": hp[0], "partial_p": hp[1]})
    heads = pd.DataFrame(head_rows)
    heads["q"] = bh_fdr(heads["p"].to_numpy())[0]
    heads["partial_q"] = bh_fdr(heads["partial_p"].to_numpy())[0]
    lt = pd.DataFrame(layer_rows)
    sig = heads.groupby("layer")["partial_q" if ll is not None else "q"].apply(
        lambda q: int((q < 0.05).sum()))
    lt["n_heads_q05"] = lt["layer"].map(sig).fillna(0).astype(int)
    return lt, pd.DataFrame(bin_rows), heads, ll is not None, labels


def run(caches: Any, *, tasks: Any = None, target: str = "human", segment: str = "reasoning",
        variant: str = "raw", n_bins: int = 5, n_boot: int = 1000, n_perm: int = 1000,
        covariate: bool = True, standardize: str | None = "task",
        exclude_truncated: bool = True, seed: int = 0) -> Result:
    """Return a :class:`Result`: per model × layer ρ/partial ρ/slope rows; heads and bins tables.

    ``caches``: one cache or ``{name: cache}`` (several models on one figure). ``segment``:
    ``prompt``/``reasoning``/``answer``; ``variant``: ``raw``, ``norm`` (÷ log visible keys)
    or ``nosink`` (position-0 sink removed).
    """
    if not isinstance(caches, dict):
        caches = {model_name(caches): caches}
    tabs, bins, heads, meta_models, skipped = [], [], [], {}, {}
    for name, cache in caches.items():
        labels = make_labels(cache, target=target, tasks=tasks, standardize=standardize,
                             exclude_truncated=exclude_truncated)
        try:
            lt, bt, ht, cov, labels = _one_model(name, cache, labels, segment, variant,
                                                 n_bins, n_boot, n_perm, seed, covariate)
        except InputError as e:
            skipped[name] = e.problem
            continue
        tabs.append(lt)
        bins.append(bt)
        heads.append(ht)
        meta_models[name] = {"n": labels.n, "exclusions": labels.exclusions,
                             "length_covariate": cov}
        lt["length_adjusted"] = cov
    if not tabs:
        raise InputError(f"no model has usable {segment} entropy: {skipped}")
    meta = {"probe": "entropy", "skipped": skipped, "segment": segment, "variant": variant, "target": target,
            "n_bins": n_bins, "n_boot": n_boot, "n_perm": n_perm, "seed": seed,
            "models": meta_models, "fdr": "Benjamini–Hochberg over all heads of a model",
            "slope_units": "entropy (nats) per SD of within-task standardised difficulty"}
    return Result("entropy", pd.concat(tabs, ignore_index=True),
                  tables={"heads": pd.concat(heads, ignore_index=True),
                          "bins": pd.concat(bins, ignore_index=True)},
                  meta=meta, plotter=plot)


def plot(result: Result, *, layer: int | None = None):
    """Return a figure: entropy by difficulty bin (bands), ρ by relative depth, per-head ρ map."""
    from .figures import entropy_figure

    return entropy_figure(result, layer=layer)
