"""Every statistic in mimicry.stats against scipy/numpy or a direct loop on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from mimicry import stats as S


@pytest.fixture
def xy():
    rng = np.random.default_rng(42)
    x = rng.normal(size=37)
    y = 0.5 * x + rng.normal(size=37)
    return x, y


def test_pearson_spearman_match_scipy(xy):
    x, y = xy
    assert S.pearson(x, y) == pytest.approx(sps.pearsonr(x, y).statistic, abs=1e-12)
    assert S.spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    xt = np.round(x)  # ties: average ranks as in scipy
    assert S.spearman(xt, y) == pytest.approx(sps.spearmanr(xt, y).statistic, abs=1e-12)
    assert math.isnan(S.pearson(np.ones(5), np.arange(5.0)))


def test_bootstrap_ci_equals_direct_loop(xy):
    x, y = xy
    n_boot, seed = 500, 7
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    loop = np.array([sps.pearsonr(x[i], y[i]).statistic for i in idx])
    sloop = np.array([sps.spearmanr(x[i], y[i]).statistic for i in idx])
    np.testing.assert_allclose(S.bootstrap_corr(x, y, n_boot=n_boot, seed=seed), loop,
                               atol=1e-12)
    np.testing.assert_allclose(S.bootstrap_corr(x, y, method="spearman", n_boot=n_boot,
                                                seed=seed), sloop, atol=1e-12)
    lo, hi = np.percentile(loop, [2.5, 97.5])  # the plain percentile interval
    # the one CI rule, expanded percentile: quantiles at Φ(±sqrt(n/(n-1)) t_{n-1,.975})
    n = x.size
    q = math.sqrt(n / (n - 1)) * sps.t.ppf(0.975, n - 1)
    want = np.quantile(loop, [sps.norm.cdf(-q), sps.norm.cdf(q)])
    got = S.bootstrap_ci(x, y, n_boot=n_boot, seed=seed)
    assert got == pytest.approx(tuple(want), abs=1e-12)
    assert got[0] < lo and got[1] > hi  # expanded is wider


def test_spearman_bootstrap_with_ties_equals_loop():
    rng = np.random.default_rng(8)
    x = np.round(rng.normal(size=25))  # heavy ties
    y = x + rng.normal(size=25)
    idx = S.bootstrap_indices(25, 300, 2)
    loop = np.array([sps.spearmanr(x[i], y[i]).statistic for i in idx])
    got = S.bootstrap_corr(x, y, method="spearman", n_boot=300, seed=2)
    np.testing.assert_allclose(got[np.isfinite(loop)], loop[np.isfinite(loop)], atol=1e-12)


def test_bootstrap_agrees_with_scipy_bootstrap(xy):
    # independent implementation, different random stream: agree to Monte-Carlo error
    x, y = xy

    def r_vec(a, b, axis=-1):
        ac = a - a.mean(axis=axis, keepdims=True)
        bc = b - b.mean(axis=axis, keepdims=True)
        return (ac * bc).sum(axis) / np.sqrt((ac * ac).sum(axis) * (bc * bc).sum(axis))

    ref = sps.bootstrap((x, y), r_vec, paired=True,
                        vectorized=True, n_resamples=4000, method="percentile",
                        random_state=np.random.default_rng(1)).confidence_interval
    # the same draws' plain percentile levels (scipy has no expanded percentile method)
    lo, hi = np.percentile(S.bootstrap_corr(x, y, n_boot=4000, seed=3), [2.5, 97.5])
    assert lo == pytest.approx(ref.low, abs=0.03)
    assert hi == pytest.approx(ref.high, abs=0.03)


def test_permutation_p_matches_direct_loop_and_scipy(xy):
    x, y = xy
    x, y = x[:15], y[:15]
    n_perm, seed = 2000, 5
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.broadcast_to(np.arange(15), (n_perm, 15)), axis=1)
    r = sps.pearsonr(x, y).statistic
    null = np.array([sps.pearsonr(x, y[p]).statistic for p in perms])
    want = (1 + np.sum(np.abs(null) >= abs(r) - 1e-12)) / (n_perm + 1)
    assert S.permutation_p(x, y, n_perm=n_perm, seed=seed) == pytest.approx(want, abs=1e-15)

    def r_vec(yy, axis=-1):  # numpy Pearson along the last axis, for scipy's vectorised mode
        xc, yc = x - x.mean(), yy - yy.mean(axis=axis, keepdims=True)
        return (yc @ xc) / np.sqrt((xc @ xc) * (yc * yc).sum(axis=axis))

    ref = sps.permutation_test((y,), r_vec, permutation_type="pairings", vectorized=True,
                               n_resamples=20000, random_state=0).pvalue
    assert S.permutation_p(x, y, n_perm=20000, seed=1) == pytest.approx(ref, abs=0.01)


def test_exact_permutation_p_small_n():
    from itertools import permutations

    x = np.array([1.0, 2.0, 3.5, 4.0, 6.0, 6.5])
    y = np.array([2.0, 1.5, 4.0, 3.0, 7.0, 5.0])
    r = abs(sps.pearsonr(x, y).statistic)
    null = [abs(sps.pearsonr(x, y[list(p)]).statistic) for p in permutations(range(6))]
    want = np.mean(np.array(null) >= r - 1e-12)
    assert S.exact_permutation_p(x, y) == pytest.approx(want, abs=1e-12)
    # scipy's exact test (two-sided = doubled smaller tail) is close for a symmetric null
    ref = sps.permutation_test((y,), lambda yy: sps.pearsonr(x, yy).statistic,
                               permutation_type="pairings", n_resamples=np.inf).pvalue
    assert S.exact_permutation_p(x, y) == pytest.approx(ref, abs=0.02)


def test_correlate_fields(xy):
    x, y = xy
    c = S.correlate(x, y, n_boot=1000, n_perm=1000, seed=11)
    assert c.n == x.size and c.r == pytest.approx(sps.pearsonr(x, y).statistic)
    assert c.ci_low < c.r < c.ci_high and 0 < c.p <= 1
    assert c.p == S.permutation_p(x, y, n_perm=1000, seed=12)
    assert (c.ci_low, c.ci_high) == S.bootstrap_ci(x, y, n_boot=1000, seed=11)


def test_fisher_mean_hand_formula():
    r = np.array([0.3, 0.5, 0.7, 0.6])
    n = np.array([20, 40, 30, 50])
    z = np.arctanh(r)
    fm = S.fisher_mean(r, n)
    assert fm.r_bar == pytest.approx(np.tanh(z.mean()))
    se = z.std(ddof=1) / 2
    tq = sps.t.ppf(0.975, 3)
    assert fm.ci_low == pytest.approx(np.tanh(z.mean() - tq * se))
    assert fm.ci_high == pytest.approx(np.tanh(z.mean() + tq * se))
    assert fm.p == pytest.approx(sps.ttest_1samp(z, 0).pvalue)
    w = n - 3
    zw = (w * z).sum() / w.sum()
    assert fm.r_fixed == pytest.approx(np.tanh(zw))
    assert fm.ci_fixed_low == pytest.approx(np.tanh(zw - 1.959963984540054 / np.sqrt(w.sum())))
    lo, hi = S.fisher_ci(0.5, 28)
    assert lo == pytest.approx(np.tanh(np.arctanh(0.5) - 1.959963984540054 / 5))
    assert hi == pytest.approx(np.tanh(np.arctanh(0.5) + 1.959963984540054 / 5))


def test_paired_corr_diff_equals_direct_loop():
    rng = np.random.default_rng(0)
    y = rng.normal(size=30)
    a = y + rng.normal(size=30)
    b = y + 2 * rng.normal(size=30)
    d = S.paired_corr_diff(a, b, y, n_boot=400, seed=9)
    idx = np.random.default_rng(9).integers(0, 30, size=(400, 30))
    loop = np.array([sps.pearsonr(b[i], y[i]).statistic - sps.pearsonr(a[i], y[i]).statistic
                     for i in idx])
    assert d.delta == pytest.approx(sps.pearsonr(b, y).statistic - sps.pearsonr(a, y).statistic)
    c = math.sqrt(30 / 29)  # expanded percentile levels of n = 30 items
    lev = sps.norm.cdf([-c * sps.t.ppf(0.975, 29), c * sps.t.ppf(0.975, 29)])
    assert (d.ci_low, d.ci_high) == pytest.approx(tuple(np.quantile(loop, lev)))
    # p = the α whose expanded interval reaches 0: q = the quantile level where numpy's linear
    # quantile function of the draws crosses 0, α = 2·T_29.sf(Φ⁻¹(1−q)/c)
    q = np.interp(0.0, np.sort(loop), np.arange(400) / 399)
    q = min(q, 1 - q)
    assert d.p == pytest.approx(min(1, 2 * sps.t.sf(sps.norm.isf(q) / c, 29)))


@pytest.mark.parametrize("n10,n01", [(3, 9), (0, 4), (30, 12)])
def test_mcnemar_vs_binomtest_and_chi2(n10, n01):
    both = 10
    a = np.array([1] * n10 + [0] * n01 + [1] * both + [0] * 5, dtype=bool)
    b = np.array([0] * n10 + [1] * n01 + [1] * both + [0] * 5, dtype=bool)
    m = S.mcnemar(a, b)
    assert (m.a_only, m.b_only, m.n) == (n10, n01, a.size)
    assert m.method == "exact-binomial"       # exact at every size by default
    assert m.p == pytest.approx(sps.binomtest(n01, n10 + n01, 0.5).pvalue)
    c = S.mcnemar(a, b, exact_below=25)
    if n10 + n01 >= 25:                        # opt-in chi², no continuity correction
        stat = (n10 - n01) ** 2 / (n10 + n01)
        assert c.method == "chi2" and c.p == pytest.approx(sps.chi2.sf(stat, 1))


@pytest.mark.parametrize("k", [1, 7, 40])
def test_mcnemar_equal_discordant_gives_p_one(k):
    a = np.array([1] * k + [0] * k + [1] * 3, dtype=bool)
    b = np.array([0] * k + [1] * k + [1] * 3, dtype=bool)
    assert S.mcnemar(a, b).p == 1.0
    assert S.mcnemar(a, b, exact_below=2).p == 1.0


def test_paired_test_vs_scipy():
    a = np.array([0.61, 0.55, 0.72, 0.40, 0.66, 0.58, 0.49])
    b = np.array([0.52, 0.50, 0.70, 0.31, 0.60, 0.59, 0.41])
    t = S.paired_test(a, b)
    assert t.primary == "wilcoxon" and t.n == 7
    assert t.wilcoxon_p == pytest.approx(sps.wilcoxon(b, a).pvalue)
    assert t.wilcoxon_stat == pytest.approx(sps.wilcoxon(b, a).statistic)
    assert t.t_p == pytest.approx(sps.ttest_rel(b, a).pvalue)
    assert t.mean_diff == pytest.approx(np.mean(b - a))


def test_ols_vs_linregress_and_numpy():
    rng = np.random.default_rng(3)
    x = rng.uniform(1, 10, size=12)
    y = 2.4 * x + 1 + rng.normal(size=12)
    f = S.ols(x, y)
    lr = sps.linregress(x, y)
    assert f.slope == pytest.approx(lr.slope) and f.intercept == pytest.approx(lr.intercept)
    assert f.slope_se == pytest.approx(lr.stderr) and f.p == pytest.approx(lr.pvalue)
    assert f.r2 == pytest.approx(lr.rvalue ** 2)
    tq = sps.t.ppf(0.975, 10)
    assert f.ci_low == pytest.approx(lr.slope - tq * lr.stderr)
    f0 = S.ols(x, y, through_origin=True)
    beta, res, *_ = np.linalg.lstsq(x[:, None], y, rcond=None)
    assert f0.slope == pytest.approx(beta[0])
    assert f0.slope_se == pytest.approx(np.sqrt(res[0] / 11 / (x @ x)))


def test_cooks_distance_hand():
    rng = np.random.default_rng(4)
    x = rng.normal(size=15)
    y = x + rng.normal(size=15)
    y[3] += 6
    X = np.column_stack([np.ones(15), x])
    H = X @ np.linalg.inv(X.T @ X) @ X.T
    e = y - H @ y
    s2 = e @ e / 13
    h = np.diag(H)
    want = e ** 2 / (2 * s2) * h / (1 - h) ** 2
    np.testing.assert_allclose(S.cooks_distance(x, y), want, rtol=1e-10)
    # leave-one-out definition: Σ(ŷ - ŷ_(i))² / (p s²)
    i = 3
    keep = np.arange(15) != i
    b_i = np.linalg.lstsq(X[keep], y[keep], rcond=None)[0]
    loo = np.sum((H @ y - X @ b_i) ** 2) / (2 * s2)
    assert S.cooks_distance(x, y)[i] == pytest.approx(loo)


def test_rdm_rsa_vs_scipy():
    rng = np.random.default_rng(5)
    fa = rng.normal(size=(12, 3))
    fb = fa + 0.5 * rng.normal(size=(12, 3))
    from scipy.spatial.distance import pdist, squareform

    np.testing.assert_allclose(S.rdm(fa), squareform(pdist(fa)), atol=1e-10)
    res = S.rsa(S.rdm(fa), S.rdm(fb), n_perm=300, seed=1)
    assert res.rho == pytest.approx(sps.spearmanr(pdist(fa), pdist(fb)).statistic)
    # Mantel p against a direct loop that permutes the RDM and ranks from scratch
    rng2 = np.random.default_rng(1)
    A, B = S.rdm(fa), S.rdm(fb)
    iu = np.triu_indices(12, 1)
    hits = 0
    for _ in range(300):
        p = rng2.permutation(12)
        hits += abs(sps.spearmanr(A[iu], B[np.ix_(p, p)][iu]).statistic) >= abs(res.rho) - 1e-12
    assert res.p == pytest.approx((1 + hits) / 301)


def test_kl_vs_scipy_entropy():
    p = np.array([3.0, 1.0, 6.0, 2.0])
    q = np.array([2.0, 2.0, 5.0, 3.0])
    assert S.kl_divergence(p, q) == pytest.approx(sps.entropy(p, q))
    assert S.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    assert S.kl_divergence([1, 0], [0, 1]) == math.inf


def test_bh_fdr_vs_scipy():
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.5, 0.012, 0.049])
    q, rej = S.bh_fdr(p)
    np.testing.assert_allclose(q, sps.false_discovery_control(p), rtol=1e-12)
    assert rej.tolist() == (sps.false_discovery_control(p) <= 0.05).tolist()
    q2, _ = S.bh_fdr([0.01, np.nan, 0.02])
    assert math.isnan(q2[1]) and q2[0] == pytest.approx(0.02)


def test_index_streams_equal_single_draw(monkeypatch):
    from mimicry.stats import resampling

    want_b = np.random.default_rng(4).integers(0, 50, size=(300, 50))
    want_p = np.random.default_rng(4).permuted(np.broadcast_to(np.arange(50), (300, 50)), axis=1)
    np.testing.assert_array_equal(S.bootstrap_indices(50, 300, 4), want_b)
    np.testing.assert_array_equal(S.permutation_indices(50, 300, 4), want_p)
    # the uncached, chunked path (large inputs) draws the same stream
    monkeypatch.setattr(resampling, "_CACHE_CELLS", 0)
    monkeypatch.setattr(resampling, "_CHUNK_CELLS", 700)
    np.testing.assert_array_equal(S.bootstrap_indices(50, 300, 4), want_b)
    np.testing.assert_array_equal(S.permutation_indices(50, 300, 4), want_p)


def test_degenerate_resamples_counted():
    x = np.array([0.0, 0.0, 0.0, 0.0, 1.0])  # many resamples miss the single 1.0
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    c = S.correlate(x, y, n_boot=1000, n_perm=100, seed=0)
    idx = S.bootstrap_indices(5, 1000, 0)
    n_const = int(np.sum(np.ptp(x[idx], axis=1) == 0))
    assert c.n_boot_degenerate == n_const > 0
    assert np.isfinite(c.ci_low) and np.isfinite(c.ci_high)


def test_one_ci_rule_and_the_permutation_rule():
    """percentile_ci is the expanded percentile interval of n units; perm_p the +1 rule."""
    rng = np.random.default_rng(3)
    dist = rng.normal(size=1000)
    c = math.sqrt(12 / 11)
    lev = sps.norm.cdf([-c * sps.t.ppf(0.975, 11), c * sps.t.ppf(0.975, 11)])
    assert S.percentile_ci(dist, 12) == pytest.approx(tuple(np.quantile(dist, lev)), abs=1e-12)
    assert all(math.isnan(v) for v in S.percentile_ci(dist, 2))  # no interval from 2 units
    assert math.isnan(S.bootstrap_p(dist, 2))
    null = rng.normal(size=99)
    obs = 1.3
    assert S.perm_p(obs, null) == (1 + np.sum(np.abs(null) >= obs)) / 100  # two-sided default
    assert S.perm_p(obs, null, "greater") == (1 + np.sum(null >= obs)) / 100
    assert S.perm_p(obs, null, "less") == (1 + np.sum(null <= obs)) / 100
    with pytest.raises(ValueError, match="alternative"):
        S.perm_p(obs, null, "bigger")
    with pytest.raises(ValueError, match="whole number"):
        S.percentile_ci(dist, 0.95)  # a level where n goes: refused, not an empty interval
