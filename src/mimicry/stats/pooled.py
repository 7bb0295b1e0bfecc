"""Tests pooled over items across tasks (strata): the multi-task path of Δr, accuracy, reliance.

With k tasks a test *across tasks* (Wilcoxon on k per-task values) cannot reach p < 0.05 for
k ≤ 5 (its smallest two-sided p is 2/2^k). Everything here pools over *items* instead and keeps
the task structure by resampling items within their task (a stratified bootstrap,
:func:`mimicry.stats.stratified_indices`; CIs and p by :func:`mimicry.stats.percentile_ci` and
:func:`mimicry.stats.bootstrap_p` with n = all items):

- :func:`pooled_corr` / :func:`pooled_corr_diff` — the Fisher-z mean correlation over strata
  ``r̄ = tanh(mean_k atanh r_k)`` and the difference ``r̄_b − r̄_a`` of two models on the same
  items (paired: one resample serves both), with stratified-bootstrap CI and p;
- :func:`pooled_paired_binary` — accuracy difference of paired booleans over every item:
  exact McNemar on the pooled discordant pairs (for matched pairs the Cochran–Mantel–Haenszel
  statistic with tasks as strata reduces to it; conditional on the discordant count the test
  is exact) and a stratified paired bootstrap CI of the mean difference;
- :func:`items_needed` — the item count at which a CI of this width would no longer contain
  both 0 and a stated effect (an "underpowered" row's estimate of what it would take).

Import from :mod:`mimicry.stats` (``from mimicry.stats import pooled_corr_diff``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .correlation import _row_pearson
from .resampling import _groups, bootstrap_p, percentile_ci, stratified_indices
from .tests import exact_mcnemar_p


def _zmean_rows(x: np.ndarray, y: np.ndarray, rows: np.ndarray,
                groups: list[np.ndarray]) -> np.ndarray:
    """Return tanh(mean over strata of atanh r) for each resample row ``[m]`` (NaN: degenerate)."""
    z = np.zeros(rows.shape[0])
    for g in groups:
        r = _row_pearson(x[rows[:, g]], y[rows[:, g]])
        z += np.arctanh(np.clip(r, -0.9999999, 0.9999999))
    return np.tanh(z / len(groups))


# --------------------------------------------------------------------------- correlations


@dataclass(frozen=True)
class PooledCorr:
    """Fisher-z mean correlation over strata with a stratified-bootstrap CI and p."""

    r_bar: float
    ci_low: float
    ci_high: float
    p: float
    n: int
    k: int
    n_boot: int
    seed: int
    n_boot_degenerate: int = 0

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class PooledCorrDiff:
    """``r̄_b − r̄_a`` on the same items (Fisher-z means over strata), paired stratified bootstrap."""

    delta: float
    ci_low: float
    ci_high: float
    p: float
    a: PooledCorr
    b: PooledCorr
    n: int
    k: int
    n_boot: int
    seed: int

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict (``a``/``b`` nested)."""
        return asdict(self)


def _check(*arrays) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=float).ravel() for a in arrays]
    if len({a.size for a in out}) != 1:
        raise ValueError("pooled tests need arrays of one length (the same items)")
    if not all(np.isfinite(a).all() for a in out):
        raise ValueError("pooled tests need finite values (drop NaN rows first)")
    return out


def _summ(point: float, dist: np.ndarray, n: int, level: float) -> tuple[float, float, float]:
    lo, hi = percentile_ci(dist, n, level)
    return lo, hi, bootstrap_p(dist, n)


def pooled_corr(x, y, strata, *, n_boot: int = 10_000, seed: int = 0,
                level: float = 0.95) -> PooledCorr:
    """Return the Fisher-z mean Pearson r over strata of ``x, y [n]`` with a stratified CI and p."""
    x, y = _check(x, y)
    g = _groups(strata)
    point = float(_zmean_rows(x, y, np.arange(x.size)[None], g)[0])
    dist = _zmean_rows(x, y, stratified_indices(strata, n_boot, seed), g)
    lo, hi, p = _summ(point, dist, x.size, level)
    return PooledCorr(point, lo, hi, p, int(x.size), len(g), n_boot, seed,
                      int(np.sum(~np.isfinite(dist))))


def pooled_corr_diff(x_a, x_b, y, strata, *, n_boot: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> PooledCorrDiff:
    """Return ``r̄(x_b, y) − r̄(x_a, y)`` (Fisher-z means over strata) with a paired stratified CI.

    All arrays ``[n]`` over the same items; one resample of items (within their stratum) is
    used for both models. CI: expanded percentile over all n items; p: :func:`bootstrap_p`.
    """
    x_a, x_b, y = _check(x_a, x_b, y)
    g = _groups(strata)
    one = np.arange(x_a.size)[None]
    ra, rb = float(_zmean_rows(x_a, y, one, g)[0]), float(_zmean_rows(x_b, y, one, g)[0])
    rows = stratified_indices(strata, n_boot, seed)
    da, db = _zmean_rows(x_a, y, rows, g), _zmean_rows(x_b, y, rows, g)
    n, k = int(x_a.size), len(g)
    pa = PooledCorr(ra, *_summ(ra, da, n, level), n, k, n_boot, seed,
                    int(np.sum(~np.isfinite(da))))
    pb = PooledCorr(rb, *_summ(rb, db, n, level), n, k, n_boot, seed,
                    int(np.sum(~np.isfinite(db))))
    d = db - da
    lo, hi, p = _summ(rb - ra, d, n, level)
    return PooledCorrDiff(rb - ra, lo, hi, p, pa, pb, n, k, n_boot, seed)


# --------------------------------------------------------------------------- paired binary


@dataclass(frozen=True)
class PooledPairedBinary:
    """Mean of ``b − a`` over paired booleans, pooled over strata (exact McNemar + bootstrap CI)."""

    diff: float
    ci_low: float
    ci_high: float
    p: float
    n: int
    k: int
    a_only: int
    b_only: int
    acc_a: float
    acc_b: float
    min_p: float      # smallest p the exact test could give with this many discordant pairs
    method: str
    n_boot: int
    seed: int

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def pooled_paired_binary(a, b, strata=None, *, n_boot: int = 10_000, seed: int = 0,
                         level: float = 0.95) -> PooledPairedBinary:
    """Return ``mean(b) − mean(a)`` of paired booleans ``a, b [n]`` pooled over all items.

    p: exact McNemar on the pooled discordant pairs (b = c gives p = 1). CI: expanded
    percentile of the mean difference over a paired bootstrap of items within their stratum.
    ``min_p``: the exact test's smallest attainable p with this many discordant pairs.
    """
    a = np.asarray(a, dtype=bool).ravel()
    b = np.asarray(b, dtype=bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError("pooled_paired_binary needs the same non-empty items on both sides")
    strata = np.zeros(a.size, int) if strata is None else np.asarray(strata).ravel()
    d = b.astype(float) - a.astype(float)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    dist = d[stratified_indices(strata, n_boot, seed)].mean(1)
    n = int(a.size)
    lo, hi = percentile_ci(dist, n, level)  # (nan, nan) below 3 items
    disc = a_only + b_only
    return PooledPairedBinary(float(d.mean()), lo, hi, exact_mcnemar_p(a_only, b_only), n,
                              len(np.unique(strata)), a_only, b_only, float(a.mean()),
                              float(b.mean()), float(min(1.0, 2 * 0.5 ** disc)) if disc else 1.0,
                              "exact McNemar on pooled discordant pairs", n_boot, seed)


# --------------------------------------------------------------------------- power


def items_needed(ci_low: float, ci_high: float, n: float, effect: float) -> float:
    """Return the items a CI of this width would need to be narrower than ``|effect|``.

    A 95% CI shrinks as 1/√n; once its width is below |effect| it cannot contain both 0 ("as
    good as the teacher") and ``effect`` ("no better than nothing"). ``n · (width/|effect|)²``,
    rounded up; NaN when an input is missing.
    """
    w = ci_high - ci_low
    if not all(math.isfinite(v) for v in (w, n, effect)) or effect == 0 or n <= 0:
        return math.nan
    return float(math.ceil(n * (w / abs(effect)) ** 2 - 1e-9))
