"""Ridge CV against scikit-learn, grouped folds, permutation-null calibration, synthetic layer."""

from __future__ import annotations

import numpy as np
import pytest
from _probes_fake import make_fake
from scipy import stats
from sklearn.linear_model import Ridge

from probes import difficulty
from probes.base import group_kfold
from probes.ridge import RidgeProbe, inner_losses, ridge_cv_predict, spectrum


@pytest.mark.parametrize("n,d", [(40, 100), (150, 12)])
def test_ridge_matches_sklearn(n, d):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d)) * 2 + 0.5
    y = X[:, 0] - X[:, 1] + rng.standard_normal(n)
    p = RidgeProbe(alphas=[5.0]).fit(X, y)
    ref = Ridge(alpha=5.0).fit(X, y)
    np.testing.assert_allclose(p.coef_, ref.coef_, atol=1e-10)
    assert p.intercept_ == pytest.approx(ref.intercept_, abs=1e-10)
    Xt = rng.standard_normal((7, d))
    np.testing.assert_allclose(p.predict(Xt), ref.predict(Xt), atol=1e-10)
    folds = np.arange(n) % 4
    pred, _ = ridge_cv_predict(X, y, folds, alphas=[5.0])
    for f in range(4):
        m = folds == f
        np.testing.assert_allclose(pred[m], Ridge(alpha=5.0).fit(X[~m], y[~m]).predict(X[m]),
                                   atol=1e-9)


@pytest.mark.parametrize("n,d", [(30, 60), (60, 8)])
def test_inner_losses_match_refits(n, d):
    """LOO and leave-block-out closed forms equal explicit refits with sklearn."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, d))
    y = X[:, 0] + rng.standard_normal(n)
    sp = spectrum(None if n <= d else X, np.arange(n), gram=X @ X.T if n <= d else None)
    yc = (y - y.mean())[:, None]
    alphas = np.array([0.5, 20.0])
    blocks = np.arange(n) % 5
    lg = inner_losses(sp, yc, alphas, inner="group", blocks=blocks)[:, 0]
    ll = inner_losses(sp, yc, alphas, inner="loo")[:, 0]
    for i, a in enumerate(alphas):
        ref_g = sum(((Ridge(alpha=a).fit(X[blocks != b], y[blocks != b]).predict(X[blocks == b])
                      - y[blocks == b]) ** 2).sum() for b in range(5))
        ref_l = sum((Ridge(alpha=a).fit(np.delete(X, j, 0), np.delete(y, j)).predict(X[j:j + 1])[0]
                     - y[j]) ** 2 for j in range(n))
        assert lg[i] == pytest.approx(ref_g, rel=1e-9)
        assert ll[i] == pytest.approx(ref_l, rel=1e-9)


def test_alpha_selection_picks_sklearn_best():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 80))
    y = X[:, :5].sum(1) + 2 * rng.standard_normal(50)
    grid = np.logspace(-2, 3, 6)
    p = RidgeProbe(alphas=grid).fit(X, y)
    from sklearn.linear_model import RidgeCV

    ref = RidgeCV(alphas=grid).fit(X, y)   # efficient LOO, same criterion
    assert p.alpha_ == pytest.approx(ref.alpha_)


def test_group_kfold_keeps_groups_apart():
    rng = np.random.default_rng(4)
    groups = rng.integers(0, 23, size=300)
    folds = group_kfold(groups, 5, seed=7)
    for g in np.unique(groups):
        assert len(np.unique(folds[groups == g])) == 1
    sizes = np.bincount(folds)
    assert sizes.min() > 0.5 * sizes.max()
    assert not np.array_equal(folds, group_kfold(groups, 5, seed=8))


def test_permutation_p_uniform_under_null():
    """No signal at all: the difficulty probe's permutation p-values are ~U(0, 1)."""
    ps = []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        X = rng.standard_normal((40, 10))
        y = rng.standard_normal(40)
        folds = np.arange(40) % 4
        perms = np.array([rng.permutation(40) for _ in range(49)])
        s = difficulty.cv_scores(X, y, folds, perms=perms, alphas=[1.0, 100.0], n_boot=10,
                                 seed=seed)
        ps.append(s["p_perm"])
    assert stats.kstest(ps, "uniform").pvalue > 0.01


def test_difficulty_probe_finds_the_encoding_layer():
    cache, labels = make_fake(n=150, d=40, n_layers=5, signal_layer=3, strength=2.0)
    res = difficulty.run(cache, tasks=labels, n_perm=20, n_boot=200, progress_bar=False)
    t = res.table
    assert difficulty.peak(t)["layer"] == 3
    best = t[t.layer == 3].iloc[0]
    assert best["rho_ci_low"] > 0.5 and best["p_perm"] < 0.06
    others = t[t.layer != 3]
    assert (others["rho"] < 0.35).all()
    assert abs(best["length_rho"]) < 0.4   # prompt length is unrelated to difficulty here
    assert res.meta["groups"] == "item" and res.meta["n"] == 150
    fig = res.plot()
    assert fig.axes


def test_difficulty_random_cache_and_groups():
    cache, labels = make_fake(n=100, d=30, n_layers=2, signal_layer=1, n_tasks=6)
    rnd, _ = make_fake(n=100, d=30, n_layers=2, signal_layer=99, n_tasks=6, seed=5)
    res = difficulty.run(cache, tasks=labels, random_cache=rnd, n_perm=5, n_boot=50,
                         inner="group", progress_bar=False)
    assert res.meta["groups"] == "task"
    row = res.table[res.table.layer == 1].iloc[0]
    assert row["rho"] > 0.6 and abs(row["random_rho"]) < 0.4


def test_probe_is_a_sklearn_estimator():
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    rng = np.random.default_rng(5)
    X = rng.standard_normal((90, 30))
    y = X[:, 0] + 0.5 * rng.standard_normal(90)
    probe = difficulty.DifficultyProbe(alphas=[0.1, 10.0], inner="group", inner_folds=3)
    assert clone(probe).get_params() == probe.get_params()
    assert not hasattr(probe, "coef_")                      # no work in __init__
    scores = cross_val_score(probe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.6      # score = Spearman ρ
    fitted = probe.fit(X, y)
    assert fitted is probe and probe.alpha_ in (0.1, 10.0) and probe.coef_.shape == (30,)
