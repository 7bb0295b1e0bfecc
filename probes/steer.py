"""Steering probe: does adding α·(effort direction) move how long a model reasons?

Directions, all read at ``last_prompt`` on TRAINING items only (a seeded half of the items)
and all rescaled to the norm of the model's own hard − easy difference of means at the
steered layer (so α = 1 adds one average hard − easy difference):

- ``own_meandiff``: mean(hard) − mean(easy) (difficulty above / below the task median);
- ``own_ridge``: the planning ridge's weight vector (``log_reasoning_tokens`` target);
- ``teacher_mapped``: the teacher's difference of means carried into this model by the
  planning probe's map (PCA(k) of each model + orthogonal Procrustes, fitted on the training
  items): teacher residual → teacher PCA coordinates → ``Rᵀ`` → student PCA coordinates →
  student residual;
- ``random_0..n``: isotropic random directions of the same norm (the control band).

The model then generates greedily on the HELD-OUT items with ``α · v`` added at the layer
(every position) for each α (:func:`mimicry.intervene.generation.dose_response`).
Statistics (:func:`analyze`, from the rows alone): per direction × α, mean reasoning tokens
and accuracy with percentile bootstrap CIs over items; per direction the dose–response slope
of mean ``log(1 + reasoning tokens)`` on α with a bootstrap CI, and its position in the
random band: ``p_random = (1 + #random |slope| ≥ |slope|) / (1 + n_random)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from mimicry.errors import InputError
from mimicry.intervene import mean_difference, random_directions
from mimicry.stats import bootstrap_indices, percentile_ci, perm_p

from .base import Result, cache_layers, make_labels
from .planning import _pca
from .ridge import RidgeProbe

ALPHAS = (-1.0, -0.5, 0.5, 1.0)


def slope(alpha: np.ndarray, y: np.ndarray) -> float:
    """Return the OLS slope of ``y [n]`` on ``alpha [n]``."""
    a = np.asarray(alpha, np.float64)
    y = np.asarray(y, np.float64)
    ac = a - a.mean()
    return float(ac @ (y - y.mean()) / (ac @ ac))


class DoseResponse(BaseEstimator):
    """OLS dose–response of ``log(1 + reasoning tokens)`` on α (``log=False``: raw tokens).

    ``fit(alpha [n], tokens [n])`` sets ``slope_`` and ``intercept_``; ``score`` returns the
    slope on the data it is given.
    """

    def __init__(self, log: bool = True):
        self.log = log

    def _y(self, tokens):
        t = np.asarray(tokens, np.float64)
        return np.log1p(t) if self.log else t

    def fit(self, alpha, tokens) -> DoseResponse:
        """Fit the line; return self."""
        y = self._y(tokens)
        self.slope_ = slope(alpha, y)
        self.intercept_ = float(y.mean() - self.slope_ * np.mean(alpha))
        return self

    def predict(self, alpha) -> np.ndarray:
        """Return the fitted ``log(1 + tokens)`` (or tokens) at ``alpha``."""
        return self.intercept_ + self.slope_ * np.asarray(alpha, np.float64)

    def score(self, alpha, tokens) -> float:
        """Return the dose–response slope of the given data."""
        return slope(alpha, self._y(tokens))


def split_items(n: int, train_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (train rows, test rows) of a seeded random split of ``n`` items."""
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(n * train_frac))
    return np.sort(perm[:k]), np.sort(perm[k:])


def map_direction(Xt: np.ndarray, Xs: np.ndarray, v_t: np.ndarray, max_dim: int = 64
                  ) -> np.ndarray:
    """Return the teacher direction ``v_t [d_t]`` carried into the student's space ``[d_s]``.

    ``Xt [n, d_t]``, ``Xs [n, d_s]``: the two models on the same (training) items. The map is
    the planning probe's: PCA(k) of each, ``R = argmin ||As R − At||`` orthogonal; a teacher
    vector ``u = v_t V_t / s_t`` in teacher PCA coordinates becomes ``u Rᵀ`` in the student's,
    then ``(u Rᵀ) V_sᵀ s_s`` in its residual space (a direction, so no mean is added).
    """
    tr = np.arange(len(Xt))
    k = int(min(max_dim, Xt.shape[1], Xs.shape[1], len(tr) - 1))
    pt, ps = _pca(Xt, tr, k), _pca(Xs, tr, k)
    At, As = pt(Xt), ps(Xs)
    u, _, vt = np.linalg.svd(As.T @ At)
    R = u @ vt
    u_t = pt(v_t[None, :]) - pt(np.zeros((1, Xt.shape[1])))      # linear part only
    u_s = u_t @ R.T
    # invert the student's PCA: coordinates -> residual direction (least squares on the basis)
    E = ps(np.eye(Xs.shape[1])) - ps(np.zeros((1, Xs.shape[1])))  # [d_s, k] = V_s / s_s
    return E @ np.linalg.solve(E.T @ E, u_s[0])


def directions(cache: Any, *, layer: int, tasks: Any, train_rows: np.ndarray,
               teacher_cache: Any = None, teacher_layer: int | None = None,
               n_random: int = 20, site: str = "last_prompt", max_dim: int = 64,
               seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Return ``({name: [d]}, info)``: own, ridge, teacher-mapped and random directions.

    ``train_rows``: rows of ``cache.items`` used to fit everything. All directions have the
    norm of the own difference of means (``info["norm"]``).
    """
    lab = make_labels(cache, target="human", tasks=tasks, standardize="task")
    keep = np.isin(lab.rows, train_rows)
    rows, y = lab.rows[keep], lab.y[keep]
    X = np.asarray(cache.resid(layer, site), np.float64)[rows]
    hard, easy = y > np.median(y), y < np.median(y)
    md = mean_difference(X, hard, easy)
    norm = float(np.linalg.norm(md))
    out = {"own_meandiff": md}
    lt = make_labels(cache, target="log_reasoning_tokens", standardize=None)
    kt = np.isin(lt.rows, train_rows)
    Xr = np.asarray(cache.resid(layer, site), np.float64)[lt.rows[kt]]
    if np.ptp(lt.y[kt]) > 0:
        out["own_ridge"] = RidgeProbe().fit(Xr, lt.y[kt]).coef_
    info = {"norm": norm, "n_train": int(len(rows)), "n_hard": int(hard.sum()),
            "n_easy": int(easy.sum())}
    if teacher_cache is not None:
        tl = make_labels(teacher_cache, target="human", tasks=tasks, standardize="task")
        ids = cache.items["item_id"].astype(str).to_numpy()[rows]
        ti = pd.Index(tl.item_ids).get_indexer(ids)
        ok = ti >= 0
        tlay = cache_layers(teacher_cache)[-1] if teacher_layer is None else teacher_layer
        Xt = np.asarray(teacher_cache.resid(tlay, site), np.float64)[tl.rows[ti[ok]]]
        v_t = mean_difference(Xt, hard[ok], easy[ok])
        out["teacher_mapped"] = map_direction(Xt, X[ok], v_t, max_dim)
        info.update(teacher_layer=int(tlay), n_mapped=int(ok.sum()))
    out = {k: v / np.linalg.norm(v) * norm for k, v in out.items()}
    for i, v in enumerate(random_directions(X.shape[1], n_random, norm, seed)):
        out[f"random_{i}"] = v
    return out, info


def analyze(rows: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame,
                                                                               pd.DataFrame]:
    """Return (curves, effects) from dose–response rows (``generation.dose_response``).

    curves: per direction × α — n, mean tokens and accuracy with bootstrap CIs over items
    (α = 0, the unsteered run, is shared by every direction). effects: per direction — the
    slope of mean ``log(1 + tokens)`` on α with CI, the random band (2.5–97.5% of the random
    directions' slopes) and ``p_random``.
    """
    base = rows[rows["direction"] == "none"].set_index("item_id")
    items = base.index.to_numpy()
    idx = bootstrap_indices(len(items), n_boot, seed)
    curves, effects = [], []
    for d in [x for x in dict.fromkeys(rows["direction"]) if x != "none"]:
        sub = rows[rows["direction"] == d]
        alphas = np.array(sorted(set(sub["alpha"]) | {0.0}))
        T = np.empty((len(items), len(alphas)))
        A = np.empty_like(T)
        for j, a in enumerate(alphas):
            s = base if a == 0 else sub[sub["alpha"] == a].set_index("item_id")
            T[:, j] = s.loc[items, "reasoning_tokens"].to_numpy(float)
            A[:, j] = s.loc[items, "correct"].to_numpy(float)
            tlo, thi = percentile_ci(T[idx, j].mean(1), len(items))
            alo, ahi = percentile_ci(A[idx, j].mean(1), len(items))
            curves.append({"direction": d, "kind": _kind(d), "alpha": a, "n": len(items),
                           "tokens": T[:, j].mean(), "tokens_ci_low": tlo,
                           "tokens_ci_high": thi, "accuracy": A[:, j].mean(),
                           "accuracy_ci_low": alo, "accuracy_ci_high": ahi})
        L = np.log1p(T)
        ac = alphas - alphas.mean()
        s_obs = float(ac @ L.mean(0) / (ac @ ac))
        s_boot = (L[idx].mean(1) @ ac) / (ac @ ac)
        lo, hi = percentile_ci(s_boot, len(items))
        effects.append({"direction": d, "kind": _kind(d), "n": len(items), "slope": s_obs,
                        "ci_low": lo, "ci_high": hi,
                        "acc_slope": float(ac @ A.mean(0) / (ac @ ac))})
    eff = pd.DataFrame(effects)
    rnd = eff[eff["kind"] == "random"]["slope"].to_numpy()
    if len(rnd):
        lo, hi = np.quantile(rnd, [0.025, 0.975])
        eff["random_low"], eff["random_high"] = lo, hi
        eff["p_random"] = [perm_p(s, rnd, "two-sided") for s in eff["slope"]]
        eff["beyond_band"] = (eff["slope"] > hi) | (eff["slope"] < lo)
    return pd.DataFrame(curves), eff


def _kind(name: str) -> str:
    return "random" if name.startswith("random_") else name


def plan(cache: Any, *, tasks: Any, teacher_cache: Any = None, layer: int | None = None,
         teacher_layer: int | None = None, alphas: Sequence[float] = ALPHAS,
         n_random: int = 20, train_frac: float = 0.5, positions: str = "all",
         max_new_tokens: int = 256, seed: int = 0, name: str | None = None
         ) -> tuple[dict[str, np.ndarray], list, dict]:
    """Return ``(directions, held-out items, meta)``: what :func:`run` steers, before any model.

    The directions and the split depend only on the caches, the labels and ``seed``, so a
    resumed run (the runner's intervene stage) steers along the same vectors; ``meta`` is
    the Result's meta without ``n_boot`` (see :func:`result`).
    """
    items_by_id = {str(it.item_id): it for it in _suite(tasks)}
    ids = cache.items["item_id"].astype(str).to_numpy()
    n_layers = len(cache_layers(cache)) - 1
    layer = max(1, round(n_layers / 2)) if layer is None else int(layer)
    if teacher_cache is not None and teacher_layer is None:
        teacher_layer = round(layer / n_layers * (len(cache_layers(teacher_cache)) - 1))
    train, test = split_items(len(ids), train_frac, seed)
    dirs, info = directions(cache, layer=layer, tasks=tasks, train_rows=train,
                            teacher_cache=teacher_cache, teacher_layer=teacher_layer,
                            n_random=n_random, seed=seed)
    test_items = [items_by_id[i] for i in ids[test] if i in items_by_id]
    if len(test_items) < 5:
        raise InputError(f"only {len(test_items)} held-out items to steer",
                         fix="use more items or a smaller train_frac")
    label = name or str(getattr(cache, "meta", {}).get("model", "model"))
    meta = {"probe": "steer", "model": label, "layer": layer, "teacher_layer": teacher_layer,
            "alphas": [float(a) for a in alphas], "alpha_unit": "norm of the own hard − easy "
            "difference of means at this layer", "n_random": n_random,
            "train_frac": train_frac, "n_test": len(test_items), "positions": positions,
            "max_new_tokens": max_new_tokens, "seed": seed, **info}
    return dirs, test_items, meta


def result(rows: pd.DataFrame, meta: dict, *, n_boot: int = 1000, seed: int = 0) -> Result:
    """Return the steering :class:`Result` of dose–response ``rows`` planned by :func:`plan`."""
    curves, eff = analyze(rows, n_boot=n_boot, seed=seed)
    label = meta["model"]
    curves.insert(0, "model", label)
    eff.insert(0, "model", label)
    main = eff[eff["kind"] != "random"].reset_index(drop=True)
    meta = {**meta, "n_boot": n_boot, "seed": seed}
    return Result("steer", main, tables={"effects": eff, "curves": curves, "rows": rows},
                  meta=meta, plotter=plot)


def run(model: Any, cache: Any, *, tasks: Any, teacher_cache: Any = None,
        layer: int | None = None, teacher_layer: int | None = None,
        alphas: Sequence[float] = ALPHAS, n_random: int = 20, train_frac: float = 0.5,
        positions: str = "all", max_new_tokens: int = 256, batch_size: int = 64,
        n_boot: int = 1000, seed: int = 0, name: str | None = None, tokenizer=None,
        progress_bar: bool = False) -> Result:
    """Return a :class:`Result`: effects of the named directions (``.table``), with the band.

    ``.tables``: ``effects`` (every direction, random ones included), ``curves`` (per
    direction × α: tokens and accuracy with CIs), ``rows`` (one per item × run).

    ``model``: the model the ``cache`` was captured from (path, hub id, ModelSpec, or a loaded
    model with ``tokenizer``); ``cache``: its own-traces cache (``last_prompt``, trace
    lengths); ``teacher_cache``: the teacher's, for ``teacher_mapped``. ``layer``: the cache
    layer to steer (default the middle one); ``teacher_layer``: default the depth-matched one.
    It is :func:`plan`, :func:`mimicry.intervene.generation.dose_response`, :func:`result`.
    """
    from mimicry.intervene import generation

    dirs, test_items, meta = plan(cache, tasks=tasks, teacher_cache=teacher_cache, layer=layer,
                                  teacher_layer=teacher_layer, alphas=alphas,
                                  n_random=n_random, train_frac=train_frac,
                                  positions=positions, max_new_tokens=max_new_tokens,
                                  seed=seed, name=name)
    be = generation.backend(model, tokenizer)
    rows = generation.dose_response(be, test_items, dirs, alphas, meta["layer"],
                                    positions=positions, max_new_tokens=max_new_tokens,
                                    batch_size=batch_size, progress=progress_bar)
    return result(rows, meta, n_boot=n_boot, seed=seed)


def _suite(tasks: Any):
    if isinstance(tasks, str):
        from mimicry.tasks.registry import load_suite

        return load_suite(tasks)
    if tasks is None:
        raise InputError("steering needs the items", fix="pass tasks=SUITE (or --tasks)")
    return tasks


def plot(result: Result):
    """Return a figure: reasoning tokens and accuracy vs α, random band in grey
    (:func:`probes.figures_mech.steer_figure`)."""
    from .figures_mech import steer_figure

    return steer_figure(result)
