"""Regression and prediction quality: OLS with t CIs, Cook's distance, out-of-sample R² and ρ.

:func:`ols` (the inflation law's slope), :func:`cooks_distance` (exclusion rule),
:func:`r2` / :func:`boot_r2` (out-of-sample R² and its bootstrap) and :func:`corr_summary`
(ρ and R² of a probe's cross-validated predictions, with CIs and the permutation p).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from .correlation import _xy, bootstrap_corr, spearman_cols
from .resampling import bootstrap_indices, percentile_ci, perm_p


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


def r2(y: np.ndarray, yhat: np.ndarray) -> float:
    """Return out-of-sample R² = 1 − SSres/SStot (can be negative)."""
    return float(1 - ((y - yhat) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def boot_r2(y: np.ndarray, yhat: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Return out-of-sample R² = 1 − SSres/SStot on each resample ``idx [B, n]`` -> ``[B]``."""
    yb, pb = y[idx], yhat[idx]
    ss_res = ((yb - pb) ** 2).sum(1)
    ss_tot = ((yb - yb.mean(1, keepdims=True)) ** 2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - ss_res / ss_tot


def corr_summary(y: np.ndarray, yhat: np.ndarray, *, n_boot: int, seed: int,
                 null: np.ndarray | None = None) -> dict:
    """Return ρ, its bootstrap CI, R² with CI, n and (if ``null`` given) the permutation p."""
    idx = bootstrap_indices(len(y), n_boot, seed)
    rho = float(spearman_cols(y, yhat)[0])
    lo, hi = percentile_ci(bootstrap_corr(y, yhat, method="spearman", n_boot=n_boot, seed=seed),
                           len(y))
    r2_lo, r2_hi = percentile_ci(boot_r2(y, yhat, idx), len(y))
    out = {"n": len(y), "rho": rho, "rho_ci_low": lo, "rho_ci_high": hi,
           "r2": r2(y, yhat), "r2_ci_low": r2_lo, "r2_ci_high": r2_hi}
    if null is not None:
        out["p_perm"] = perm_p(rho, null, "greater")  # a decoder scores above its refit null
    return out
