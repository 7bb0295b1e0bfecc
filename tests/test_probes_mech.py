"""probes.compute / steer / patch / mechanistic_row: statistics against independent computations.

compute: the fold-wise decoder equals scikit-learn's RidgeClassifier on standardised features;
accuracies and CIs equal a direct numpy bootstrap; a planted late signal gives a rise, a
shuffled label none. steer: slopes equal scipy's linregress on item means, CIs a direct
bootstrap, p_random a hand count; the teacher→student map recovers a known rotation. patch:
the effect equals the hand ratio of means, the CI a direct bootstrap; pairs stay within a
task and across its median. Verdict row M on hand-made evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import RidgeClassifier

from mimicry.tasks.items import HumanNorms, Item
from probes import compute, mechanistic_row, patch, steer, verdict


def _expanded(dist, n):
    """The expanded percentile 95% CI written out: quantiles at Φ(±√(n/(n−1))·t_(n−1, .975))."""
    c = np.sqrt(n / (n - 1)) * stats.t.ppf(0.975, n - 1)
    d = np.asarray(dist, float)
    return tuple(np.quantile(d[np.isfinite(d)], stats.norm.cdf([-c, c])))


class TokenCache:
    """Cache-like: items + per-token rows ``token_resid(i)`` along each item's reasoning."""

    def __init__(self, items, rows, meta=None):
        self.items, self._rows, self.meta = items, rows, meta or {"model": "fake"}
        self.n_layers = next(iter(rows.values()))[1].shape[1] - 1

    def token_resid(self, i):
        return self._rows[i]


def _token_cache(n=80, d=12, n_pos=9, seed=0, late_signal=True):
    rng = np.random.default_rng(seed)
    answers = rng.integers(0, 4, n)
    items, rows, suite = [], {}, []
    for i in range(n):
        n_prompt = 5
        pos = np.arange(n_prompt, n_prompt + n_pos)
        R = rng.standard_normal((n_pos, 3, d))
        if late_signal:  # the answer written into the last rows (layers 1, 2)
            R[-1, 1:, answers[i]] += 4.0
        rows[i] = (pos, R)
        items.append({"item_id": f"i{i}", "task": "t", "n_prompt": n_prompt,
                      "n_reasoning": n_pos, "truncated": False})
        suite.append(Item(item_id=f"i{i}", task="t", prompt="p", answer=str(answers[i]),
                          human=HumanNorms()))
    return TokenCache(pd.DataFrame(items), rows), suite


def test_oof_decoder_equals_sklearn_ridge_classifier():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 7))
    y = rng.integers(0, 3, 60).astype(str)
    folds = rng.permutation(60) % 4
    got = compute.oof_correct(X, y[None], folds, alpha=3.0)[0]
    want = np.zeros(60, bool)
    for f in range(4):
        tr, te = folds != f, folds == f
        mu, sd = X[tr].mean(0), X[tr].std(0)
        clf = RidgeClassifier(alpha=3.0).fit((X[tr] - mu) / sd, y[tr])
        want[te] = clf.predict((X[te] - mu) / sd) == y[te]
    assert np.array_equal(got, want)
    est = compute.ComputeProbe(alpha=3.0).fit(X, y)
    ref = RidgeClassifier(alpha=3.0).fit((X - X.mean(0)) / X.std(0), y)
    assert np.array_equal(est.predict(X), ref.predict((X - X.mean(0)) / X.std(0)))
    assert est.score(X, y) == pytest.approx((ref.predict((X - X.mean(0)) / X.std(0)) == y).mean())


def test_compute_run_rise_and_ci():
    cache, suite = _token_cache()
    r = compute.run(cache, tasks=suite, target="answer", fractions=(0, 0.5, 1), n_perm=10,
                    n_boot=300, seed=3)
    t = r.table
    end = t[(t.layer == 2) & (t.fraction == 1)].iloc[0]
    start = t[(t.layer == 2) & (t.fraction == 0)].iloc[0]
    assert end.accuracy > 0.8 and start.accuracy < 0.45 and end.p_perm < 0.15
    assert end.shuffled_mean < 0.45
    # the CI is the expanded percentile bootstrap of the per-item correctness, recomputed here
    n = end.n
    folds = np.random.default_rng(3).permutation(n) % 5
    X = np.stack([cache.token_resid(i)[1][-1, 2] for i in range(n)])
    y = np.array([it.answer for it in suite])
    c = compute.oof_correct(X, y[None], folds)[0]
    assert c.mean() == pytest.approx(end.accuracy)
    idx = np.random.default_rng(3).integers(0, n, size=(300, n))
    assert end.ci_low == pytest.approx(_expanded(c[idx].mean(1), n)[0])
    rise = r.tables["rise"].set_index("layer")
    assert rise.loc[2, "ci_low"] > 0 and rise.loc[0, "ci_high"] >= 0 >= rise.loc[0, "ci_low"]


def test_compute_flat_without_signal():
    cache, suite = _token_cache(late_signal=False, seed=2)
    r = compute.run(cache, tasks=suite, target="answer", n_perm=5, n_boot=300)
    assert (r.tables["rise"]["ci_low"] < 0).all()


def test_running_value_label():
    it = Item(item_id="x", task="organism_chain", prompt="3 s1 +4 s2 +7 s3 +2 =", answer="6",
              human=HumanNorms())
    assert [compute.running_value(it, f) for f in (0, 0.34, 0.67, 1)] == ["3", "7", "4", "6"]


def _steer_rows(seed=0, n=30):
    rng = np.random.default_rng(seed)
    base = rng.integers(5, 25, n)
    out = [pd.DataFrame({"direction": "none", "alpha": 0.0, "item_id": [f"i{i}" for i in
                         range(n)], "reasoning_tokens": base, "correct": rng.random(n) < .5})]
    for d, gain in [("own_meandiff", 0.4)] + [(f"random_{k}", 0.02 * (k - 5))
                                              for k in range(12)]:
        for a in (-1.0, 1.0):
            t = np.maximum(0, np.round(base * np.exp(gain * a) + rng.normal(0, 1, n)))
            out.append(pd.DataFrame({"direction": d, "alpha": a,
                                     "item_id": [f"i{i}" for i in range(n)],
                                     "reasoning_tokens": t, "correct": rng.random(n) < .5}))
    return pd.concat(out, ignore_index=True)


def test_steer_analyze_vs_scipy():
    rows = _steer_rows()
    curves, eff = steer.analyze(rows, n_boot=400, seed=5)
    own = rows[rows.direction.isin(["none", "own_meandiff"])]
    means = own.assign(l=np.log1p(own.reasoning_tokens)).groupby("alpha")["l"].mean()
    e = eff.set_index("direction")
    assert e.loc["own_meandiff", "slope"] == pytest.approx(
        stats.linregress(means.index, means.values).slope)
    # bootstrap CI by hand: resample items, slope of the resampled means
    L = np.stack([np.log1p(own[own.alpha == a].set_index("item_id").loc[
        [f"i{i}" for i in range(30)], "reasoning_tokens"].to_numpy(float))
        for a in (-1.0, 0.0, 1.0)], 1)
    idx = np.random.default_rng(5).integers(0, 30, size=(400, 30))
    sl = [stats.linregress([-1, 0, 1], L[i].mean(0)).slope for i in idx]
    assert e.loc["own_meandiff", "ci_low"] == pytest.approx(_expanded(sl, 30)[0])
    rnd = e[e.kind == "random"]["slope"].to_numpy()
    assert e.loc["own_meandiff", "p_random"] == pytest.approx(
        (1 + (np.abs(rnd) >= abs(e.loc["own_meandiff", "slope"])).sum()) / 13)
    assert bool(e.loc["own_meandiff", "beyond_band"])
    c = curves[(curves.direction == "own_meandiff") & (curves.alpha == 1.0)].iloc[0]
    assert c.tokens == pytest.approx(own[own.alpha == 1.0].reasoning_tokens.mean())
    assert steer.DoseResponse().fit(own.alpha, own.reasoning_tokens).slope_ == pytest.approx(
        stats.linregress(own.alpha, np.log1p(own.reasoning_tokens)).slope)


def test_map_direction_recovers_a_rotation():
    rng = np.random.default_rng(0)
    Xt = rng.standard_normal((60, 8)) * np.linspace(3, 1, 8)
    Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    Xs = Xt @ Q * 2.0 + 5.0        # the student: rotated, scaled, shifted
    v = rng.standard_normal(8)
    got = steer.map_direction(Xt, Xs, v)
    want = v @ Q
    assert abs(got @ want) / np.linalg.norm(got) / np.linalg.norm(want) > 0.999


def _patch_rows(seed=0, n=40):
    rng = np.random.default_rng(seed)
    r = rng.integers(5, 10, n)
    d = rng.integers(15, 25, n)
    p = np.round(r + 0.3 * (d - r) + rng.normal(0, 1, n))
    return pd.DataFrame({"direction": "hard_to_easy", "layer": 1, "tokens_recipient": r,
                         "tokens_donor": d, "tokens_patched": p, "correct_recipient": True,
                         "correct_patched": rng.random(n) < 0.5})


def test_patch_effect_vs_hand():
    rows = _patch_rows()
    t = patch.analyze(rows, n_boot=500, seed=2).iloc[0]
    r, d, p = (rows[c].to_numpy(float) for c in ("tokens_recipient", "tokens_donor",
                                                 "tokens_patched"))
    assert t.effect == pytest.approx((p - r).sum() / (d - r).sum())
    idx = np.random.default_rng(2).integers(0, len(r), size=(500, len(r)))
    boot = (p - r)[idx].mean(1) / (d - r)[idx].mean(1)
    assert (t.ci_low, t.ci_high) == pytest.approx(_expanded(boot, len(r)))
    X = np.column_stack([r, d])
    assert patch.PatchEffect().fit(X, p).effect_ == pytest.approx(t.effect)


def test_make_pairs_within_task_across_median():
    items = [Item(item_id=f"{t}{k}", task=t, prompt="p", answer="1",
                  human=HumanNorms(rt_ms=100.0 * (k + 1))) for t in "ab" for k in range(6)]
    pairs = patch.make_pairs(items, items, n_pairs=100, seed=0)
    for d, (rec, don) in pairs.items():
        assert len(rec) == 6
        for a, b in zip(rec, don):
            assert a.task == b.task
            ka, kb = int(a.item_id[1:]), int(b.item_id[1:])
            assert (ka < 3 <= kb) if d == "hard_to_easy" else (kb < 3 <= ka)


# evidence that passes every other row of the verdict rule (issue 10: the teacher's reliance
# beside the student's, planning with a gain over the text baseline: gain_low below)
GOOD = dict(behaviour_r=(0.6, 0.4, 0.8, 0.001), teacher_behaviour_r=(0.7, 0.5, 0.85, 0.001),
            delta_r=(-0.05, -0.2, 0.1, 0.5), accuracy_vs_base=(0.1, 0.02, 0.18, 0.01),
            planning_rho=(0.5, 0.3, 0.7, 0.01), reliance=(0.5, 0.4, 0.6, 0.001),
            teacher_reliance=(0.6, 0.5, 0.7, 0.001))


T_RISE = {"teacher_compute_rise": (0.9, 0.8, 1.0, 0.001)}


@pytest.mark.parametrize("change,expected", [
    ({}, "policy transfer"),
    ({"compute_rise": (0.7, 0.6, 0.8, 0.001)}, "policy transfer"),
    ({"compute_rise": (0.7, 0.6, 0.8, 0.001), **T_RISE}, "policy transfer"),
    # no teacher row: M- cannot be tested, a failing rise is open, not against
    ({"compute_rise": (0.0, -0.1, 0.1, 0.9)}, "inconclusive"),
    ({"compute_rise": (0.0, -0.1, 0.1, 0.9), **T_RISE}, "surface mimicry"),
    # a teacher whose answer is not decodable along its reasoning: M not used
    ({"compute_rise": (0.0, -0.1, 0.1, 0.9), "teacher_compute_rise": (0.0, -0.1, 0.1, 0.9)},
     "policy transfer"),
    ({"compute_rise": (np.nan,) * 4}, "policy transfer"),
    # M decides alone where the other rows leave W untested
    ({"compute_rise": (0.0, -0.1, 0.1, 0.9), **T_RISE, "reliance": (np.nan,) * 4,
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}, "surface mimicry"),
])
def test_rule_row_m(change, expected):
    rows = [verdict._row("s", k, "x", *v, gain_low=0.1 if k == "planning_rho" else np.nan)
            for k, v in {**GOOD, **change}.items()]
    call, reasons = verdict.decide(pd.DataFrame(rows))
    assert call == expected, reasons


def test_end_accuracy_at_chance_fails_m():
    r = mechanistic_row.row("s", "compute_rise", value=0.3, lo=0.1, hi=0.5)
    assert mechanistic_row.holds({**r, "p_end": 0.01})
    assert not mechanistic_row.holds({**r, "p_end": 0.2})


def test_rows_from_results():
    cache, suite = _token_cache()
    c = compute.run(cache, tasks=suite, target="answer", n_perm=5, n_boot=200)
    eff_curves, eff = steer.analyze(_steer_rows(), n_boot=200)
    s = steer.Result("steer", eff_curves, tables={"effects": eff}, meta={"layer": 1})
    p = patch.Result("patch", patch.analyze(_patch_rows(), n_boot=200), meta={})
    rows = pd.DataFrame(mechanistic_row.rows("s", "t", compute={"s": c, "t": c},
                                             steer={"s": s}, patch={"s": p}))
    assert list(rows["evidence"]) == ["compute_rise", "teacher_compute_rise", "steer_own",
                                      "patch_effect"]
    top = c.tables["rise"].set_index("layer").iloc[-1]
    assert rows.iloc[0]["value"] == pytest.approx(top["rise"])
    v = verdict.run(teacher="t", students=["s"], compute={"s": c, "t": c})
    assert "compute_rise" in set(v.table["evidence"])
