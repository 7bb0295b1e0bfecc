"""Probe-specific statistics on top of :mod:`mimicry.stats` (bootstrap, percentile CI, BH-FDR).

Only what mimicry.stats does not have lives here: correlations vectorised over columns,
out-of-sample R² with its bootstrap, a p-value against a precomputed (refit) permutation null
and the partial Spearman correlation.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .core import bootstrap_corr, bootstrap_indices, percentile_ci


def _rank(a: np.ndarray, axis: int = 0) -> np.ndarray:
    return stats.rankdata(a, axis=axis)


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



def boot_r2(y: np.ndarray, yhat: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Return out-of-sample R² = 1 − SSres/SStot on each resample ``idx [B, n]`` -> ``[B]``."""
    yb, pb = y[idx], yhat[idx]
    ss_res = ((yb - pb) ** 2).sum(1)
    ss_tot = ((yb - yb.mean(1, keepdims=True)) ** 2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - ss_res / ss_tot


def r2(y: np.ndarray, yhat: np.ndarray) -> float:
    """Return out-of-sample R² = 1 − SSres/SStot (can be negative)."""
    return float(1 - ((y - yhat) ** 2).sum() / ((y - y.mean()) ** 2).sum())



def perm_p(observed: float, null: np.ndarray, alternative: str = "greater") -> float:
    """Return the permutation p-value (1 + #null at least as extreme) / (1 + n_null)."""
    null = np.asarray(null, float)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or len(null) == 0:
        return np.nan
    if alternative == "greater":
        k = (null >= observed).sum()
    elif alternative == "less":
        k = (null <= observed).sum()
    else:
        k = (np.abs(null) >= abs(observed)).sum()
    return float((1 + k) / (1 + len(null)))



def partial_spearman(x: np.ndarray, y: np.ndarray, covar: np.ndarray) -> tuple[float, float]:
    """Return (ρ, p) of ``x``, ``y`` after regressing the ranks of ``covar`` out of both."""
    rx, ry = _rank(x), _rank(y)
    C = np.column_stack([np.ones(len(x)), _rank(np.asarray(covar))])
    ex = rx - C @ np.linalg.lstsq(C, rx, rcond=None)[0]
    ey = ry - C @ np.linalg.lstsq(C, ry, rcond=None)[0]
    r = float(pearson_cols(ex, ey)[0])
    df = len(x) - 3
    t = r * np.sqrt(df / max(1e-300, 1 - r * r))
    return r, float(2 * stats.t.sf(abs(t), df))


def corr_summary(y: np.ndarray, yhat: np.ndarray, *, n_boot: int, seed: int,
                 null: np.ndarray | None = None) -> dict:
    """Return ρ, its bootstrap CI, R² with CI, n and (if ``null`` given) the permutation p."""
    idx = bootstrap_indices(len(y), n_boot, seed)
    rho = float(spearman_cols(y, yhat)[0])
    lo, hi = percentile_ci(bootstrap_corr(y, yhat, method="spearman", n_boot=n_boot, seed=seed))
    r2_lo, r2_hi = percentile_ci(boot_r2(y, yhat, idx))
    out = {"n": len(y), "rho": rho, "rho_ci_low": lo, "rho_ci_high": hi,
           "r2": r2(y, yhat), "r2_ci_low": r2_lo, "r2_ci_high": r2_hi}
    if null is not None:
        out["p_perm"] = perm_p(rho, null)
    return out
