"""Computation probe: can the task's latent quantity be read from the reasoning as it proceeds?

From per-token residuals along the reasoning (a cache captured with ``per_token_stride`` and
``per_token_segment="reasoning"``), at fractions ``f`` of the reasoning read (0 = the first
reasoning token, 1 = its last, ``</think>``), a cross-validated ridge classifier
predicts per item a discrete target:

- ``target="answer"`` — the gold answer: an early-answer curve (any task with a gold answer);
- ``target="running_value"`` — the organism's running value after ``floor(f · k)`` of its
  ``k`` additions (the start digit at ``f = 0``): the computation's state at that point;
- a callable ``(item, f) -> label``.

Reasoning that computes shows decodability rising along it; decorative reasoning does not.
Controls: the same pipeline refitted on labels shuffled across items (``n_perm`` times:
``shuffled_mean``, ``p_perm``) and the out-of-fold majority-class rate (``chance``).
``.tables["rise"]``: per layer, accuracy at the last fraction − at the first, paired bootstrap
CI over items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from mimicry.errors import InputError
from mimicry.stats import bootstrap_indices, bootstrap_p, percentile_ci, perm_p

from .base import Result, cache_layers, model_name

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


class ComputeProbe(ClassifierMixin, BaseEstimator):
    """Ridge classifier (one-hot targets) on standardised residuals ``[n, d]``.

    ``score`` = accuracy (ClassifierMixin). ``alpha``: L2 strength on the standardised
    features (scikit-learn's ``RidgeClassifier`` on ``(X − μ) / σ``, which the tests check).
    """

    def __init__(self, alpha: float = 10.0):
        self.alpha = alpha

    def fit(self, X: np.ndarray, y: np.ndarray) -> ComputeProbe:
        """Fit on ``X [n, d]``, ``y [n]``; return self."""
        X = np.asarray(X, np.float64)
        y = np.asarray(y)
        self.mu_, self.sd_ = _scale(X)
        self.classes_ = np.unique(y)
        self.coef_, self.intercept_ = _ridge_onehot((X - self.mu_) / self.sd_,
                                                    _onehot(y, self.classes_)[None],
                                                    self.alpha)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Return the class scores ``[n, n_classes]``."""
        Z = (np.asarray(X, np.float64) - self.mu_) / self.sd_
        return Z @ self.coef_[0] + self.intercept_[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return the predicted labels ``[n]``."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


def _scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sd = X.std(0)
    return X.mean(0), np.where(sd > 0, sd, 1.0)


def _onehot(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Return ``[n, n_classes]`` in {−1, 1} (RidgeClassifier's coding)."""
    return np.where(y[:, None] == classes[None, :], 1.0, -1.0)


def _ridge_onehot(Z: np.ndarray, Y: np.ndarray, alpha: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Return (W ``[m, d, c]``, b ``[m, c]``) of ridge fits of ``Y [m, n, c]`` on ``Z [n, d]``.

    Intercept unpenalised; primal or dual solve, whichever system is smaller.
    """
    zm = Z.mean(0)
    Zc = Z - zm
    ym = Y.mean(1)
    Yc = Y - ym[:, None, :]
    n, d = Zc.shape
    if d <= n:
        A = Zc.T @ Zc + alpha * np.eye(d)
        W = np.stack([np.linalg.solve(A, Zc.T @ Yc[k]) for k in range(len(Y))])
    else:
        K = Zc @ Zc.T + alpha * np.eye(n)
        W = np.stack([Zc.T @ np.linalg.solve(K, Yc[k]) for k in range(len(Y))])
    b = ym - np.einsum("d,mdc->mc", zm, W)
    return W, b


def oof_correct(X: np.ndarray, Y: np.ndarray, folds: np.ndarray, alpha: float = 10.0
                ) -> np.ndarray:
    """Return per label set and item whether the out-of-fold prediction is right ``[m, n]``.

    ``X [n, d]``; ``Y [m, n]``: ``m`` label vectors (e.g. the real one and its shuffles),
    each decoded by its own ridge classifier, refitted per fold.
    """
    Y = np.atleast_2d(np.asarray(Y))
    out = np.zeros(Y.shape, bool)
    for f in np.unique(folds):
        te, tr = folds == f, folds != f
        mu, sd = _scale(X[tr])
        Ztr, Zte = (X[tr] - mu) / sd, (X[te] - mu) / sd
        classes = np.unique(Y[:, tr])
        oh = np.stack([_onehot(y, classes) for y in Y[:, tr]])
        W, b = _ridge_onehot(Ztr, oh, alpha)
        # a class absent from one label set's training rows can never be predicted for it
        present = np.stack([np.isin(classes, y) for y in Y[:, tr]])
        scores = np.einsum("nd,mdc->mnc", Zte, W) + b[:, None, :]
        scores = np.where(present[:, None, :], scores, -np.inf)
        out[:, te] = classes[np.argmax(scores, axis=2)] == Y[:, te]
    return out


def majority_correct(y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Return per item whether the training folds' majority class equals its label ``[n]``."""
    out = np.zeros(len(y), bool)
    for f in np.unique(folds):
        te, tr = folds == f, folds != f
        vals, cnt = np.unique(y[tr], return_counts=True)
        out[te] = y[te] == vals[np.argmax(cnt)]
    return out


def running_value(item: Any, f: float) -> str:
    """Return the organism chain's running value after ``floor(f · k)`` additions (as text)."""
    from mimicry.organism.task import parse_prompt

    p = parse_prompt(item.prompt)
    j = int(math.floor(f * p.k + 1e-9))
    return str(p.start if j == 0 else p.results()[j - 1])


def gold_answer(item: Any, f: float) -> str:
    """Return the item's gold answer (the first, when it has several) as text."""
    a = item.answer
    a = a[0] if isinstance(a, tuple) else a
    return "" if a is None else str(a)


TARGETS: dict[str, Callable[[Any, float], str]] = {"answer": gold_answer,
                                                    "running_value": running_value}


def _items_by_id(tasks: Any) -> dict[str, Any]:
    if tasks is None:
        raise InputError("the computation probe needs the items (gold answers, prompts)",
                         fix="pass tasks=SUITE (or --tasks)")
    if isinstance(tasks, (str,)):
        from mimicry.tasks.registry import load_suite

        tasks = load_suite(tasks)
    return {str(it.item_id): it for it in tasks}


def reasoning_rows(cache: Any, fractions: Sequence[float], layers: Sequence[int]
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Return (kept cache rows ``[n]``, residuals ``[n, n_fracs, n_layers_sel, d]``, exclusions).

    For fraction ``f`` the stored row nearest to position ``n_prompt + f · (n_reasoning − 1)``
    inside the reasoning segment is read. Items cut before ``</think>`` or without stored
    rows in their reasoning are excluded and counted.
    """
    items = cache.items
    keep, data = [], []
    excl = {"truncated": 0, "no_reasoning_rows": 0}
    for i in range(len(items)):
        r = items.iloc[i]
        if bool(r["truncated"]):
            excl["truncated"] += 1
            continue
        pos, res = cache.token_resid(i)
        a, n = int(r["n_prompt"]), int(r["n_reasoning"])
        inside = (pos >= a) & (pos < a + n)
        if n < 1 or not inside.any():
            excl["no_reasoning_rows"] += 1
            continue
        p_in, r_in = pos[inside], res[inside]
        sel = [int(np.argmin(np.abs(p_in - (a + f * (n - 1))))) for f in fractions]
        data.append(r_in[sel][:, layers, :])
        keep.append(i)
    if not data:
        raise InputError("no item of the cache has per-token rows in its reasoning",
                         file=getattr(cache, "path", None),
                         fix="capture with --per-token-stride N --per-token-segment reasoning")
    return np.asarray(keep), np.stack(data).astype(np.float64), excl


def run(cache: Any, *, tasks: Any = None, target: str | Callable = "running_value",
        fractions: Sequence[float] = FRACTIONS, layers: Sequence[int] | None = None,
        n_folds: int = 5, n_perm: int = 100, n_boot: int = 1000, alpha: float = 10.0,
        seed: int = 0, name: str | None = None) -> Result:
    """Return a :class:`Result`: decoding accuracy per layer × fraction with CI and controls.

    Columns: ``model, target, layer, fraction, n, accuracy, ci_low, ci_high, shuffled_mean,
    p_perm, chance``; ``.tables["rise"]``: ``model, layer, rise, ci_low, ci_high, p`` (last −
    first fraction, paired bootstrap over items; p: two-sided bootstrap sign p).
    """
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0 <= f <= 1 for f in fractions):
        raise InputError(f"fractions {fractions} must lie in [0, 1]")
    fn = TARGETS.get(target) if isinstance(target, str) else target
    if fn is None:
        raise InputError(f"unknown target {target!r}",
                         fix=f"use one of {', '.join(TARGETS)} or a callable (item, f) -> label")
    tname = target if isinstance(target, str) else getattr(target, "__name__", "custom")
    by_id = _items_by_id(tasks)
    layers = cache_layers(cache) if layers is None else [int(x) for x in layers]
    rows, X, excl = reasoning_rows(cache, fractions, layers)
    ids = cache.items["item_id"].astype(str).to_numpy()[rows]
    known = np.array([i in by_id for i in ids])
    excl["not_in_tasks"] = int((~known).sum())
    rows, X, ids = rows[known], X[known], ids[known]
    try:
        Y = np.array([[fn(by_id[i], f) for f in fractions] for i in ids], dtype=object)
    except (ValueError, KeyError, IndexError) as e:
        raise InputError(f"target {tname!r} cannot be computed for these items ({e})",
                         fix="running_value is for the organism suite; use target='answer'") from None
    n = len(ids)
    if n < 2 * n_folds:
        raise InputError(f"only {n} usable items for {n_folds} folds (excluded: {excl})")
    rng = np.random.default_rng(seed)
    folds = rng.permutation(n) % n_folds
    perms = [rng.permutation(n) for _ in range(n_perm)]
    idx = bootstrap_indices(n, n_boot, seed)
    model = name or model_name(cache)
    table, rise = decode(X, Y, fractions, layers, folds, perms, idx, alpha, model, tname)
    meta = {"probe": "compute", "model": model, "target": tname, "fractions": fractions,
            "layers": layers, "n": n, "n_folds": n_folds, "n_perm": n_perm, "n_boot": n_boot,
            "alpha": alpha, "seed": seed, "exclusions": excl,
            "decoder": "ridge classifier (one-hot, standardised features), out-of-fold over items",
            "ci": "percentile bootstrap over items (predictions fixed)"}
    return Result("compute", table, tables={"rise": rise}, meta=meta, plotter=plot)


def decode(X: np.ndarray, Y: np.ndarray, fractions: Sequence[float], layers: Sequence[int],
           folds: np.ndarray, perms: Sequence[np.ndarray], idx: np.ndarray, alpha: float,
           model: str, tname: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (accuracy table, rise table) of decoding ``Y [n, n_fracs]`` from ``X``.

    ``X [n, n_fracs, n_layers, d]``; ``folds [n]``; ``perms``: item permutations for the
    shuffled-label control; ``idx [n_boot, n]``: bootstrap draws of items. :func:`run`'s
    estimator, also run on simulated residuals by ``probes.verdict_calibration``.
    """
    n = len(Y)
    out, correct = [], {}
    for li, layer in enumerate(layers):
        for fi, f in enumerate(fractions):
            y = Y[:, fi].astype(str)
            x = X[:, fi, li, :]
            allc = oof_correct(x, np.stack([y] + [y[p] for p in perms]), folds, alpha)
            c = allc[0]
            correct[(layer, fi)] = c
            null = allc[1:].mean(1)
            lo, hi = percentile_ci(c[idx].mean(1), n)
            out.append({"model": model, "target": tname, "layer": layer, "fraction": f, "n": n,
                        "accuracy": c.mean(), "ci_low": lo, "ci_high": hi,
                        "shuffled_mean": null.mean() if len(perms) else np.nan,
                        "p_perm": perm_p(c.mean(), null, "greater") if len(perms) else np.nan,
                        "chance": majority_correct(y, folds).mean()})
    rise = []
    for layer in layers:
        d = correct[(layer, len(fractions) - 1)].astype(float) - correct[(layer, 0)]
        boot = d[idx].mean(1)
        lo, hi = percentile_ci(boot, n)
        p = bootstrap_p(boot, n) if len(idx) else np.nan  # CI-consistent: p < 0.05 iff CI excludes 0
        rise.append({"model": model, "target": tname, "layer": layer, "n": n,
                     "first": fractions[0], "last": fractions[-1], "rise": d.mean(),
                     "ci_low": lo, "ci_high": hi, "p": p})
    return pd.DataFrame(out), pd.DataFrame(rise)


def combine(results: dict[str, Result]) -> Result:
    """Return one :class:`Result` holding several models' compute results (for one figure)."""
    rs = list(results.values())
    table = pd.concat([r.table.assign(model=k) for k, r in results.items()], ignore_index=True)
    rise = pd.concat([r.tables["rise"].assign(model=k) for k, r in results.items()],
                     ignore_index=True)
    meta = {**rs[0].meta, "model": list(results), "per_model": {k: r.meta
                                                                for k, r in results.items()}}
    return Result("compute", table, tables={"rise": rise}, meta=meta, plotter=plot)


def plot(result: Result, layer: int | None = None):
    """Return a figure: decoding accuracy vs share of reasoning read, one line per model
    (:func:`probes.figures_mech.compute_figure`; ``layer``: default the last)."""
    from .figures_mech import compute_figure

    return compute_figure(result, layer)
