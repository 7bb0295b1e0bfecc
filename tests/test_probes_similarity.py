"""CKA against the written-out formulas, invariances, matrix = pair loop, RSA, Procrustes, run()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _probes_fake import FakeCache
from scipy.stats import ortho_group

from mimicry.stats import rsa
from probes import similarity as sim


def _cka_biased_ref(X, Y):
    n = len(X)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A, B):
        return np.trace(A @ H @ B @ H) / (n - 1) ** 2

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _hsic_unbiased_loops(K, L):
    """Song et al. (2012) unbiased HSIC, with explicit sums over i != j."""
    n = len(K)
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    tr = sum(Kt[i, j] * Lt[j, i] for i in range(n) for j in range(n))
    sk = sum(Kt[i, j] for i in range(n) for j in range(n))
    sl = sum(Lt[i, j] for i in range(n) for j in range(n))
    kl1 = sum(Kt[i, j] * Lt[j, m] for i in range(n) for j in range(n) for m in range(n))
    return (tr + sk * sl / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * kl1) / (n * (n - 3))


def _cka_debiased_ref(X, Y):
    K, L = X @ X.T, Y @ Y.T
    return _hsic_unbiased_loops(K, L) / np.sqrt(_hsic_unbiased_loops(K, K)
                                                * _hsic_unbiased_loops(L, L))


@pytest.mark.parametrize("n,d1,d2", [(12, 5, 7), (9, 30, 20)])   # n > d and n < d
def test_cka_matches_formulas(n, d1, d2):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d1))
    Y = X[:, :1] @ rng.standard_normal((1, d2)) + rng.standard_normal((n, d2))
    assert sim.cka(X, Y, debiased=False) == pytest.approx(_cka_biased_ref(X, Y), rel=1e-10)
    assert sim.cka(X, Y) == pytest.approx(_cka_debiased_ref(X, Y), rel=1e-9)


def test_cka_invariances():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 20))
    Y = X @ rng.standard_normal((20, 15)) + 0.5 * rng.standard_normal((60, 15))
    Q = ortho_group.rvs(20, random_state=2)
    for deb in (True, False):
        base = sim.cka(X, Y, debiased=deb)
        assert sim.cka(X @ Q, Y, debiased=deb) == pytest.approx(base, rel=1e-10)
        assert sim.cka(3.7 * X, 0.2 * Y, debiased=deb) == pytest.approx(base, rel=1e-10)
        assert sim.cka(X + 5.0, Y - 2.0, debiased=deb) == pytest.approx(base, rel=1e-9)
        assert sim.cka(X, X @ Q, debiased=deb) == pytest.approx(1.0, abs=1e-12)
    assert sim.cka(X, Y) != pytest.approx(sim.cka(X[:, :5], Y), rel=1e-3)  # not invariant to this


def test_debiased_cka_of_independent_data_is_near_zero():
    rng = np.random.default_rng(3)
    vals_d, vals_b = [], []
    for _ in range(5):
        X, Y = rng.standard_normal((100, 500)), rng.standard_normal((100, 400))
        vals_d.append(sim.cka(X, Y))
        vals_b.append(sim.cka(X, Y, debiased=False))
    assert abs(np.mean(vals_d)) < 0.02
    assert np.mean(vals_b) > 0.5          # the biased estimator is far from 0 when n < d


def test_cka_matrix_equals_pair_loop():
    rng = np.random.default_rng(4)
    A = [rng.standard_normal((30, 8)) for _ in range(3)]
    B = [A[0] @ rng.standard_normal((8, 6)) + rng.standard_normal((30, 6)) for _ in range(4)]
    for deb in (True, False):
        M = sim.cka_matrix(np.stack([sim.center_gram(sim.gram(a), deb) for a in A]),
                           np.stack([sim.center_gram(sim.gram(b), deb) for b in B]))
        ref = np.array([[sim.cka(a, b, debiased=deb) for b in B] for a in A])
        np.testing.assert_allclose(M, ref, atol=1e-12)


def test_rsa_matrix_matches_mimicry_rsa():
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((25, 6)), rng.standard_normal((25, 9))
    Y[:, 0] += 2 * X[:, 0]
    got = sim.rsa_matrix(sim._rdm_vec(X)[None], sim._rdm_vec(Y)[None])[0, 0]
    ref = rsa(1 - np.corrcoef(X), 1 - np.corrcoef(Y)).rho
    assert got == pytest.approx(ref, abs=1e-12)


def test_procrustes_cv():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((80, 10))
    Q = ortho_group.rvs(10, random_state=7)
    assert sim.procrustes_cv(X, X @ Q) == pytest.approx(1.0, abs=1e-9)
    assert abs(sim.procrustes_cv(X, X @ Q, shuffle_test=True)) < 0.3
    assert abs(sim.procrustes_cv(X, rng.standard_normal((80, 12)))) < 0.3
    assert sim.depth_match(4, 2) == [(0, 0, 0.0), (1, 0, 0.25), (2, 1, 0.5), (3, 2, 0.75),
                                     (4, 2, 1.0)]


def _cache(resid_layers, ids):
    resid = {(i, "last_prompt"): X for i, X in enumerate(resid_layers)}
    items = pd.DataFrame({"item_id": ids, "task": "t"})
    return FakeCache(items, resid)


def test_similarity_run_depth_matching_and_controls():
    rng = np.random.default_rng(8)
    n = 60
    T = [rng.standard_normal((n, 12)) for _ in range(5)]            # teacher: 4 layers + emb
    S = [T[0] @ ortho_group.rvs(12, random_state=1),                 # student: 2 layers + emb
         T[2] * 2.0, rng.standard_normal((n, 8))]
    ids = [f"x{i}" for i in range(n)]
    t = _cache(T, ids)
    s = _cache([S[k][::-1] for k in range(3)], ids[::-1])            # other row order
    res = sim.run(t, s, n_perm=30, n_boot=20, progress_bar=False, names=("T", "S"))
    tab = res.table.set_index("teacher_layer")
    assert list(tab["student_layer"]) == [0, 0, 1, 2, 2]
    assert tab.loc[0, "cka"] == pytest.approx(1.0) and tab.loc[2, "cka"] == pytest.approx(1.0)
    assert tab.loc[0, "p_perm"] < 0.05 and abs(tab.loc[4, "cka"]) < 0.15
    assert tab.loc[2, "procrustes"] > 0.99 and abs(tab.loc[2, "procrustes_shuffled"]) < 0.3
    assert tab.loc[4, "cka_ci_low"] < tab.loc[4, "cka"] < tab.loc[4, "cka_ci_high"]
    assert res.arrays["cka"].shape == (5, 3)
    res.plot()


def test_cka_identical_rows_is_nan_despite_rounding():
    # identical rows: the exact centred Gram is 0, so CKA is undefined; rounding residue of
    # the Gram's summation must not turn it into 1.0
    rng = np.random.default_rng(3)
    row = rng.normal(size=64).astype(np.float32) * 37.1
    X = np.tile(row, (30, 1))
    Y = rng.normal(size=(30, 8))
    assert np.isnan(sim.cka(X, X)) and np.isnan(sim.cka(X, Y))
    assert not np.isnan(sim.cka(Y, Y))
