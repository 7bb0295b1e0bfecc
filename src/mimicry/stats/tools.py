"""Paired tests, regression, RSA, KL divergence and FDR (re-exported by :mod:`mimicry.stats`).

Import these from ``mimicry.stats``; this module only keeps ``stats.py`` to one job each.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from .core import _xy, pearson

# --------------------------------------------------------------------------- paired tests


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test of two paired binary outcomes (e.g. base vs student correct)."""

    n: int
    a_only: int     # a right, b wrong
    b_only: int     # b right, a wrong
    acc_a: float
    acc_b: float
    statistic: float
    p: float
    method: str     # "exact-binomial" or "chi2" (no continuity correction)

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def mcnemar(a_correct, b_correct, *, exact_below: int | None = None) -> McNemarResult:
    """Return McNemar's test for paired booleans ``a_correct, b_correct [n]``.

    By default the p is always the exact two-sided binomial test of ``b_only`` ~
    Bin(discordant, 0.5) (statistic = b_only), so ``a_only == b_only`` gives p = 1. With
    ``exact_below`` set, discordant counts at or above it use the chi-square
    ``(a_only - b_only)^2 / (a_only + b_only)``, 1 df, without continuity correction.
    """
    a = np.asarray(a_correct, dtype=bool).ravel()
    b = np.asarray(b_correct, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ValueError("mcnemar needs the same items on both sides")
    n10 = int(np.sum(a & ~b))
    n01 = int(np.sum(~a & b))
    disc = n10 + n01
    acc_a = float(a.mean()) if a.size else math.nan
    acc_b = float(b.mean()) if b.size else math.nan
    if disc == 0:
        return McNemarResult(int(a.size), n10, n01, acc_a, acc_b, 0.0, 1.0, "exact-binomial")
    if exact_below is None or disc < exact_below:
        p = float(sps.binomtest(n01, disc, 0.5).pvalue)
        return McNemarResult(int(a.size), n10, n01, acc_a, acc_b, float(n01), p,
                             "exact-binomial")
    stat = (n10 - n01) ** 2 / disc
    return McNemarResult(int(a.size), n10, n01, acc_a, acc_b, float(stat),
                         float(sps.chi2.sf(stat, 1)), "chi2")


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of ``b - a`` across units (e.g. tasks): Wilcoxon primary, t alongside."""

    n: int
    mean_diff: float
    median_diff: float
    wilcoxon_stat: float
    wilcoxon_p: float
    t_stat: float
    t_p: float
    primary: str = "wilcoxon"

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def paired_test(a, b) -> PairedTest:
    """Return a Wilcoxon signed-rank test (primary) and a paired t-test of ``b - a``, ``[k]`` each.

    Wilcoxon uses scipy's defaults (exact distribution for small k without ties/zeros); with
    fewer than 2 pairs or all differences 0 the p-values are NaN / 1.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = b - a
    k = int(d.size)
    nan = math.nan
    if k < 2:
        return PairedTest(k, float(d.mean()) if k else nan, float(np.median(d)) if k else nan,
                          nan, nan, nan, nan)
    if np.all(d == 0):
        return PairedTest(k, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0)
    w = sps.wilcoxon(b, a)
    t = sps.ttest_rel(b, a)
    return PairedTest(k, float(d.mean()), float(np.median(d)), float(w.statistic),
                      float(w.pvalue), float(t.statistic), float(t.pvalue))


# --------------------------------------------------------------------------- regression


@dataclass(frozen=True)
class OLSResult:
    """Ordinary least squares ``y = intercept + slope * x`` with t-based CIs."""

    slope: float
    intercept: float
    slope_se: float
    ci_low: float
    ci_high: float
    p: float        # H0: slope = 0 (two-sided t, n-2 df; n-1 through the origin)
    r2: float
    n: int
    through_origin: bool

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def ols(x, y, *, through_origin: bool = False, level: float = 0.95) -> OLSResult:
    """Return the OLS fit of ``y [n]`` on ``x [n]``: slope with a t CI, intercept, p, R²."""
    x, y = _xy(x, y)
    n = int(x.size)
    nan = math.nan
    df = n - 1 if through_origin else n - 2
    if df < 1:
        return OLSResult(nan, nan, nan, nan, nan, nan, nan, n, through_origin)
    if through_origin:
        sxx = float(x @ x)
        slope = float(x @ y) / sxx
        intercept = 0.0
        resid = y - slope * x
        sst = float(y @ y)
    else:
        xc = x - x.mean()
        sxx = float(xc @ xc)
        slope = float(xc @ (y - y.mean())) / sxx
        intercept = float(y.mean() - slope * x.mean())
        resid = y - intercept - slope * x
        sst = float(((y - y.mean()) ** 2).sum())
    sse = float(resid @ resid)
    se = math.sqrt(sse / df / sxx)
    tq = float(sps.t.ppf(0.5 + level / 2, df))
    p = float(2 * sps.t.sf(abs(slope / se), df)) if se > 0 else 0.0
    r2 = 1 - sse / sst if sst > 0 else nan
    return OLSResult(slope, intercept, se, slope - tq * se, slope + tq * se, p, r2, n,
                     through_origin)


def cooks_distance(x, y) -> np.ndarray:
    """Return Cook's distance ``[n]`` of each point in the OLS fit of ``y`` on ``x`` (p = 2)."""
    x, y = _xy(x, y)
    n = x.size
    X = np.column_stack([np.ones(n), x])
    xtx_inv = np.linalg.pinv(X.T @ X)
    h = np.einsum("ij,jk,ik->i", X, xtx_inv, X)
    beta = xtx_inv @ X.T @ y
    e = y - X @ beta
    s2 = float(e @ e) / (n - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return e ** 2 / (2 * s2) * h / (1 - h) ** 2


# --------------------------------------------------------------------------- RSA, KL, FDR


def rdm(features) -> np.ndarray:
    """Return the Euclidean representational dissimilarity matrix ``[n, n]`` of ``[n]`` or ``[n, d]``."""
    from scipy.spatial.distance import pdist, squareform

    f = np.asarray(features, dtype=float)
    if f.ndim == 1:
        f = f[:, None]
    return squareform(pdist(f, "euclidean"))


@dataclass(frozen=True)
class RSAResult:
    """Spearman correlation of two RDMs' upper triangles, with a Mantel permutation p."""

    rho: float
    n_items: int
    p: float
    n_perm: int
    seed: int

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def rsa(rdm_a, rdm_b, *, n_perm: int = 0, seed: int = 0) -> RSAResult:
    """Return the RSA: Spearman of the strict upper triangles of ``rdm_a, rdm_b [n, n]``.

    With ``n_perm > 0`` the p is a two-sided Mantel test: item labels of ``rdm_b`` are permuted
    (rows and columns together), +1 corrected.
    """
    A = np.asarray(rdm_a, dtype=float)
    B = np.asarray(rdm_b, dtype=float)
    if A.shape != B.shape or A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"RDMs must be square and equal in shape: {A.shape} vs {B.shape}")
    n = A.shape[0]
    iu = np.triu_indices(n, 1)
    ra = sps.rankdata(A[iu])
    rho = pearson(ra, sps.rankdata(B[iu]))
    p = math.nan
    if n_perm > 0 and math.isfinite(rho):
        # ranks of the permuted triangle = the rank matrix permuted (ranks are per-entry)
        RB = np.zeros_like(B)
        RB[iu] = sps.rankdata(B[iu])
        flat = (RB + RB.T).ravel()
        rac = ra - ra.mean()
        # a permuted triangle holds the same values: its mean and norm never change
        rb0 = flat[iu[0] * n + iu[1]]
        den = math.sqrt(float(np.einsum("i,i->", rac, rac))
                        * float(np.einsum("i,i->", rb0 - rb0.mean(), rb0 - rb0.mean())))
        rng = np.random.default_rng(seed)
        null = np.empty(n_perm)
        for k in range(n_perm):  # einsum, not BLAS @: no thread start-up per tiny product
            perm = rng.permutation(n)
            null[k] = float(np.einsum("i,i->", rac, flat[perm[iu[0]] * n + perm[iu[1]]])) / den
        p = (1 + int(np.sum(np.abs(null) >= abs(rho) - 1e-12))) / (n_perm + 1)
    return RSAResult(rho, n, p, n_perm, seed)


def kl_divergence(p, q) -> float:
    """Return KL(P‖Q) = Σ P_i log(P_i / Q_i) in nats, after normalising ``p, q [n]`` to sum 1.

    Entries must be >= 0; terms with P_i = 0 contribute 0; Q_i = 0 where P_i > 0 gives inf.
    """
    p = np.asarray(p, dtype=float).ravel()
    q = np.asarray(q, dtype=float).ravel()
    if p.shape != q.shape:
        raise ValueError("p and q differ in length")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("p and q must be non-negative with positive sums")
    p = p / p.sum()
    q = q / q.sum()
    m = p > 0
    if np.any(q[m] == 0):
        return math.inf
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


def bh_fdr(pvals, *, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Return Benjamini–Hochberg ``(q_values [m], reject [m])`` for p-values ``[m]`` (NaN kept)."""
    p = np.asarray(pvals, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    pv = p[ok]
    m = pv.size
    if m:
        order = np.argsort(pv)
        ranked = pv[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        qv = np.empty(m)
        qv[order] = np.minimum(ranked, 1.0)
        q[ok] = qv
    return q, np.where(ok, q <= alpha, False)


def wilson_ci(k: np.ndarray, n: np.ndarray, z: float = 1.959963984540054) -> tuple[np.ndarray, np.ndarray]:
    """Return the Wilson score interval ``(low, high)`` for ``k`` successes of ``n``."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    p = np.divide(k, n, out=np.full_like(k, np.nan), where=n > 0)
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half
