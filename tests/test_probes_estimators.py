"""Every probe class is a scikit-learn estimator, and every probe's run() gives its numbers.

For each class: ``clone`` and ``get_params``/``set_params`` round-trip with parameters stored
unchanged and no learned state before ``fit``; ``cross_val_score`` (and a ``Pipeline``) gives,
fold by fold, the number computed here independently with scikit-learn, scipy or numpy on the
same folds; and the probe's ``run()`` reports what the estimator gives on the same data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _probes_fake import make_fake
from scipy import stats
from scipy.linalg import orthogonal_procrustes
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, PredefinedSplit, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mimicry.errors import InputError
from probes import ablation, difficulty, entropy, planning, reliance, similarity
from probes.base import group_kfold, make_labels
from probes.ridge import RidgeProbe

GRID = [0.1, 3.0, 100.0]
ESTIMATORS = [   # every probe class, with non-default hyper-parameters
    (RidgeProbe, dict(alphas=GRID, inner="group", inner_folds=3, random_state=4)),
    (difficulty.DifficultyProbe, dict(alphas=GRID)),
    (planning.PlanningProbe, dict(alphas="auto", inner_folds=4)),
    (entropy.EntropyProbe, dict(covariate=False)),
    (ablation.ContentAblation, dict(alphas=GRID, n_ref_features=7, random_state=2)),
    (reliance.Reliance, dict(n_boot=123, random_state=9)),
    (similarity.ProcrustesProbe, dict(max_dim=5)),
]


def _id(spec):
    return spec[0].__name__


def _kfold_splits(n, k=4):
    return list(KFold(k, shuffle=True, random_state=0).split(np.zeros(n)))


def _partial_spearman_ref(x, y, z):
    """Textbook partial correlation of the ranks of x and y given the ranks of z."""
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    rxy, rxz, ryz = (np.corrcoef(a, b)[0, 1] for a, b in ((rx, ry), (rx, rz), (ry, rz)))
    return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("spec", ESTIMATORS, ids=_id)
def test_clone_and_params_round_trip(spec):
    cls, kwargs = spec
    est = cls(**kwargs)
    params = est.get_params()
    assert set(params) >= set(kwargs)
    for k, v in kwargs.items():                 # stored unchanged, nothing derived in __init__
        assert getattr(est, k) is v and params[k] is v
    assert not [a for a in vars(est) if a.endswith("_")]   # no learned state before fit
    c = clone(est)
    assert type(c) is cls and c is not est and c.get_params() == params
    assert cls().set_params(**params).get_params() == params
    with pytest.raises(ValueError, match="Invalid parameter"):
        c.set_params(no_such_option=1)


@pytest.mark.parametrize("spec", ESTIMATORS, ids=_id)
def test_unfitted_estimator_refuses_to_score(spec):
    from sklearn.exceptions import NotFittedError

    cls, kwargs = spec
    X = np.zeros((12, 14))
    with pytest.raises(NotFittedError):
        cls(**kwargs).score(X, X if cls is similarity.ProcrustesProbe else np.zeros(12))


def test_bad_shapes_are_input_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="X has 10 rows but y has 9"):
        RidgeProbe().fit(rng.standard_normal((10, 3)), rng.standard_normal(9))
    with pytest.raises(InputError, match="cannot split X's 7 columns"):
        ablation.ContentAblation().fit(rng.standard_normal((20, 7)), rng.standard_normal(20))
    with pytest.raises(InputError, match="expected difficulty and optionally"):
        entropy.EntropyProbe().fit(rng.standard_normal((20, 3)), rng.standard_normal(20))
    with pytest.raises(InputError, match="X has 20 rows but Y has 19"):
        similarity.ProcrustesProbe().fit(rng.standard_normal((20, 3)),
                                         rng.standard_normal((19, 3)))


# --------------------------------------------------------------------------- cross_val_score


@pytest.mark.parametrize("cls", [RidgeProbe, difficulty.DifficultyProbe, planning.PlanningProbe])
def test_ridge_probes_cross_val_score_equals_sklearn(cls):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 50))
    y = X[:, :3].sum(1) + rng.standard_normal(80)
    splits = _kfold_splits(80)
    got = cross_val_score(cls(alphas=GRID), X, y, cv=splits)
    want = [stats.spearmanr(y[te], RidgeCV(alphas=GRID).fit(X[tr], y[tr]).predict(X[te]))[0]
            for tr, te in splits]
    np.testing.assert_allclose(got, want, atol=1e-10)
    # in a Pipeline: the scaler is fitted on each training fold only
    got = cross_val_score(make_pipeline(StandardScaler(), cls(alphas=GRID)), X, y, cv=splits)
    want = []
    for tr, te in splits:
        sc = StandardScaler().fit(X[tr])
        m = RidgeCV(alphas=GRID).fit(sc.transform(X[tr]), y[tr])
        want.append(stats.spearmanr(y[te], m.predict(sc.transform(X[te])))[0])
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_entropy_probe_cross_val_score_equals_scipy():
    rng = np.random.default_rng(2)
    d, ll = rng.standard_normal(120), rng.standard_normal(120)
    e = 0.4 * d + 0.6 * ll + rng.standard_normal(120)
    X = np.column_stack([d, ll])
    splits = _kfold_splits(120)
    got = cross_val_score(entropy.EntropyProbe(), X, e, cv=splits)
    want = [_partial_spearman_ref(e[te], d[te], ll[te]) for _, te in splits]
    np.testing.assert_allclose(got, want, atol=1e-12)
    got = cross_val_score(entropy.EntropyProbe(covariate=False), X, e, cv=splits)
    np.testing.assert_allclose(got, [stats.spearmanr(d[te], e[te])[0] for _, te in splits],
                               atol=1e-12)


def test_content_ablation_cross_val_score_equals_sklearn():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(90)
    Xr = rng.standard_normal((90, 30)) + np.outer(y, rng.standard_normal(30))
    Xc = rng.standard_normal((90, 20))
    X = np.hstack([Xr, Xc])
    splits = _kfold_splits(90)
    got = cross_val_score(ablation.ContentAblation(alphas=GRID, n_ref_features=30), X, y,
                          cv=splits)
    want = []
    for tr, te in splits:
        pr = RidgeCV(alphas=GRID).fit(Xr[tr], y[tr]).predict(Xr[te])
        pc = RidgeCV(alphas=GRID).fit(Xc[tr], y[tr]).predict(Xc[te])
        want.append(stats.spearmanr(y[te], pr)[0] - stats.spearmanr(y[te], pc)[0])
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert np.mean(got) > 0.5                      # the ablated condition lost the signal


def test_reliance_cross_val_score_equals_numpy():
    rng = np.random.default_rng(4)
    own = rng.random(60) < 0.8
    forced = np.where(rng.random(60) < 0.5, own, rng.random(60) < 0.3)
    splits = _kfold_splits(60, 5)
    got = cross_val_score(reliance.Reliance(n_boot=50), own, forced, cv=splits)
    np.testing.assert_allclose(got, [own[te].mean() - forced[te].mean() for _, te in splits],
                               atol=1e-15)


def test_procrustes_probe_cross_val_score_equals_scipy():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((70, 12))
    Y = X[:, :8] @ rng.standard_normal((8, 9)) + 0.5 * rng.standard_normal((70, 9))
    splits = _kfold_splits(70)
    got = cross_val_score(similarity.ProcrustesProbe(max_dim=6), X, Y, cv=splits)
    want = []
    for tr, te in splits:
        px, py = PCA(6).fit(X[tr]), PCA(6).fit(Y[tr])
        R, _ = orthogonal_procrustes(px.transform(X[tr]) / np.linalg.norm(px.transform(X[tr])),
                                     py.transform(Y[tr]) / np.linalg.norm(py.transform(Y[tr])))
        a, b = px.transform(X[te]) @ R, py.transform(Y[te])
        want.append((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    np.testing.assert_allclose(got, want, atol=1e-10)


# --------------------------------------------------------------------------- run() == estimator


@pytest.mark.parametrize("inner,groups", [("loo", "task"), ("group", "item")])
def test_difficulty_run_equals_fold_estimators(inner, groups):
    cache, labels = make_fake(n=90, d=40, n_layers=2, signal_layer=1, n_tasks=6)
    seed, n_folds, grid = 3, 5, list(np.logspace(-2, 3, 30))   # a fine grid: α is sensitive
    res = difficulty.run(cache, tasks=labels, groups=groups, n_folds=n_folds, alphas=grid,
                         inner=inner, n_perm=2, n_boot=20, seed=seed, progress_bar=False)
    lab = make_labels(cache, tasks=labels)
    g = lab.tasks if groups == "task" else lab.item_ids
    folds = group_kfold(g, n_folds, seed)
    for layer in (1, 2):
        X = np.asarray(cache.resid(layer, "last_prompt"), float)[lab.rows]
        pred = np.empty(lab.n)
        for k in range(n_folds):
            tr, te = folds != k, folds == k
            p = difficulty.DifficultyProbe(alphas=grid, inner=inner, random_state=seed + 1 + k)
            p.fit(X[tr], lab.y[tr], groups=g[tr])
            pred[te] = p.predict(X[te])
        np.testing.assert_allclose(res.arrays["pred"][("last_prompt", layer)], pred, atol=1e-9)
        row = res.table[res.table.layer == layer].iloc[0]
        assert row["rho"] == pytest.approx(stats.spearmanr(lab.y, pred)[0], abs=1e-12)


def test_planning_run_equals_fold_estimators():
    cache, _ = make_fake(n=80, d=30, n_layers=2, signal_layer=1, n_tasks=1)
    res = planning.run({"m": cache}, n_folds=4, n_perm=2, n_boot=20, transfer=False,
                       seed=1, progress_bar=False)
    lab = make_labels(cache, target="log_reasoning_tokens")
    folds = group_kfold(lab.item_ids, 4, 1)
    X = np.asarray(cache.resid(1, "last_prompt"), float)[lab.rows]
    pred = np.empty(lab.n)
    for k in range(4):
        p = planning.PlanningProbe(random_state=1 + 1 + k).fit(X[folds != k], lab.y[folds != k])
        pred[folds == k] = p.predict(X[folds == k])
    row = res.table[res.table.layer == 1].iloc[0]
    assert row["rho"] == pytest.approx(stats.spearmanr(lab.y, pred)[0], abs=1e-12)


def test_entropy_run_equals_estimator():
    cache, labels = make_fake(n=100, n_layers=3)
    res = entropy.run(cache, tasks=labels, n_boot=20, n_perm=20)
    assert res.meta["models"]["fake"]["length_covariate"] is True
    lab = make_labels(cache, tasks=labels)
    E = np.asarray(cache.entropy("reasoning", "raw"), float)[lab.rows]
    ll = np.log1p(cache.items["n_reasoning_tokens"].to_numpy(float)[lab.rows])
    for layer in range(3):
        e = E[:, layer, :].mean(1)
        row = res.table[res.table.layer == layer + 1].iloc[0]
        X = np.column_stack([lab.y, ll])
        est = entropy.EntropyProbe().fit(X, e)
        assert row["slope"] == est.slope_
        assert row["partial_rho"] == est.score(X, e)
        assert row["partial_rho"] == pytest.approx(_partial_spearman_ref(e, lab.y, ll),
                                                   abs=1e-12)
        no_cov = entropy.EntropyProbe(covariate=False).fit(lab.y, e)
        assert row["rho"] == pytest.approx(no_cov.score(lab.y, e), abs=1e-12)


def test_ablation_run_equals_estimator():
    own, labels = make_fake(n=100, n_layers=2, signal_layer=1, sites=("mean_reasoning",))
    scr, _ = make_fake(n=100, n_layers=2, signal_layer=99, seed=2,
                       difficulty=labels.to_numpy(), sites=("mean_reasoning",))
    seed = 5
    res = ablation.run({"own": own, "scrambled": scr}, tasks=labels, alphas=GRID, n_boot=30,
                       seed=seed, progress_bar=False)
    lab = make_labels(own, tasks=labels)
    folds = group_kfold(lab.item_ids, 5, seed)        # 2 tasks < 5 folds: grouped by item
    for layer in (1, 2):
        X = np.hstack([np.asarray(c.resid(layer, "mean_reasoning"), float)[lab.rows]
                       for c in (own, scr)])
        P = cross_val_predict(ablation.ContentAblation(alphas=GRID), X, lab.y,
                              cv=PredefinedSplit(folds))
        t = res.table[res.table.layer == layer].set_index("condition")
        assert t.loc["own", "rho"] == pytest.approx(stats.spearmanr(lab.y, P[:, 0])[0])
        assert t.loc["scrambled", "rho"] == pytest.approx(stats.spearmanr(lab.y, P[:, 1])[0])
        assert t.loc["scrambled", "drop"] == pytest.approx(
            stats.spearmanr(lab.y, P[:, 0])[0] - stats.spearmanr(lab.y, P[:, 1])[0])


def test_reliance_run_equals_estimator():
    from test_probes_reliance import _suite, _traces

    o1, f1 = _traces("teacher")
    o2, f2 = _traces("student")
    res = reliance.run(o1 + o2, f1 + f2, tasks=_suite(), n_boot=40, seed=2)
    for m, pairs in res.arrays["pairs"].items():
        row = res.table[(res.table.model == m) & (res.table.task == "all")].iloc[0]
        est = reliance.Reliance(n_boot=40, random_state=2).fit(pairs["own"], pairs["forced"])
        assert row["reliance"] == est.score(pairs["own"], pairs["forced"]) == est.diff_
        assert (row["ci_low"], row["ci_high"], row["p"]) == (*est.ci_, est.p_)
        assert row["reliance"] == pytest.approx(pairs["own"].mean() - pairs["forced"].mean())


def test_similarity_procrustes_equals_fold_estimators():
    a, _ = make_fake(n=60, d=20, n_layers=2)
    b, _ = make_fake(n=60, d=16, n_layers=2, seed=1)
    res = similarity.run(a, b, n_perm=2, n_boot=2, max_dim=8, seed=3, progress_bar=False)
    for layer in (0, 2):
        X = np.asarray(a.resid(layer, "last_prompt"), float)
        Y = np.asarray(b.resid(layer, "last_prompt"), float)
        folds = np.random.default_rng(3).permutation(60) % 5     # procrustes_cv's folds
        num = nx = ny = 0.0
        for k in range(5):
            px, py = PCA(8).fit(X[folds != k]), PCA(8).fit(Y[folds != k])
            R, _ = orthogonal_procrustes(px.transform(X[folds != k]),
                                         py.transform(Y[folds != k]))
            u, v = px.transform(X[folds == k]) @ R, py.transform(Y[folds == k])
            su = np.linalg.norm(px.transform(X[folds != k]))   # the unit-norm scaling per fold
            sv = np.linalg.norm(py.transform(Y[folds != k]))
            u, v = u / su, v / sv
            num, nx, ny = num + (u * v).sum(), nx + (u * u).sum(), ny + (v * v).sum()
        row = res.table[res.table.teacher_layer == layer].iloc[0]
        assert row["procrustes"] == pytest.approx(num / np.sqrt(nx * ny), abs=1e-10)


def test_estimators_fit_in_a_grid_search():
    """A probe's hyper-parameters are tunable by scikit-learn's own model selection."""
    from sklearn.model_selection import GridSearchCV

    rng = np.random.default_rng(6)
    X = rng.standard_normal((60, 10))
    y = X[:, 0] + 0.3 * rng.standard_normal(60)
    gs = GridSearchCV(difficulty.DifficultyProbe(), {"alphas": [[0.01], [1e6]]}, cv=3).fit(X, y)
    assert gs.best_params_ == {"alphas": [0.01]}
    assert isinstance(gs.best_estimator_, difficulty.DifficultyProbe)
    assert pd.notna(gs.best_score_)
