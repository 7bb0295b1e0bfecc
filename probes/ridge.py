"""Cross-validated ridge regression through one eigendecomposition per training fold.

For a training fold with centred features ``Xc [n_tr, d]`` write ``Xc = U S Vᵀ``. The ridge
fit for any α then is ``ŷ = ȳ + X_te V · diag(s/(s²+α)) · Uᵀ y_c``, so every α of a grid
costs one small matrix product. When ``n_tr ≤ d`` (the usual case for LLM residuals) ``U`` and
``s²`` come from the ``n_tr × n_tr`` centred Gram matrix (dual form), sliced out of one Gram
``K = X Xᵀ`` per layer; otherwise from ``Xcᵀ Xc`` (primal form). The intercept is not
penalised. Inner α selection runs on the training fold only:

- ``inner="loo"`` (default): exact leave-one-out residuals ``e_i / (1 − h_ii)`` with
  ``H = 11ᵀ/n + U diag(s²/(s²+α)) Uᵀ`` (as in scikit-learn's ``RidgeCV``);
- ``inner="group"``: exact leave-one-inner-fold-out residuals ``(I − H_bb)⁻¹ e_b`` over a
  grouped K-fold of the training groups (slower: one ``|b|×|b|`` solve per α and fold).

Several targets (e.g. the real labels and their permutations) are columns of ``Y`` and each
picks its own α, so a permutation null includes the α search.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from threadpoolctl import threadpool_limits

from mimicry.stats import spearman_cols

from .base import ProbeEstimator, group_kfold

ALPHA_GRID = np.logspace(-3, 4, 15)  # relative to the mean eigenvalue per item (see below)


class _Spectrum:
    """Eigen-decomposition of one centred training fold: ``U [n_tr, r]``, ``w = s² [r]``."""

    def __init__(self, U, w, proj=None, V=None, mu=None):
        self.U, self.w, self.proj, self.V, self.mu = U, w, proj, V, mu


def _eigh(A: np.ndarray, energy: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a centred PSD matrix, dropping those below 1e-12 × ``energy`` (its
    uncentred trace): features that are constant over items (e.g. layer 0 at ``last_prompt``,
    the same template token for every item) then give no directions, not rounding noise."""
    # Below ~2k rows LAPACK's eigh gains little from BLAS threads, and on a shared CPU a
    # multi-threaded OpenBLAS eigh was measured 10x slower (spin-waiting): use one thread.
    with threadpool_limits(limits=1 if len(A) <= 2048 else None, user_api="blas"):
        w, U = sla.eigh(A, driver="evd", overwrite_a=True, check_finite=False)
    keep = w > max(float(w.max()) * 1e-10, energy * 1e-12, 1e-300)
    return w[keep], U[:, keep]


def spectrum(X: np.ndarray | None, tr: np.ndarray, te: np.ndarray | None = None, *,
             gram: np.ndarray | None = None) -> _Spectrum:
    """Return the spectrum of the centred training rows ``tr`` (dual form when ``gram`` is given).

    ``X [n, d]``; ``gram [n, n] = X Xᵀ``. ``proj [n_te, r] = (X_te − μ_tr) V`` for test rows.
    """
    if gram is not None:
        Ktr = gram[np.ix_(tr, tr)]
        rm = Ktr.mean(1)
        m = rm.mean()
        w, U = _eigh(Ktr - rm[:, None] - rm[None, :] + m, float(np.trace(Ktr)))
        s = np.sqrt(w)
        proj = None
        if te is not None and len(te):
            Kte = gram[np.ix_(te, tr)]
            proj = (Kte - Kte.mean(1)[:, None] - rm[None, :] + m) @ U / s
        return _Spectrum(U, w, proj)
    mu = X[tr].mean(0)
    Xc = X[tr] - mu
    w, V = _eigh(Xc.T @ Xc, float((X[tr] ** 2).sum()))
    U = Xc @ V / np.sqrt(w)
    proj = (X[te] - mu) @ V if te is not None and len(te) else None
    return _Spectrum(U, w, proj, V, mu)


def alpha_grid(sp: _Spectrum, alphas) -> np.ndarray:
    """Return absolute α values: ``alphas`` itself, or the relative grid × mean eigenvalue/item."""
    if isinstance(alphas, str) and alphas == "auto":
        return ALPHA_GRID * (sp.w.sum() / sp.U.shape[0])
    return np.atleast_1d(np.asarray(alphas, float))


def inner_losses(sp: _Spectrum, Yc: np.ndarray, alphas: np.ndarray, *, inner: str = "loo",
                 blocks: np.ndarray | None = None) -> np.ndarray:
    """Return the inner-CV squared error ``[n_alpha, m]`` of each α for each column of ``Yc``."""
    U, w = sp.U, sp.w
    n, r = U.shape
    m = Yc.shape[1]
    Z = U.T @ Yc                                               # [r, m]
    F = w[None, :] / (w[None, :] + alphas[:, None])            # [n_a, r]
    if inner == "loo" or blocks is None:
        h = 1.0 / n + (U**2) @ F.T                             # [n, n_a] diagonal of H
        fitted = (U @ (F.T[:, :, None] * Z[:, None, :]).reshape(r, len(alphas) * m)
                  ).reshape(n, len(alphas), m)
        E = (Yc[:, None, :] - fitted) / (1 - h)[:, :, None]    # LOO residuals [n, n_a, m]
        return np.einsum("iam,iam->am", E, E)
    out = np.empty((len(alphas), m))
    idx = [np.flatnonzero(blocks == b) for b in np.unique(blocks)]
    for i, f in enumerate(F):
        E = Yc - U @ (f[:, None] * Z)                          # training residuals [n, m]
        tot = np.zeros(m)
        for b in idx:
            Ub = U[b]
            M = np.eye(len(b)) - 1.0 / n - (Ub * f) @ Ub.T
            tot += (np.linalg.solve(M, E[b]) ** 2).sum(0)
        out[i] = tot
    return out


def _inner_blocks(groups: np.ndarray, inner_folds: int, seed: int) -> np.ndarray:
    """Return inner fold ids ``[n_tr]``: a grouped K-fold of the training rows' groups."""
    return group_kfold(groups, min(inner_folds, len(np.unique(groups))), seed)


def _solve(sp: _Spectrum, Yc: np.ndarray, alphas: np.ndarray, *, inner: str = "loo",
           blocks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the best α index per column ``[m]``, the spectral coefficients ``C [r, m]`` and
    the inner losses ``[n_alpha, m]`` of one training fold.

    The one ridge solver of this module: :class:`RidgeProbe` and :func:`ridge_cv_predict`
    both call it, so the estimator and the cross-validated path cannot drift. Predictions
    for test rows are ``ȳ + proj @ C`` with ``C = diag(s/(s²+α)) Uᵀ Yc``.
    """
    losses = inner_losses(sp, Yc, alphas, inner=inner, blocks=blocks)      # [n_a, m]
    best = losses.argmin(0)                                                 # [m]
    G = np.sqrt(sp.w)[None, :] / (sp.w[None, :] + alphas[:, None])          # [n_a, r]
    C = G[best].T * (sp.U.T @ Yc)                                           # [r, m]
    return best, C, losses


def ridge_cv_predict(X: np.ndarray | None, Y: np.ndarray, folds: np.ndarray, *,
                     groups: np.ndarray | None = None, alphas="auto", inner: str = "loo",
                     inner_folds: int = 5, gram: np.ndarray | None = None, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Return out-of-fold predictions ``[n, m]`` and the α chosen per fold and column ``[K, m]``.

    ``X [n, d]`` (may be None when ``gram [n, n]`` is given), ``Y [n, m]`` or ``[n]``,
    ``folds [n]`` outer fold ids. The dual form is used when a fold has fewer rows than
    features (a Gram is then computed once if not given). Each fold is solved by the same
    private ``_solve`` as :meth:`RidgeProbe.fit` (seed of fold ``k``'s inner grouped folds:
    ``seed + 1 + k``), so ``pred[test]`` equals that fold's fitted ``RidgeProbe.predict``.
    """
    Y = np.asarray(Y, float)
    one = Y.ndim == 1
    Y = Y[:, None] if one else Y
    n = Y.shape[0]
    if gram is None and X is not None and X.shape[1] >= n - n // max(2, len(np.unique(folds))):
        X = np.asarray(X, np.float64)
        gram = X @ X.T
    pred = np.empty_like(Y)
    fold_ids = np.unique(folds)
    chosen = np.empty((len(fold_ids), Y.shape[1]))
    for k, f in enumerate(fold_ids):
        te, tr = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        sp = spectrum(None if gram is not None else np.asarray(X, np.float64), tr, te, gram=gram)
        a = alpha_grid(sp, alphas)
        ybar = Y[tr].mean(0)
        Yc = Y[tr] - ybar
        blocks = None
        if inner == "group":
            blocks = _inner_blocks(groups[tr] if groups is not None else tr, inner_folds,
                                   seed + 1 + k)
        best, C, _ = _solve(sp, Yc, a, inner=inner, blocks=blocks)
        chosen[k] = a[best]
        pred[te] = ybar + sp.proj @ C
    return (pred[:, 0], chosen[:, 0]) if one else (pred, chosen)


class RidgeProbe(ProbeEstimator):
    """Linear ridge probe with inner α selection; ``score`` is the Spearman ρ of predictions.

    Hyper-parameters: ``alphas`` (``"auto"``: a grid relative to the data's scale, or absolute
    values), ``inner`` (``"loo"`` or ``"group"``), ``inner_folds``, ``random_state``.
    Learned: ``alpha_``, ``alphas_`` (the absolute grid), ``cv_losses_`` (inner-CV mean squared
    error per α), ``coef_ [d]``, ``intercept_``, ``n_features_in_``. ``fit`` and
    :func:`ridge_cv_predict` share one solver (``_solve``): fold ``k`` of the latter equals
    ``RidgeProbe(alphas, inner, inner_folds, random_state=seed + 1 + k)`` fitted on that fold's
    training rows (with ``groups=groups[train]`` for ``inner="group"``).
    """

    def __init__(self, alphas="auto", inner: str = "loo", inner_folds: int = 5,
                 random_state: int = 0):
        self.alphas = alphas
        self.inner = inner
        self.inner_folds = inner_folds
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> RidgeProbe:
        """Fit on ``X [n, d]``, ``y [n]`` (α chosen by inner CV on these rows); return self."""
        X, y = self._xy(X, y)
        n, d = X.shape
        rows = np.arange(n)
        dual = n <= d
        sp = spectrum(None if dual else X, rows, None, gram=X @ X.T if dual else None)
        a = alpha_grid(sp, self.alphas)
        ybar = y.mean()
        Yc = (y - ybar)[:, None]
        blocks = None
        if self.inner == "group":
            blocks = _inner_blocks(rows if groups is None else np.asarray(groups),
                                   self.inner_folds, self.random_state)
        best, C, losses = _solve(sp, Yc, a, inner=self.inner, blocks=blocks)
        self.alpha_ = float(a[best[0]])
        self.cv_losses_ = losses[:, 0] / n
        self.alphas_ = a
        mu = X.mean(0)
        if dual:   # coef = Xcᵀ U diag(1/s) C
            self.coef_ = (X - mu).T @ (sp.U @ (C[:, 0] / np.sqrt(sp.w)))
        else:      # coef = V C
            self.coef_ = sp.V @ C[:, 0]
        self.intercept_ = float(ybar - mu @ self.coef_)
        self.n_features_in_ = d
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return predictions ``[n]`` for ``X [n, d]``."""
        self._check_fitted()
        return self._xy(X)[0] @ self.coef_ + self.intercept_

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Return the Spearman ρ between ``predict(X)`` and ``y``."""
        X, y = self._xy(X, y)
        return float(spearman_cols(y, self.predict(X))[0])
