"""Entropy probe: BH vs scipy, partial ρ vs the textbook formula, slope vs sklearn, the planted head."""

from __future__ import annotations

import numpy as np
import pytest
from _probes_fake import make_fake
from scipy import stats
from sklearn.linear_model import LinearRegression

from mimicry.stats import bh_fdr, partial_spearman
from probes import entropy


def test_bh_matches_scipy():
    p = np.random.default_rng(0).uniform(size=200) ** 3
    np.testing.assert_allclose(bh_fdr(p)[0], stats.false_discovery_control(p), atol=1e-12)


def test_partial_spearman_matches_formula():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(300)
    x = z + rng.standard_normal(300)
    y = z + 0.5 * x + rng.standard_normal(300)
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    rxy, rxz, ryz = (np.corrcoef(a, b)[0, 1] for a, b in ((rx, ry), (rx, rz), (ry, rz)))
    ref = (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
    r, p = partial_spearman(x, y, z)
    assert r == pytest.approx(ref, abs=1e-12)
    assert 0 <= p < 1e-3


def test_entropy_probe_slope_matches_sklearn():
    rng = np.random.default_rng(2)
    d, ll = rng.standard_normal(100), rng.standard_normal(100)
    e = 0.3 * d + 0.8 * ll + rng.standard_normal(100)
    pr = entropy.EntropyProbe().fit(np.column_stack([d, ll]), e)
    ref = LinearRegression().fit(np.column_stack([d, ll]), e)
    assert pr.slope_ == pytest.approx(ref.coef_[0], abs=1e-10)
    np.testing.assert_allclose(pr.predict(np.column_stack([d, ll])),
                               ref.predict(np.column_stack([d, ll])), atol=1e-10)
    assert entropy.EntropyProbe(covariate=False).fit(d, e).slope_ == pytest.approx(
        stats.linregress(d, e).slope, abs=1e-10)
    # covariate=False ignores a length column that is given
    assert entropy.EntropyProbe(covariate=False).fit(np.column_stack([d, ll]), e).slope_ == \
        pytest.approx(stats.linregress(d, e).slope, abs=1e-10)


def test_entropy_run_finds_planted_head():
    a, labels = make_fake(n=150, n_layers=3, model="A")
    b, _ = make_fake(n=150, n_layers=3, seed=1, model="B", difficulty=labels.to_numpy())
    res = entropy.run({"A": a, "B": b}, tasks=labels, n_boot=200, n_perm=200)
    heads = res.tables["heads"]
    hit = heads[(heads.model == "A") & (heads.layer == 2) & (heads["head"] == 0)].iloc[0]
    assert hit["q"] < 1e-3 and hit["rho"] > 0.5
    others = heads[(heads.model == "A") & ~((heads.layer == 2) & (heads["head"] == 0))]
    assert (others["q"] < 0.05).sum() <= 1
    lay = res.table[(res.table.model == "A") & (res.table.layer == 2)].iloc[0]
    assert lay["slope_ci_low"] > 0 and lay["p_perm"] < 0.01
    # the layer-mean entropy is independent of difficulty at layer 1
    lay1 = res.table[(res.table.model == "A") & (res.table.layer == 1)].iloc[0]
    assert abs(lay1["rho"]) < 0.25 and lay1["rho_ci_low"] < lay1["rho"] < lay1["rho_ci_high"]
    bins = res.tables["bins"]
    assert set(bins["bin"]) == set(range(5)) and bins["n"].sum() == 2 * 3 * 150
    assert len(res.plot().axes) >= 3


def test_collinear_length_is_not_used_as_covariate():
    """When segment length is a function of difficulty the adjusted slope is not identifiable."""
    a, labels = make_fake(n=80, n_layers=2)
    a.items["n_reasoning_tokens"] = np.round(np.exp(3 + 0.5 * labels.to_numpy())).astype(int)
    res = entropy.run(a, tasks=labels, n_boot=50, n_perm=50)
    assert res.meta["models"]["fake"]["length_covariate"] is False
    assert (~res.table["length_adjusted"]).all() and res.table["partial_rho"].isna().all()
