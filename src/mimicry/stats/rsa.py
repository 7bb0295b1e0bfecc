"""Comparing two models' profiles: representational dissimilarity (RDM), RSA, KL divergence.

:func:`rdm` (Euclidean RDM of item features), :func:`rsa` (Spearman of two RDMs' upper
triangles, Mantel permutation p), :func:`kl_divergence` (between effort distributions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from .correlation import pearson
from .resampling import perm_p


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
        p = perm_p(rho, null, "two-sided")
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
