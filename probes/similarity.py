"""Representational similarity between two models, layer by layer: CKA, RSA, Procrustes.

Linear CKA (Kornblith et al. 2019) compares Gram matrices ``K = X Xᵀ`` over the same items.
The default is the *debiased* estimator: HSIC is the unbiased estimator of Song et al. (2012),
written as the inner product of U-centred Grams (Székely & Rizzo 2014; used for CKA by Nguyen
et al. 2021)::

    HSIC_u(K, L) = <Ũ(K), Ũ(L)> / (n (n − 3)),   CKA = HSIC_u(K,L) / √(HSIC_u(K,K) HSIC_u(L,L))

Everything is float64. Each layer's Gram is computed and centred once; the whole
``L_a × L_b`` CKA matrix is then one matrix product of the vectorised centred Grams. RSA uses
correlation-distance RDMs compared with Spearman ρ (also one product of ranked, standardised
RDM vectors). Cross-validated orthogonal Procrustes maps one model's PCA space onto the
other's on training items and scores held-out items. Controls: row-shuffled (permutation) CKA
nulls and Procrustes with shuffled test rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mimicry.errors import InputError
from mimicry.stats import perm_p

from .base import ProbeEstimator, Result, align_items, cache_layers, model_name, progress


def gram(X: np.ndarray) -> np.ndarray:
    """Return the linear Gram matrix ``X Xᵀ`` ``[n, n]`` in float64 for ``X [n, d]``."""
    X = np.asarray(X, np.float64)
    return X @ X.T


def center_gram(K: np.ndarray, debiased: bool = True) -> np.ndarray:
    """Return the U-centred (``debiased``) or doubly centred (``H K H``) Gram ``[n, n]``.

    Entries at the level of float64 rounding of ``K`` (≤ 1e-12 × max|K|) are set to 0: for
    identical rows (e.g. the same template token at layer 0) the exact centred Gram is 0 and
    CKA is undefined (NaN), whatever residue the BLAS summation order leaves behind.
    """
    K = np.array(K, np.float64, copy=True)
    n = K.shape[0]
    tol = 1e-12 * (np.abs(K).max() if K.size else 0.0)
    if not debiased:
        r = K.mean(1)
        K = K - r[:, None] - r[None, :] + r.mean()
    else:
        if n < 4:
            raise ValueError("debiased CKA needs at least 4 items")
        np.fill_diagonal(K, 0.0)
        r = K.sum(1)
        K -= r[:, None] / (n - 2)
        K -= r[None, :] / (n - 2)
        K += r.sum() / ((n - 1) * (n - 2))
        np.fill_diagonal(K, 0.0)
    if K.size and np.abs(K).max() <= tol:
        K[:] = 0.0
    return K


def cka(X: np.ndarray, Y: np.ndarray, debiased: bool = True) -> float:
    """Return linear CKA between ``X [n, d1]`` and ``Y [n, d2]`` (rows = the same items)."""
    if len(X) != len(Y):
        raise ValueError(f"X has {len(X)} rows, Y has {len(Y)}")
    A, B = center_gram(gram(X), debiased), center_gram(gram(Y), debiased)
    return _cka_from_centered(A, B)


def _cka_from_centered(A: np.ndarray, B: np.ndarray) -> float:
    ab, aa, bb = (A * B).sum(), (A * A).sum(), (B * B).sum()
    if aa <= 0 or bb <= 0:
        return float("nan")
    return float(ab / np.sqrt(aa * bb))


def cka_matrix(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Return CKA ``[La, Lb]`` from stacked centred Grams ``A [La, n, n]``, ``B [Lb, n, n]``."""
    a = A.reshape(len(A), -1)
    b = B.reshape(len(B), -1)
    num = a @ b.T
    na = np.sqrt(np.maximum(np.einsum("ij,ij->i", a, a), 0))
    nb = np.sqrt(np.maximum(np.einsum("ij,ij->i", b, b), 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / np.outer(na, nb)


def _rdm_vec(X: np.ndarray) -> np.ndarray:
    """Return the standardised ranks of the upper triangle of the correlation-distance RDM."""
    Xc = X - X.mean(1, keepdims=True)
    Xc /= np.maximum(np.linalg.norm(Xc, axis=1, keepdims=True), 1e-300)  # constant rows -> 0
    iu = np.triu_indices(len(X), 1)
    v = stats.rankdata(1.0 - (Xc @ Xc.T)[iu])
    v -= v.mean()
    nv = np.linalg.norm(v)
    return v / nv if nv > 0 else np.full_like(v, np.nan)


def rsa_matrix(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Return Spearman RSA ``[La, Lb]`` from stacked outputs of the RDM ranking step."""
    return Ra @ Rb.T


class ProcrustesProbe(ProbeEstimator):
    """Estimator: map ``X`` onto ``Y`` by orthogonal Procrustes; ``score`` = held-out cosine.

    ``X [n, d1]`` and ``Y [n, d2]`` (one model's and the other's residuals over the same items;
    ``Y`` is the 2-D target). ``fit`` centres both on its rows, reduces each to its top
    ``k = min(max_dim, d1, d2, n − 1)`` principal components, scales them to unit norm and fits
    the rotation ``R = argmin ||X R − Y||`` (orthogonal). Hyper-parameter: ``max_dim``.
    Learned: ``k_``, ``mean_x_``, ``components_x_ [d1, k]``, ``scale_x_`` (and ``_y_``),
    ``rotation_ [k, k]``, ``n_features_in_``.

    ``transform(X)``/``transform_y(Y)``: the rows in the shared ``k``-dim space (X rotated);
    ``score(X, Y)``: ``<X R, Y> / (||X R|| ||Y||)`` over all of the given rows (1 = identical up
    to rotation, ≈ 0 unrelated). :func:`procrustes_cv` fits this estimator on every training
    fold and pools the same three sums over the held-out folds.
    """

    def __init__(self, max_dim: int = 64):
        self.max_dim = max_dim

    def fit(self, X: np.ndarray, Y: np.ndarray) -> ProcrustesProbe:
        """Fit the PCA of each side and the rotation from ``X [n, d1]`` to ``Y [n, d2]``; return self."""
        X, Y = self._xy(X)[0], self._xy(Y)[0]
        if len(X) != len(Y):
            raise InputError(f"X has {len(X)} rows but Y has {len(Y)}",
                             fix="pass the same items, in the same order, for both models")
        self.k_ = int(min(self.max_dim, X.shape[1], Y.shape[1], len(X) - 1))
        pa = []
        for tag, M in (("x", X), ("y", Y)):
            mu = M.mean(0)
            _, _, vt = np.linalg.svd(M - mu, full_matrices=False)
            V = vt[:self.k_].T
            scale = np.linalg.norm((M - mu) @ V)
            setattr(self, f"mean_{tag}_", mu)
            setattr(self, f"components_{tag}_", V)
            setattr(self, f"scale_{tag}_", scale)
            pa.append(((M - mu) @ V) / scale)
        u, _, vt = np.linalg.svd(pa[0].T @ pa[1])
        self.rotation_ = u @ vt
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``X [n, d1]`` in the shared space, rotated onto ``Y``'s components ``[n, k]``."""
        self._check_fitted()
        X = self._xy(X)[0]
        return (((X - self.mean_x_) @ self.components_x_) / self.scale_x_) @ self.rotation_

    def transform_y(self, Y: np.ndarray) -> np.ndarray:
        """Return ``Y [n, d2]`` in its fitted principal components ``[n, k]``."""
        self._check_fitted()
        Y = self._xy(Y)[0]
        return ((Y - self.mean_y_) @ self.components_y_) / self.scale_y_

    def _sums(self, X: np.ndarray, Y: np.ndarray, perm: np.ndarray | None = None
              ) -> tuple[float, float, float]:
        """Return ``(<X R, Y>, ||X R||², ||Y||²)`` in the shared space (the score's parts).

        ``perm``: reorder the projected rows of ``Y`` (procrustes_cv's shuffled control).
        """
        xt, yt = self.transform(X), self.transform_y(Y)
        if perm is not None:
            yt = yt[perm]
        return float((xt * yt).sum()), float((xt * xt).sum()), float((yt * yt).sum())

    def score(self, X: np.ndarray, Y: np.ndarray) -> float:
        """Return the cosine ``<X R, Y> / (||X R|| ||Y||)`` over the rows of ``X``, ``Y``."""
        num, nx, ny = self._sums(X, Y)
        return float(num / np.sqrt(nx * ny))


def procrustes_cv(X: np.ndarray, Y: np.ndarray, *, n_folds: int = 5, max_dim: int = 64,
                  seed: int = 0, shuffle_test: bool = False) -> float:
    """Return the held-out cosine between ``X`` mapped by orthogonal Procrustes and ``Y``.

    ``X [n, d1]``, ``Y [n, d2]``. Per fold, :class:`ProcrustesProbe` is fitted on the training
    items; the score is ``<X_te R, Y_te> / (||X_te R|| ||Y_te||)`` pooled over folds (1 =
    identical up to rotation, ≈ 0 unrelated). ``shuffle_test`` permutes the held-out rows of
    Y (the control).
    """
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    n = len(X)
    if not (np.ptp(X, axis=0).any() and np.ptp(Y, axis=0).any()):
        return float("nan")               # the same vector for every item: undefined
    rng = np.random.default_rng(seed)
    folds = rng.permutation(n) % n_folds
    num = nx = ny = 0.0
    for f in range(n_folds):
        te, tr = folds == f, folds != f
        probe = ProcrustesProbe(max_dim=max_dim).fit(X[tr], Y[tr])
        perm = rng.permutation(int(te.sum())) if shuffle_test else None
        a, b, c = probe._sums(X[te], Y[te], perm)
        num += a
        nx += b
        ny += c
    return float(num / np.sqrt(nx * ny))


def depth_match(n_a: int, n_b: int) -> list[tuple[int, int, float]]:
    """Return (layer_a, layer_b, relative depth) matching ``0..n_a`` to ``0..n_b`` by relative depth."""
    return [(i, int(round(i / n_a * n_b)), i / n_a) for i in range(n_a + 1)]


def _half_sample_ci(Ka: np.ndarray, Kb: np.ndarray, est: float, debiased: bool, n_boot: int,
                    seed: int) -> tuple[float, float]:
    """Half-sampling interval: spread of CKA on random halves (without replacement) around est."""
    n = len(Ka)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        s = np.sort(rng.choice(n, n // 2, replace=False))
        vals.append(_cka_from_centered(center_gram(Ka[np.ix_(s, s)], debiased),
                                       center_gram(Kb[np.ix_(s, s)], debiased)))
    d = np.asarray(vals) - np.nanmean(vals)
    return float(est + np.nanquantile(d, 0.025)), float(est + np.nanquantile(d, 0.975))


def run(teacher: Any, student: Any, *, site: str = "last_prompt", debiased: bool = True,
        layers_teacher: list[int] | None = None, layers_student: list[int] | None = None,
        n_perm: int = 100, n_boot: int = 100, procrustes: bool = True, max_dim: int = 64,
        seed: int = 0, names: tuple[str, str] | None = None, progress_bar: bool = True) -> Result:
    """Return a :class:`Result`: depth-matched CKA/RSA/Procrustes rows with controls and CIs.

    ``teacher``, ``student``: caches over the *same* inputs (capture the student on the
    teacher's traces, or use ``last_prompt``). ``.tables["matrix"]`` holds every layer pair;
    ``.arrays["cka"]``/``["rsa"]`` the matrices ``[L_teacher, L_student]``.
    """
    rows = align_items({"t": teacher, "s": student})
    n = len(rows["t"])
    if n < 10:
        raise InputError(f"teacher and student caches share only {n} items",
                         fix="capture both over the same traces/items")
    la = cache_layers(teacher) if layers_teacher is None else list(layers_teacher)
    lb = cache_layers(student) if layers_student is None else list(layers_student)
    # items with an empty segment have NaN residuals at this site: excluded, counted
    ok = np.isfinite(np.asarray(teacher.resid(la[0], site))[rows["t"]]).all(1) & np.isfinite(
        np.asarray(student.resid(lb[0], site))[rows["s"]]).all(1)
    n_empty = int((~ok).sum())
    rows = {k: v[ok] for k, v in rows.items()}
    n = len(rows["t"])
    if n < 10:
        raise InputError(f"only {n} shared items have {site} residuals in both caches "
                         f"({n_empty} have an empty segment)", fix="use another --site")
    names = names or (model_name(teacher, "teacher"), model_name(student, "student"))
    raw, cen, rdms = {}, {}, {}
    for tag, cache, layers in (("t", teacher, la), ("s", student, lb)):
        raw[tag] = np.empty((len(layers), n, n))
        for i, layer in enumerate(progress(layers, progress_bar, desc=f"grams {tag}", leave=False)):
            X = np.asarray(cache.resid(layer, site), np.float64)[rows[tag]]
            raw[tag][i] = gram(X)
            rdms.setdefault(tag, []).append(_rdm_vec(X))
        cen[tag] = np.stack([center_gram(K, debiased) for K in raw[tag]])
    M = cka_matrix(cen["t"], cen["s"])
    R = rsa_matrix(np.stack(rdms["t"]), np.stack(rdms["s"]))
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(n_perm)]
    out = []
    for i, j, depth in depth_match(len(la) - 1, len(lb) - 1):
        A, B = cen["t"][i], cen["s"][j]
        null = np.array([_cka_from_centered(A, B[np.ix_(p, p)]) for p in perms])
        lo, hi = _half_sample_ci(raw["t"][i], raw["s"][j], M[i, j], debiased, n_boot, seed + i)
        row = {"teacher": names[0], "student": names[1], "site": site, "teacher_layer": la[i],
               "student_layer": lb[j], "rel_depth": depth, "n": n, "cka": M[i, j],
               "cka_ci_low": lo, "cka_ci_high": hi,
               "cka_perm_mean": float(null.mean()) if n_perm else np.nan,
               "p_perm": perm_p(M[i, j], null, "greater") if n_perm else np.nan,
               "rsa": R[i, j]}
        if procrustes:
            Xa = np.asarray(teacher.resid(la[i], site), np.float64)[rows["t"]]
            Xb = np.asarray(student.resid(lb[j], site), np.float64)[rows["s"]]
            row["procrustes"] = procrustes_cv(Xa, Xb, max_dim=max_dim, seed=seed)
            row["procrustes_shuffled"] = procrustes_cv(Xa, Xb, max_dim=max_dim, seed=seed,
                                                       shuffle_test=True)
        out.append(row)
    matrix = pd.DataFrame([{"teacher_layer": la[i], "student_layer": lb[j], "cka": M[i, j],
                            "rsa": R[i, j]} for i in range(len(la)) for j in range(len(lb))])
    meta = {"probe": "similarity", "site": site, "debiased": debiased, "n": n, "n_perm": n_perm,
            "n_boot_half_samples": n_boot, "seed": seed, "excluded_empty_segment": n_empty, "names": list(names),
            "ci": "half-sampling interval (random halves without replacement)",
            "procrustes_max_dim": max_dim}
    return Result("similarity", pd.DataFrame(out), tables={"matrix": matrix}, meta=meta,
                  plotter=plot, arrays={"cka": M, "rsa": R, "layers_teacher": la,
                                        "layers_student": lb})


def plot(result: Result):
    """Return a figure: CKA and RSA heatmaps (teacher × student layers) and the matched curve."""
    from .figures import similarity_figure

    return similarity_figure(result)
