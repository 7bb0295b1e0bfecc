"""Item-level human norms from trial data, and their split-half reliability.

Norm definitions (used by every built-in suite):

- ``rt_ms``: median reaction time of the *correct* trials of an item;
- ``accuracy``: proportion of correct trials;
- ``n``: number of trials behind the item (all trials, correct or not).

Reliability of an item-level norm across the items of a task: split the *participants* at
random into two halves (sizes ``floor(P/2)`` and ``ceil(P/2)``), compute the norm of every item
in each half, correlate the two vectors over the items present in both halves (Pearson; RT is
log-transformed first because alignment correlates log cost with log RT). Repeat for
``n_splits`` random splits drawn from ``numpy.random.default_rng(seed)`` (one
``rng.permutation(n_participants)`` over the participants sorted by id per split), average the
split-half r with Fisher's z, and apply Spearman–Brown ``2r / (1 + r)`` to that mean. The result
is clipped to [-1, 1]; a value <= 0 means the item norm is not reliable (no noise ceiling).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

RELIABILITY_SEED = 20260127
RELIABILITY_SPLITS = 100


@dataclass(frozen=True)
class ItemNorm:
    """Norms of one item: median correct RT (ms, None without RT or correct trials)."""

    rt_ms: float | None
    accuracy: float
    n: int
    n_correct: int


def item_norms(trials: pd.DataFrame, *, item: str = "item", correct: str = "correct",
               rt: str | None = "rt_ms") -> dict[str, ItemNorm]:
    """Return ``{item_id: ItemNorm}`` from one row per trial (``correct`` is boolean)."""
    out: dict[str, ItemNorm] = {}
    for key, g in trials.groupby(item, sort=True):
        ok = g[correct].astype(bool).to_numpy()
        med = None
        if rt is not None and ok.any():
            med = float(np.median(g.loc[ok, rt].to_numpy(dtype=float)))
        out[str(key)] = ItemNorm(rt_ms=med, accuracy=float(ok.mean()), n=int(len(g)),
                                 n_correct=int(ok.sum()))
    return out


def spearman_brown(r: float | np.ndarray, factor: float = 2.0) -> float | np.ndarray:
    """Return the Spearman–Brown prophecy ``k r / (1 + (k - 1) r)`` for test length ``factor``."""
    return factor * r / (1.0 + (factor - 1.0) * r)


def _half_norm(matrix: np.ndarray, rows: np.ndarray, measure: str) -> np.ndarray:
    """Return the item norms of one half: log median RT or mean accuracy, ``[n_items]``."""
    sub = matrix[rows]  # [n_half, n_items]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns -> NaN, dropped later
        if measure == "rt_ms":
            return np.log(np.nanmedian(sub, axis=0))
        return np.nanmean(sub, axis=0)


@dataclass(frozen=True)
class Reliability:
    """Split-half reliability: Spearman–Brown of the Fisher-z mean split-half r, and its inputs.

    ``value``: the corrected reliability; ``split_half_r``: mean half-vs-half r (uncorrected);
    ``sd_r``: standard deviation of r over the splits.
    """

    value: float
    split_half_r: float
    sd_r: float
    n_splits: int
    seed: int
    n_participants: int
    n_items: int
    measure: str


def split_half_reliability(trials: pd.DataFrame, *, measure: str, participant: str = "participant",
                           item: str = "item", correct: str = "correct", rt: str = "rt_ms",
                           n_splits: int = RELIABILITY_SPLITS,
                           seed: int = RELIABILITY_SEED) -> Reliability:
    """Return the split-half (Spearman–Brown) reliability of an item-level norm over items.

    ``measure`` is ``"rt_ms"`` (median RT of correct trials, log scale) or ``"accuracy"``
    (proportion correct). ``trials`` has one row per trial; a participant's repeated trials of
    an item are averaged into one cell (no built-in data set has repeats).
    """
    if measure not in ("rt_ms", "accuracy"):
        raise ValueError(f"measure must be 'rt_ms' or 'accuracy', got {measure!r}")
    df = trials[[participant, item, correct] + ([rt] if measure == "rt_ms" else [])].copy()
    if measure == "rt_ms":
        df["_v"] = np.where(df[correct].astype(bool), df[rt].astype(float), np.nan)
    else:
        df["_v"] = df[correct].astype(bool).astype(float)
    mat = df.pivot_table(index=participant, columns=item, values="_v", aggfunc="mean",
                         dropna=False).sort_index()
    matrix = mat.to_numpy(dtype=float)  # [n_participants, n_items]
    n_p = matrix.shape[0]
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(n_splits):
        perm = rng.permutation(n_p)
        a = _half_norm(matrix, perm[: n_p // 2], measure)
        b = _half_norm(matrix, perm[n_p // 2:], measure)
        keep = np.isfinite(a) & np.isfinite(b)
        if keep.sum() < 3 or np.std(a[keep]) == 0 or np.std(b[keep]) == 0:
            continue
        rs.append(float(np.corrcoef(a[keep], b[keep])[0, 1]))
    arr = np.clip(np.asarray(rs, dtype=float), -0.999999, 0.999999)
    if not arr.size:
        return Reliability(float("nan"), float("nan"), float("nan"), 0, int(seed), int(n_p),
                           int(matrix.shape[1]), measure)
    mean_r = float(np.tanh(np.arctanh(arr).mean()))
    return Reliability(value=float(np.clip(spearman_brown(mean_r), -1.0, 1.0)),
                       split_half_r=mean_r,
                       sd_r=float(arr.std(ddof=1)) if arr.size > 1 else float("nan"),
                       n_splits=int(arr.size), seed=int(seed), n_participants=int(n_p),
                       n_items=int(matrix.shape[1]), measure=measure)


def norms_frame(norms: dict[str, ItemNorm]) -> pd.DataFrame:
    """Return the norms as a DataFrame indexed by item id (columns rt_ms, accuracy, n, ...)."""
    return pd.DataFrame({k: vars(v) for k, v in norms.items()}).T
