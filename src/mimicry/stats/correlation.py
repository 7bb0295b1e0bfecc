"""Correlations: Pearson/Spearman with bootstrap CI and permutation p, Fisher z, paired Δr.

:func:`correlate` is the one entry for a correlation over items (r, n, CI, p);
:func:`paired_corr_diff` the difference of two correlations on the same items;
:func:`fisher_mean` / :func:`fisher_ci` the analytic Fisher-z pieces; ``pearson_cols`` /
``spearman_cols`` / ``partial_spearman`` the column-vectorised forms the probes use. CIs and p
values follow the rules in :mod:`mimicry.stats.resampling`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import permutations

import numpy as np
from scipy import stats as sps

from .resampling import _index_chunks, bootstrap_p, percentile_ci, perm_p


@dataclass(frozen=True)
class CorrResult:
    """A correlation with its n, bootstrap CI and permutation p."""

    r: float
    n: int
    ci_low: float
    ci_high: float
    p: float
    method: str
    n_boot: int
    n_perm: int
    seed: int
    ci_method: str = "expanded"  # the one CI rule (mimicry.stats.percentile_ci); kept for readers
    n_boot_degenerate: int = 0

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def _xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite (drop NaN/inf rows first)")
    return x, y


def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Return average ranks along the last axis (ties get their mean rank)."""
    return sps.rankdata(a, axis=-1)


def _rank(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Return average ranks along ``axis`` (ties get their mean rank)."""
    return sps.rankdata(a, axis=axis)


def _row_pearson(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Return Pearson r of each row pair: ``xs, ys [m, n] -> [m]`` (NaN for a constant row)."""
    mx = xs.mean(axis=1, keepdims=True)
    my = ys.mean(axis=1, keepdims=True)
    xc = xs - mx
    yc = ys - my
    sxx = np.einsum("ij,ij->i", xc, xc)
    syy = np.einsum("ij,ij->i", yc, yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("ij,ij->i", xc, yc) / np.sqrt(sxx * syy)
    # a row is degenerate when a column has (numerically) no spread: a constant column
    # leaves only rounding error, ~1e-32 * n * mean^2, far below this threshold
    tiny = 1e-24 * xs.shape[1]
    r[(sxx <= tiny * (mx[:, 0] ** 2 + 1)) | (syy <= tiny * (my[:, 0] ** 2 + 1))] = np.nan
    return np.clip(r, -1.0, 1.0)


def pearson(x, y) -> float:
    """Return Pearson's r of ``x [n]`` and ``y [n]`` (NaN if either is constant)."""
    x, y = _xy(x, y)
    return float(_row_pearson(x[None], y[None])[0])


def spearman(x, y) -> float:
    """Return Spearman's rho (Pearson of average ranks) of ``x [n]`` and ``y [n]``."""
    x, y = _xy(x, y)
    return pearson(_rank_rows(x), _rank_rows(y))


def _rank_resampled(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Return ``rankdata(x[rows], axis=1)`` ``[m, n]`` without sorting each row.

    An item's average rank in a resample is (#resampled values below it) + (its multiplicity
    incl. ties + 1) / 2; counts per distinct value come from one bincount.
    """
    u, code = np.unique(x, return_inverse=True)
    k = u.size
    m = rows.shape[0]
    c = code[rows]
    counts = np.bincount((np.arange(m)[:, None] * k + c).ravel(), minlength=m * k)
    counts = counts.reshape(m, k)
    avg = np.cumsum(counts, axis=1) - counts + (counts + 1) / 2
    return np.take_along_axis(avg, c, axis=1)


def _corr_rows(x: np.ndarray, y: np.ndarray, rows: np.ndarray, method: str) -> np.ndarray:
    """Return the correlation of ``x[rows[b]]`` with ``y[rows[b]]`` for every row b: ``[m]``."""
    if method == "spearman":
        return _row_pearson(_rank_resampled(x, rows), _rank_resampled(y, rows))
    if method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    return _row_pearson(x[rows], y[rows])


def bootstrap_corr(x, y, *, method: str = "pearson", n_boot: int = 10_000,
                   seed: int = 0) -> np.ndarray:
    """Return the bootstrap distribution ``[n_boot]`` of the correlation (NaN = degenerate).

    Items (pairs ``(x_i, y_i)``) are resampled with replacement; the indices are
    ``bootstrap_indices(n, n_boot, seed)``.
    """
    x, y = _xy(x, y)
    out = np.empty(n_boot)
    for s, rows in _index_chunks("boot", x.size, n_boot, seed):
        out[s:s + len(rows)] = _corr_rows(x, y, rows, method)
    return out


def bootstrap_ci(x, y, *, method: str = "pearson", n_boot: int = 10_000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Return the bootstrap CI ``(low, high)`` of the correlation over items (expanded percentile)."""
    x, y = _xy(x, y)
    return percentile_ci(bootstrap_corr(x, y, method=method, n_boot=n_boot, seed=seed), x.size,
                         level)


def permutation_null(x, y, *, method: str = "pearson", n_perm: int = 10_000,
                     seed: int = 0) -> np.ndarray:
    """Return the permutation null ``[n_perm]``: the correlation with ``y`` shuffled."""
    x, y = _xy(x, y)
    if method == "spearman":
        x, y = _rank_rows(x), _rank_rows(y)
    n = x.size
    xc = x - x.mean()
    yc = y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    out = np.empty(n_perm)
    for s, perm in _index_chunks("perm", n, n_perm, seed):
        out[s:s + len(perm)] = np.einsum("ij,j->i", yc[perm], xc) / den if den > 0 else np.nan
    return out


def permutation_p(x, y, *, method: str = "pearson", n_perm: int = 10_000,
                  seed: int = 0) -> float:
    """Return the two-sided permutation p of the correlation, ``(1 + #|r*|>=|r|)/(n_perm + 1)``."""
    r = pearson(x, y) if method == "pearson" else spearman(x, y)
    if not math.isfinite(r):
        return math.nan
    return perm_p(r, permutation_null(x, y, method=method, n_perm=n_perm, seed=seed),
                  "two-sided")


def correlate(x, y, *, method: str = "pearson", n_boot: int = 10_000, n_perm: int = 10_000,
              seed: int = 0, level: float = 0.95) -> CorrResult:
    """Return r, n, bootstrap CI (over items; expanded percentile) and permutation p for ``x, y [n]``.

    The bootstrap uses ``seed``; the permutation test uses ``seed + 1`` (independent draws).
    """
    x, y = _xy(x, y)
    r = pearson(x, y) if method == "pearson" else spearman(x, y)
    dist = bootstrap_corr(x, y, method=method, n_boot=n_boot, seed=seed)
    lo, hi = percentile_ci(dist, x.size, level)
    p = permutation_p(x, y, method=method, n_perm=n_perm, seed=seed + 1)
    return CorrResult(r=r, n=int(x.size), ci_low=lo, ci_high=hi, p=p, method=method,
                      n_boot=n_boot, n_perm=n_perm, seed=seed,
                      n_boot_degenerate=int(np.sum(~np.isfinite(dist))))


def exact_permutation_p(x, y) -> float:
    """Return the exact two-sided permutation p of Pearson r over all n! orders (small n only)."""
    x, y = _xy(x, y)
    if x.size > 8:
        raise ValueError("exact_permutation_p enumerates n! orders; use n <= 8")
    r = abs(pearson(x, y))
    perms = np.array(list(permutations(range(x.size))))
    null = _row_pearson(np.broadcast_to(x, perms.shape), y[perms])
    return float(np.mean(np.abs(null) >= r - 1e-12))


@dataclass(frozen=True)
class FisherMean:
    """Mean of k correlations by Fisher z, with two CIs and a p against 0."""

    r_bar: float        # tanh(mean_i atanh r_i), unweighted
    ci_low: float       # tanh(z̄ ± t_{k-1} sd(z)/√k): tasks as a random sample
    ci_high: float
    p: float            # one-sample t-test of z_i against 0 (k-1 df)
    k: int
    r_fixed: float      # tanh(Σ(n_i-3) z_i / Σ(n_i-3)), fixed effect (needs n)
    ci_fixed_low: float  # tanh(z_w ± 1.96/√Σ(n_i-3))
    ci_fixed_high: float

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def fisher_mean(r, n=None, *, level: float = 0.95) -> FisherMean:
    """Return the Fisher-z mean of correlations ``r [k]`` (optionally with sample sizes ``n [k]``).

    The primary interval treats the k correlations (tasks) as a sample: z̄ ± t·sd/√k, back
    through tanh (needs k >= 2). The fixed-effect interval weights by n_i − 3 (needs n).
    """
    r = np.asarray(r, dtype=float)
    keep = np.isfinite(r)
    r = np.clip(r[keep], -0.9999999, 0.9999999)
    k = int(r.size)
    nan = math.nan
    if k == 0:
        return FisherMean(nan, nan, nan, nan, 0, nan, nan, nan)
    z = np.arctanh(r)
    zbar = float(z.mean())
    lo = hi = p = nan
    if k >= 2:
        sd = float(z.std(ddof=1))
        tq = float(sps.t.ppf(0.5 + level / 2, k - 1))
        se = sd / math.sqrt(k)
        lo, hi = math.tanh(zbar - tq * se), math.tanh(zbar + tq * se)
        p = float(2 * sps.t.sf(abs(zbar / se), k - 1)) if se > 0 else nan
    rf = flo = fhi = nan
    if n is not None:
        w = np.asarray(n, dtype=float)[keep] - 3
        if np.all(w > 0):
            zw = float(np.sum(w * z) / np.sum(w))
            se_w = 1 / math.sqrt(float(np.sum(w)))
            zq = float(sps.norm.ppf(0.5 + level / 2))
            rf, flo, fhi = math.tanh(zw), math.tanh(zw - zq * se_w), math.tanh(zw + zq * se_w)
    return FisherMean(math.tanh(zbar), lo, hi, p, k, rf, flo, fhi)


def fisher_ci(r: float, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Return the analytic CI of one correlation: tanh(atanh r ± z_q / √(n − 3)) (needs n > 3)."""
    if n <= 3 or not math.isfinite(r):
        return (math.nan, math.nan)
    z = math.atanh(max(min(r, 0.9999999), -0.9999999))
    se = 1 / math.sqrt(n - 3)
    q = float(sps.norm.ppf(0.5 + level / 2))
    return math.tanh(z - q * se), math.tanh(z + q * se)


@dataclass(frozen=True)
class CorrDiff:
    """Difference of two correlations on the same items, ``delta = r_b - r_a``."""

    delta: float
    r_a: float
    r_b: float
    n: int
    ci_low: float
    ci_high: float
    p: float
    n_boot: int
    seed: int

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def paired_corr_diff(x_a, x_b, y, y_b=None, *, method: str = "pearson", n_boot: int = 10_000,
                     seed: int = 0, level: float = 0.95) -> CorrDiff:
    """Return ``r(x_b, y_b) - r(x_a, y)`` with a paired bootstrap CI and p over shared items.

    All arrays are ``[n]`` over the same items (``y_b`` defaults to ``y``). Each bootstrap
    draw resamples item indices once and uses them for both correlations. p is the two-sided
    bootstrap p of the same interval rule as the CI (:func:`~mimicry.stats.bootstrap_p`), so
    p < 1 − level exactly when the CI excludes 0.
    """
    x_a, y = _xy(x_a, y)
    x_b, y_b = _xy(x_b, y if y_b is None else y_b)
    if x_a.size != x_b.size:
        raise ValueError("paired_corr_diff needs the same items on both sides")
    f = pearson if method == "pearson" else spearman
    r_a, r_b = f(x_a, y), f(x_b, y_b)
    d = np.empty(n_boot)
    for s, rows in _index_chunks("boot", x_a.size, n_boot, seed):
        d[s:s + len(rows)] = (_corr_rows(x_b, y_b, rows, method)
                              - _corr_rows(x_a, y, rows, method))
    d = d[np.isfinite(d)]
    lo, hi = percentile_ci(d, x_a.size, level)
    p = bootstrap_p(d, x_a.size)
    return CorrDiff(r_b - r_a, r_a, r_b, int(x_a.size), lo, hi, p, n_boot, seed)


def pearson_cols(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Return Pearson r of ``y [n]`` with each column of ``P [n, m]`` -> ``[m]``."""
    P = np.asarray(P, float)
    P = P[:, None] if P.ndim == 1 else P
    yc = y - y.mean()
    Pc = P - P.mean(0)
    den = np.sqrt((yc**2).sum() * (Pc**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, yc @ Pc / np.where(den > 0, den, 1), np.nan)


def spearman_cols(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Return Spearman ρ of ``y [n]`` with each column of ``P [n, m]`` -> ``[m]``."""
    P = np.asarray(P, float)
    P = P[:, None] if P.ndim == 1 else P
    return pearson_cols(_rank(y), _rank(P, axis=0))


def partial_spearman(x: np.ndarray, y: np.ndarray, covar: np.ndarray) -> tuple[float, float]:
    """Return (ρ, p) of ``x``, ``y`` after regressing the ranks of ``covar`` out of both."""
    rx, ry = _rank(x), _rank(y)
    C = np.column_stack([np.ones(len(x)), _rank(np.asarray(covar))])
    ex = rx - C @ np.linalg.lstsq(C, rx, rcond=None)[0]
    ey = ry - C @ np.linalg.lstsq(C, ry, rcond=None)[0]
    r = float(pearson_cols(ex, ey)[0])
    df = len(x) - 3
    t = r * np.sqrt(df / max(1e-300, 1 - r * r))
    return r, float(2 * sps.t.sf(abs(t), df))
