"""Text-only baselines and selection-corrected layer evidence, reusable by every layer-wise probe.

A probe that reads difficulty (or a model's upcoming reasoning length) out of activations only
says something about the model when it beats what the *text* already gives away, and when the
layer it reports was not simply the luckiest of many. Two tools:

- :func:`text_baselines` — out-of-fold predictions of the same target on the same folds from
  text alone: ``prompt_tokens`` (log prompt token count, a one-feature ridge) and
  ``bag_of_tokens`` (ridge on prompt word counts, lower-cased ``\\w+`` and punctuation tokens;
  needs the prompts' text from the suite). The best one (highest ρ) is the baseline.
- :func:`layer_evidence` — per layer: ρ, a max-statistic permutation p over layers (the
  observed ρ against the null of the *largest* ρ over all layers under the same label
  permutation, so the peak layer's p is corrected for choosing it) and simultaneous bootstrap
  bounds (max-t over layers, items resampled once for every layer and the baseline) for ρ and
  for the gain ρ − ρ_baseline. ``P`` of the verdict holds only when the peak layer's max-stat
  p < 0.05 and its simultaneous gain lower bound > 0.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from mimicry.stats import bootstrap_indices, spearman_cols
from mimicry.stats.correlation import _rank_resampled, _row_pearson

from .ridge import ridge_cv_predict

TOKEN = re.compile(r"\w+|[^\w\s]")


def bag_of_tokens(texts: list[str], min_count: int = 2) -> np.ndarray:
    """Return word counts ``[n, vocab]`` of ``texts`` (tokens seen in >= ``min_count`` texts)."""
    toks = [Counter(TOKEN.findall(str(t).lower())) for t in texts]
    df = Counter(w for c in toks for w in c)
    vocab = sorted(w for w, k in df.items() if k >= min_count)
    col = {w: j for j, w in enumerate(vocab)}
    X = np.zeros((len(texts), max(1, len(vocab))))
    for i, c in enumerate(toks):
        for w, k in c.items():
            if w in col:
                X[i, col[w]] = k
    return X


def prompt_texts(item_ids, tasks: Any) -> list[str] | None:
    """Return the prompt text of each item id from a suite (TaskSuite/name/file), else None."""
    if tasks is None or isinstance(tasks, (pd.Series, dict)):
        return None
    if isinstance(tasks, str) or hasattr(tasks, "__fspath__"):
        from mimicry.tasks.registry import load_suite

        tasks = load_suite(tasks)
    by = {str(it.item_id): it.prompt for it in tasks}
    out = [by.get(str(i)) for i in item_ids]
    return None if any(p is None for p in out) else out


def text_baselines(y: np.ndarray, folds: np.ndarray, *, prompt_tokens: np.ndarray | None = None,
                   texts: list[str] | None = None, groups: np.ndarray | None = None,
                   seed: int = 0) -> dict[str, np.ndarray | None]:
    """Return ``{name: out-of-fold prediction [n]}`` of text-only ridge baselines on ``folds``.

    A baseline whose features are the same for every item maps to None (the text carries
    nothing: its ρ counts as 0); one whose input is not given is absent.
    """
    out: dict[str, np.ndarray | None] = {}
    if prompt_tokens is not None:
        X = np.log1p(np.asarray(prompt_tokens, float))[:, None]
        out["prompt_tokens"] = ridge_cv_predict(X, y, folds, groups=groups, seed=seed)[0] \
            if np.ptp(X) > 0 else None
    if texts is not None:
        X = bag_of_tokens(texts)
        out["bag_of_tokens"] = ridge_cv_predict(X, y, folds, groups=groups, seed=seed)[0] \
            if np.ptp(X, axis=0).any() else None
    return out


def _sim_bounds(point: np.ndarray, dist: np.ndarray, level: float) -> tuple[np.ndarray, ...]:
    """Return simultaneous (low, high) ``[L]`` from bootstrap draws ``dist [B, L]`` (max-t)."""
    ok = np.isfinite(dist).all(1)
    d = dist[ok]
    se = d.std(0, ddof=1)
    se = np.where(se > 0, se, np.nan)
    t = (d - point) / se
    if not np.isfinite(t).any():                     # no spread anywhere: no bounds
        nan = np.full(point.shape, np.nan)
        return nan, nan
    t = t[:, np.isfinite(t).all(0)] if np.isfinite(t).all(0).any() else t
    a = (1 - level) / 2
    c_hi = np.nanquantile(np.nanmax(t, 1), 1 - a)     # draws above: bounds the estimate below
    c_lo = np.nanquantile(np.nanmax(-t, 1), 1 - a)
    return point - c_hi * se, point + c_lo * se


def layer_evidence(y: np.ndarray, preds: np.ndarray, null: np.ndarray | None = None,
                   baselines: dict[str, np.ndarray] | None = None, *, n_boot: int = 1000,
                   seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Return per layer: ρ, max-stat p, simultaneous ρ bounds and the gain over the text baseline.

    ``y [n]``; ``preds [L, n]`` out-of-fold predictions per layer (NaN rows: layers with no
    signal to fit, e.g. constant features); ``null [L, n_perm]`` the permuted-label ρ of each
    layer under the SAME permutations (column j = permutation j for every layer);
    ``baselines``: text-only predictions (see :func:`text_baselines`; None = text constant
    over items, ρ 0); without any, the gain columns stay NaN. Columns: ``rho,
    p_maxstat, p_min, rho_sim_low, rho_sim_high, baseline, baseline_rho, gain, gain_sim_low,
    gain_sim_high, n_layers_tested``.
    """
    preds = np.atleast_2d(np.asarray(preds, float))
    L = preds.shape[0]
    ok = np.isfinite(preds).all(1)
    rho = np.full(L, np.nan)
    rho[ok] = spearman_cols(y, preds[ok].T)
    out = pd.DataFrame({"rho": rho, "n_layers_tested": int(ok.sum())})
    out["p_maxstat"] = np.nan
    out["p_min"] = np.nan
    if null is not None and ok.any():
        nmax = np.nanmax(np.asarray(null, float)[ok], axis=0)          # [n_perm]
        nmax = nmax[np.isfinite(nmax)]
        if nmax.size:
            out["p_min"] = 1 / (1 + nmax.size)   # the smallest p this many permutations give
            out.loc[ok, "p_maxstat"] = [(1 + np.sum(nmax >= r - 1e-12)) / (1 + nmax.size)
                                        for r in rho[ok]]
    for c in ("rho_sim_low", "rho_sim_high", "baseline_rho", "gain", "gain_sim_low",
              "gain_sim_high"):
        out[c] = np.nan
    out["baseline"] = ""
    if not ok.any():
        return out
    idx = bootstrap_indices(len(y), n_boot, seed)   # one resample of items for every layer
    ry = _rank_resampled(np.asarray(y, float), idx)
    boot = np.column_stack([_row_pearson(ry, _rank_resampled(preds[j], idx))
                            for j in np.flatnonzero(ok)])
    lo, hi = _sim_bounds(rho[ok], boot, level)
    out.loc[ok, "rho_sim_low"], out.loc[ok, "rho_sim_high"] = lo, hi
    if baselines:
        brho = {k: 0.0 if v is None else float(spearman_cols(y, v)[0])
                for k, v in baselines.items()}
        best = max(brho, key=lambda k: brho[k] if np.isfinite(brho[k]) else -np.inf)
        bdist = np.zeros(n_boot) if baselines[best] is None else _row_pearson(
            ry, _rank_resampled(np.asarray(baselines[best], float), idx))
        gain = rho[ok] - brho[best]
        glo, ghi = _sim_bounds(gain, boot - bdist[:, None], level)
        out["baseline"], out["baseline_rho"] = best, brho[best]
        out.loc[ok, "gain"], out.loc[ok, "gain_sim_low"], out.loc[ok, "gain_sim_high"] = \
            gain, glo, ghi
    return out
