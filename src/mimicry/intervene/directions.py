"""Effort directions as plain arrays: difference of means, unit vectors, random controls."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def unit(v: np.ndarray) -> np.ndarray:
    """Return ``v [d]`` scaled to unit L2 norm (float64); a zero vector is an InputError."""
    v = np.asarray(v, np.float64)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n == 0:
        raise InputError("direction has zero (or non-finite) norm",
                         fix="check that the two groups of items differ at this layer/site")
    return v / n


def mean_difference(X: np.ndarray, hard: np.ndarray, easy: np.ndarray) -> np.ndarray:
    """Return ``mean(X[hard]) − mean(X[easy])`` ``[d]`` (float64) for ``X [n, d]``.

    ``hard``/``easy``: boolean masks or index arrays over the rows of ``X``.
    """
    X = np.asarray(X, np.float64)
    h, e = X[np.asarray(hard)], X[np.asarray(easy)]
    if len(h) == 0 or len(e) == 0:
        raise InputError(f"difference of means needs items in both groups "
                         f"(hard: {len(h)}, easy: {len(e)})",
                         fix="use more items or another split of difficulty")
    return h.mean(0) - e.mean(0)


def random_directions(d: int, n: int, norm: float, seed: int = 0) -> np.ndarray:
    """Return ``[n, d]`` isotropic random directions, each of L2 norm ``norm`` (seeded)."""
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((n, d))
    return R / np.linalg.norm(R, axis=1, keepdims=True) * float(norm)
