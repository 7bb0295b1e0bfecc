"""Planning probe: does the state *before* any reasoning token predict how long the model will think?

From ``last_prompt`` residuals, per layer, cross-validated ridge (the difficulty probe's
machinery) predicts (a) the model's own upcoming log reasoning tokens and (b) human
difficulty. Teacher, student(s) and base are compared on the same items. Transfer: a probe
fitted on the teacher is scored on the student — per outer fold, both models' training items
are reduced to their top-k principal components, the student's space is mapped onto the
teacher's by orthogonal Procrustes (fitted on training items only), and the teacher's probe
predicts the student's held-out items.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mimicry.errors import InputError
from mimicry.stats import correlate

from . import difficulty
from .base import Result, cache_layers, group_kfold, make_labels
from .ridge import RidgeProbe
from .similarity import depth_match

TARGETS = ("log_reasoning_tokens", "human")


class PlanningProbe(RidgeProbe):
    """Ridge probe from ``last_prompt`` residuals ``[n, d_model]`` to log reasoning tokens.

    Same contract as :class:`probes.ridge.RidgeProbe` (``score`` = Spearman ρ).
    """


def _pca(M: np.ndarray, tr: np.ndarray, k: int):
    mu = M[tr].mean(0)
    _, _, vt = np.linalg.svd(M[tr] - mu, full_matrices=False)
    V = vt[:k].T
    scale = np.linalg.norm((M[tr] - mu) @ V) / np.sqrt(len(tr))
    return lambda A: ((A - mu) @ V) / scale


def transfer_predict(Xt: np.ndarray, yt: np.ndarray, Xs: np.ndarray, folds: np.ndarray, *,
                     max_dim: int = 64, alphas: Any = "auto") -> np.ndarray:
    """Return student out-of-fold predictions ``[n]`` of a teacher-fitted probe.

    ``Xt [n, d_t]``, ``yt [n]`` (teacher features and labels), ``Xs [n, d_s]`` (student, same
    items). Per fold: PCA(k) of each model on training items, Procrustes student → teacher
    on training items, ridge on the teacher's training items, prediction on the student's
    held-out items.
    """
    pred = np.empty(len(yt))
    for f in np.unique(folds):
        te, tr = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        k = int(min(max_dim, Xt.shape[1], Xs.shape[1], len(tr) - 1))
        pt, ps = _pca(Xt, tr, k), _pca(Xs, tr, k)
        At, As = pt(Xt[tr]), ps(Xs[tr])
        u, _, vt = np.linalg.svd(As.T @ At)
        R = u @ vt
        probe = RidgeProbe(alphas=alphas).fit(At, yt[tr])
        pred[te] = probe.predict(ps(Xs[te]) @ R)
    return pred


def run(caches: dict[str, Any], *, tasks: Any = None, teacher: str = "teacher",
        site: str = "last_prompt", targets: tuple[str, ...] = TARGETS,
        layers: dict[str, list[int]] | None = None, n_folds: int = 5, groups: Any = "auto",
        n_perm: int = 100, n_boot: int = 1000, transfer: bool = True, max_dim: int = 64,
        standardize: str | None = "task", seed: int = 0, progress_bar: bool = True) -> Result:
    """Return a :class:`Result`: ρ by model × target × layer; ``.tables["transfer"]`` teacher→student.

    ``caches``: ``{name: cache}`` (e.g. teacher, student, base); ``teacher`` names the one
    whose probe is transferred. The human target needs ``tasks``; targets whose labels are
    missing are skipped and listed in ``meta["skipped"]``.
    """
    if tasks is None:
        targets = tuple(t for t in targets if t != "human")
    rows, skipped, per = [], {}, {}
    for name, cache in caches.items():
        for target in targets:
            lay = (layers or {}).get(name)
            try:
                r = difficulty.run(cache, tasks=tasks, target=target, sites=[site], layers=lay,
                                   n_folds=n_folds, groups=groups, n_perm=n_perm, n_boot=n_boot,
                                   standardize=standardize, seed=seed, name=name,
                                   progress_bar=progress_bar)
            except InputError as e:
                skipped[f"{name}:{target}"] = e.problem
                continue
            per[(name, target)] = r
            t = r.table.copy()
            t["rel_depth"] = t["layer"] / max(1, t["layer"].max())
            t["role"] = name
            rows.append(t)
    if not rows:
        raise InputError(f"no planning target could be computed: {skipped}")
    table = pd.concat(rows, ignore_index=True)
    trans = []
    if transfer and teacher in caches:
        for name, cache in caches.items():
            if name == teacher:
                continue
            for target in targets:
                if (teacher, target) not in per or (name, target) not in per:
                    continue
                trans += _transfer(caches[teacher], cache, name, target, tasks, site, n_folds,
                                   groups, n_boot, max_dim, standardize, seed)
    meta = {"probe": "planning", "site": site, "teacher": teacher, "targets": list(targets),
            "n_folds": n_folds, "n_perm": n_perm, "n_boot": n_boot, "seed": seed,
            "skipped": skipped, "transfer_max_dim": max_dim,
            "models": {f"{k[0]}:{k[1]}": v.meta for k, v in per.items()},
            "transfer_p": "permutation p of the out-of-fold predictions (no refit)"}
    return Result("planning", table, tables={"transfer": pd.DataFrame(trans)}, meta=meta,
                  plotter=plot)


def _transfer(tc, sc, name, target, tasks, site, n_folds, groups, n_boot, max_dim,
              standardize, seed) -> list[dict]:
    lt = make_labels(tc, target=target, tasks=tasks, standardize=standardize)
    ls = make_labels(sc, target=target, tasks=tasks, standardize=standardize)
    shared = sorted(set(lt.item_ids) & set(ls.item_ids))
    if len(shared) < 2 * n_folds:
        return []
    it = pd.Index(lt.item_ids).get_indexer(shared)
    is_ = pd.Index(ls.item_ids).get_indexer(shared)
    g = np.asarray(shared) if groups in ("auto", "item") or len(np.unique(lt.tasks)) < n_folds \
        else lt.tasks[it]
    folds = group_kfold(g, n_folds, seed)
    la, lb = cache_layers(tc), cache_layers(sc)
    out = []
    for i, j, depth in depth_match(len(la) - 1, len(lb) - 1):
        Xt = np.asarray(tc.resid(la[i], site), np.float64)[lt.rows[it]]
        Xs = np.asarray(sc.resid(lb[j], site), np.float64)[ls.rows[is_]]
        row = {"student": name, "target": target, "teacher_layer": la[i],
               "student_layer": lb[j], "rel_depth": depth, "n": len(shared)}
        if not (np.ptp(Xt, axis=0).any() and np.ptp(Xs, axis=0).any()):
            # the same vector for every item (e.g. layer 0 at last_prompt): nothing to map
            out.append({**row, "rho": np.nan, "rho_ci_low": np.nan, "rho_ci_high": np.nan,
                        "p_perm": np.nan})
            continue
        pred = transfer_predict(Xt, lt.y[it], Xs, folds, max_dim=max_dim)
        c = correlate(pred, ls.y[is_], method="spearman", n_boot=n_boot, n_perm=1000, seed=seed)
        out.append({**row, "n": c.n, "rho": c.r, "rho_ci_low": c.ci_low,
                    "rho_ci_high": c.ci_high, "p_perm": c.p})
    return out


def summary(result: Result) -> pd.DataFrame:
    """Return per model × target the peak layer's ρ with CI and p (and the peak transfer ρ)."""
    t = result.table
    rows = []
    for (m, target), d in t.groupby(["role", "target"], sort=False):
        r = d.loc[d["rho"].idxmax()]
        rows.append({"model": m, "target": target, "layer": int(r["layer"]), "rho": r["rho"],
                     "rho_ci_low": r["rho_ci_low"], "rho_ci_high": r["rho_ci_high"],
                     "p_perm": r["p_perm"], "n": int(r["n"])})
    tr = result.tables.get("transfer")
    if tr is not None and len(tr):
        for (m, target), d in tr.groupby(["student", "target"], sort=False):
            r = d.loc[d["rho"].idxmax()]
            rows.append({"model": f"{m} (teacher probe)", "target": target,
                         "layer": int(r["student_layer"]), "rho": r["rho"],
                         "rho_ci_low": r["rho_ci_low"], "rho_ci_high": r["rho_ci_high"],
                         "p_perm": r["p_perm"], "n": int(r["n"])})
    return pd.DataFrame(rows)


def plot(result: Result):
    """Return a figure: ρ by relative depth per model, one panel per target; transfer dashed."""
    from .figures import planning_figure

    return planning_figure(result)
