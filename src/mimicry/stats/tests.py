"""Tests of paired outcomes and multiplicity: McNemar, paired Wilcoxon/t, Wilson, BH-FDR.

:func:`mcnemar` / :func:`exact_mcnemar_p` (paired booleans: exact binomial on the discordant
pairs), :func:`paired_test` (paired values across units, e.g. tasks), :func:`wilson_ci` (a
proportion), :func:`bh_fdr` (Benjamini–Hochberg q values).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps


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


def exact_mcnemar_p(a_only: int, b_only: int) -> float:
    """Return the exact two-sided McNemar p: binomial test of ``b_only`` ~ Bin(a_only+b_only, ½)."""
    disc = int(a_only) + int(b_only)
    return 1.0 if disc == 0 else float(sps.binomtest(int(b_only), disc, 0.5).pvalue)


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
