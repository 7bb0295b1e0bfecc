"""Calibration of the verdict by simulation: how often does each scenario get each call?

Each simulated data set builds item-level evidence for a teacher, a student and a base at given
task sizes and runs the SAME estimators the real path runs — :func:`mimicry.stats.pooled.
pooled_corr_diff` (T, A, C), :func:`~mimicry.stats.pooled.pooled_paired_binary` (N),
:class:`probes.reliance.Reliance` (W with the empty and filler controls) and
:func:`probes.baselines.layer_evidence` (P: 13 layers, max-stat permutation p, gain over a
text baseline) — then :func:`probes.verdict_rule.decide`.

Scenarios (the wrong definite call in brackets):
  a  student statistically identical to an aligned teacher          [surface mimicry]
  b  length copier: cost unrelated to difficulty, same mean cost; its reasoning works and it
     plans its own length as well as the teacher (the hardest case for A/C) [policy transfer]
  c  post-hoc student: aligned cost, accurate, answers ignore its reasoning (reliance 0)
                                                                     [policy transfer]
  d  unaligned teacher (r = 0 in every task), student identical to it [policy transfer]

``benchmarks/calibrate_verdict.py`` runs ≥ 500 data sets per scenario and size; the tests run
a small version.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mimicry.stats.pooled import pooled_corr_diff, pooled_paired_binary

from .baselines import layer_evidence
from .reliance import Reliance
from .verdict_rule import decide

BUNDLED = (64, 56, 45, 16)          # syllogisms, spatial, relational_4ps, relational_3ps
ORGANISM = (96,)
TEACHER_R = {BUNDLED: (0.6, 0.5, 0.15, 0.6), ORGANISM: (0.5,)}
SCENARIOS = ("a", "b", "c", "d")
WRONG = {"a": "surface mimicry", "b": "policy transfer", "c": "policy transfer",
         "d": "policy transfer"}
N_LAYERS = 13
ACC, ACC_BASE, RELIANCE = 0.8, 0.5, 0.3


def _cost(y: np.ndarray, r: float, rng) -> np.ndarray:
    return r * y + np.sqrt(1 - r * r) * rng.standard_normal(y.size)


def _answers(n: int, rel: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Return (own correct, forced correct): forced loses ``rel`` accuracy (0: independent)."""
    own = rng.uniform(size=n) < ACC
    if rel <= 0:
        return own, rng.uniform(size=n) < ACC
    keep = rng.uniform(size=n) < (ACC - rel) / ACC
    return own, own & keep


def _row(ev, value, lo=np.nan, hi=np.nan, p=np.nan, n=np.nan, gain_low=np.nan, note=""):
    return {"student": "s", "evidence": ev, "kind": "sim", "value": value, "ci_low": lo,
            "ci_high": hi, "p": p, "n": n, "note": note, "gain_low": gain_low}


def _planning(ev: str, x: np.ndarray, strength: float, rng, n_perm: int, n_boot: int,
              seed: int) -> dict:
    """Return a planning row from simulated out-of-fold predictions of ``x`` over 13 layers."""
    n = x.size
    prof = strength * np.exp(-0.5 * ((np.arange(N_LAYERS) - 8) / 3) ** 2)
    preds = prof[:, None] * x[None] + rng.standard_normal((N_LAYERS, n))
    base = 0.2 * x + rng.standard_normal(n)                    # prompt-length baseline
    perms = np.argsort(rng.uniform(size=(n_perm, n)), axis=1)
    from scipy.stats import rankdata

    rx, rp = rankdata(x), rankdata(preds, axis=1)
    rxp = (rx[perms] - rx.mean()) / rx.std()
    rpz = (rp - rp.mean(1, keepdims=True)) / rp.std(1, keepdims=True)
    null = rpz @ rxp.T / n                                      # [L, n_perm] Spearman
    t = layer_evidence(x, preds, null, {"prompt_tokens": base}, n_boot=n_boot, seed=seed)
    r = t.loc[t["rho"].idxmax()]
    return _row(ev, r["rho"], r["rho_sim_low"], r["rho_sim_high"], r["p_maxstat"], n,
                r["gain_sim_low"])


def simulate(scenario: str, sizes=BUNDLED, *, seed: int = 0, n_boot: int = 1000,
             n_perm: int = 100) -> pd.DataFrame:
    """Return the evidence rows of one simulated data set of ``scenario`` at task ``sizes``."""
    rng = np.random.default_rng(seed)
    sizes = tuple(sizes)
    r_t = TEACHER_R.get(sizes, (0.5,) * len(sizes))
    if scenario == "d":
        r_t = (0.0,) * len(sizes)
    strata = np.repeat(np.arange(len(sizes)), sizes)
    y = rng.standard_normal(strata.size)
    xt = np.concatenate([_cost(y[strata == k], r, rng) for k, r in enumerate(r_t)])
    r_s = (0.0,) * len(sizes) if scenario == "b" else r_t
    xs = np.concatenate([_cost(y[strata == k], r, rng) for k, r in enumerate(r_s)])
    d = pooled_corr_diff(xt, xs, y, strata, n_boot=n_boot, seed=seed)
    n = strata.size
    rows = [_row("teacher_behaviour_r", d.a.r_bar, d.a.ci_low, d.a.ci_high, d.a.p, n),
            _row("behaviour_r", d.b.r_bar, d.b.ci_low, d.b.ci_high, d.b.p, n),
            _row("delta_r", d.delta, d.ci_low, d.ci_high, d.p, n)]
    base = rng.uniform(size=n) < ACC_BASE
    student_own = {}
    rel_s = 0.0 if scenario == "c" else RELIANCE
    for who, rel in (("teacher", RELIANCE), ("student", rel_s)):
        for control in ("scrambled", "empty", "filler"):
            own, forced = _answers(n, rel, np.random.default_rng(
                [seed, who == "student", ("scrambled", "empty", "filler").index(control)]))
            if who == "student" and control == "scrambled":
                student_own = own
            e = Reliance(n_boot=n_boot, random_state=seed).fit(own, forced)
            ev = ("reliance" if who == "student" else "teacher_reliance") + (
                "" if control == "scrambled" else f"_{control}")
            rows.append(_row(ev, e.diff_, *e.ci_, e.p_, n))
    nt = pooled_paired_binary(base, student_own, strata, n_boot=n_boot, seed=seed)
    rows.append(_row("accuracy_vs_base", nt.diff, nt.ci_low, nt.ci_high, nt.p, n))
    rows.append(_planning("planning_rho", xs, 0.6, rng, n_perm, 300, seed))
    return pd.DataFrame(rows)


def call_rates(scenario: str, sizes=BUNDLED, *, n_sets: int = 500, seed: int = 0,
               n_boot: int = 1000, n_perm: int = 100) -> dict:
    """Return the share of each call over ``n_sets`` simulated data sets, and the wrong rate."""
    calls = [decide(simulate(scenario, sizes, seed=seed + k, n_boot=n_boot, n_perm=n_perm))[0]
             for k in range(n_sets)]
    c = pd.Series(calls)
    out = {"scenario": scenario, "sizes": "+".join(map(str, sizes)), "n_sets": n_sets,
           "policy transfer": float((c == "policy transfer").mean()),
           "surface mimicry": float((c == "surface mimicry").mean()),
           "inconclusive (underpowered)": float((c == "inconclusive (underpowered)").mean()),
           "inconclusive": float((c == "inconclusive").mean())}
    out["wrong"] = out[WRONG[scenario]]
    return out
