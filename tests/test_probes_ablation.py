"""Ablation: paired bootstrap drop vs a loop with scipy; the scrambled condition loses the signal."""

from __future__ import annotations

import numpy as np
import pytest
from _probes_fake import make_fake
from scipy import stats

from mimicry.stats import bootstrap_indices
from probes import ablation


def _expanded(dist, n):
    """The expanded percentile 95% CI written out: quantiles at Φ(±√(n/(n−1))·t_(n−1, .975))."""
    c = np.sqrt(n / (n - 1)) * stats.t.ppf(0.975, n - 1)
    d = np.asarray(dist, float)
    return tuple(np.quantile(d[np.isfinite(d)], stats.norm.cdf([-c, c])))


def test_paired_drop_matches_loop():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(60)
    a, b = y + rng.standard_normal(60), y + 3 * rng.standard_normal(60)
    res = ablation.paired_drop(y, a, b, n_boot=300, seed=4)
    idx = bootstrap_indices(60, 300, 4)
    d = [stats.spearmanr(y[i], a[i])[0] - stats.spearmanr(y[i], b[i])[0] for i in idx]
    assert res["drop"] == pytest.approx(stats.spearmanr(y, a)[0] - stats.spearmanr(y, b)[0])
    lo, hi = _expanded(d, 60)
    assert res["drop_ci_low"] == pytest.approx(lo, abs=1e-12)
    assert res["drop_ci_high"] == pytest.approx(hi, abs=1e-12)
    # p: the α whose expanded interval reaches 0 (q = where the draws' linear quantile
    # function crosses 0), so p < 0.05 exactly when the CI excludes 0
    q = np.interp(0.0, np.sort(d), np.arange(300) / 299)
    q = max(min(q, 1 - q), 0.5 / 300)
    c = np.sqrt(60 / 59)
    assert res["p_drop"] == pytest.approx(min(1, 2 * stats.t.sf(stats.norm.isf(q) / c, 59)))


def test_ablation_run_scrambled_loses_signal():
    own, labels = make_fake(n=120, n_layers=3, signal_layer=2, sites=("mean_reasoning",))
    diff = labels.to_numpy()
    teach, _ = make_fake(n=120, n_layers=3, signal_layer=2, seed=1, difficulty=diff,
                         sites=("mean_reasoning",))
    scr, _ = make_fake(n=120, n_layers=3, signal_layer=99, seed=2, difficulty=diff,
                       sites=("mean_reasoning",))
    res = ablation.run({"own": own, "teacher": teach, "scrambled": scr}, tasks=labels,
                       n_boot=300, progress_bar=False)
    assert res.meta["peak_layer"] == 2 and res.meta["reference"] == "own"
    pk = res.tables["peak"].set_index("condition")
    assert pk.loc["scrambled", "drop_ci_low"] > 0.3 and pk.loc["scrambled", "p_drop"] < 0.01
    assert abs(pk.loc["teacher", "drop"]) < 0.1 < pk.loc["scrambled", "drop"]
    assert np.isnan(pk.loc["own", "drop"])
    X = np.hstack([own.resid(2, "mean_reasoning"), scr.resid(2, "mean_reasoning")])
    est = ablation.ContentAblation().fit(X[:80], diff[:80])
    assert est.score(X[80:], diff[80:]) > 0.4           # held-out drop
    res.plot()


def test_ablation_needs_two_conditions():
    own, labels = make_fake(n=40)
    from mimicry.errors import InputError

    with pytest.raises(InputError, match="two conditions"):
        ablation.run({"own": own}, tasks=labels)


def test_empty_segments_are_excluded_and_counted():
    """NaN residuals/entropy (empty segment) drop those items in every probe, with a count."""
    from probes import difficulty, entropy, similarity

    a, labels = make_fake(n=80, n_layers=2, signal_layer=1, sites=("mean_answer",))
    b, _ = make_fake(n=80, n_layers=2, signal_layer=1, seed=1, difficulty=labels.to_numpy(),
                     sites=("mean_answer",))
    for c in (a, b):
        for key in c._resid:
            c._resid[key][:7] = np.nan
        c._entropy[("reasoning", "raw")][:5] = np.nan
    d = difficulty.run(a, tasks=labels, n_perm=3, n_boot=20, progress_bar=False)
    assert d.meta["n"] == 73 and d.meta["exclusions"]["empty_segment:mean_answer"] == 7
    assert d.table["rho"].notna().all()
    e = entropy.run(a, tasks=labels, n_boot=20, n_perm=20)
    assert e.meta["models"]["fake"]["n"] == 75
    s = similarity.run(a, b, site="mean_answer", n_perm=3, n_boot=3, progress_bar=False)
    assert s.meta["n"] == 73 and s.meta["excluded_empty_segment"] == 7
    ab = ablation.run({"own": a, "other": b}, tasks=labels, site="mean_answer", n_boot=20,
                      progress_bar=False)
    assert ab.meta["n"] == 73 and ab.meta["exclusions"]["empty_segment:mean_answer"] == 7


def test_site_without_items_is_skipped_and_run_all_survives():
    """A model with no reasoning (NaN at mean_reasoning) loses that site, not the run."""
    from probes import difficulty
    from probes.suite import run_all

    a, labels = make_fake(n=60, n_layers=2, signal_layer=1, sites=("last_prompt", "mean_reasoning"))
    for key in a._resid:
        if key[1] == "mean_reasoning":
            a._resid[key][:] = np.nan
    d = difficulty.run(a, tasks=labels, n_perm=2, n_boot=20, progress_bar=False)
    assert set(d.table["site"]) == {"last_prompt"} and "mean_reasoning" in d.meta["skipped_sites"]
    b, _ = make_fake(n=60, n_layers=2, signal_layer=1, seed=3, difficulty=labels.to_numpy(),
                     sites=("last_prompt",))
    v = run_all({"teacher": b, "student": a}, teacher="teacher", tasks=labels, n_perm=2,
                n_boot=20, progress_bar=False,
                ablation={"student": {"own": a, "other": a}})   # ablation site is all NaN
    assert "ablation:student" in v.meta["skipped"]
    assert list(v.tables["calls"]["student"]) == ["student"]
