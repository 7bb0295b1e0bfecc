"""Calibration of the verdict by simulation: how often does each scenario get each call?

Each simulated data set builds item-level evidence for a teacher, a student and a base at given
task sizes and runs the SAME estimators the real path runs — :func:`mimicry.stats.pooled.
pooled_corr_diff` (T, A, C), :func:`~mimicry.stats.pooled.pooled_paired_binary` (N),
:class:`probes.reliance.Reliance` (W with the empty and filler controls) and
:func:`probes.baselines.layer_evidence` (P: 13 layers, max-stat permutation p, gain over a
text baseline) and :func:`probes.compute.decode` (M: the computation probe's ridge decoder,
out-of-fold, shuffled-label control and paired bootstrap of the rise, on simulated residuals
at the start and the end of the reasoning, turned into rows by
:func:`probes.mechanistic_row.compute_row`) — then :func:`probes.verdict_rule.decide`.

Scenarios (the wrong definite call in brackets):
  a  student statistically identical to an aligned teacher          [surface mimicry]
  b  length copier: cost unrelated to difficulty, same mean cost; its reasoning works and it
     plans its own length as well as the teacher; its compute rise is the teacher's (the
     hardest case for A/C)                                          [policy transfer]
  c  post-hoc student: aligned cost, accurate, answers ignore its reasoning (reliance 0), the
     answer no more decodable at the end of its reasoning than at its start (rise 0)
                                                                     [policy transfer]
  d  unaligned teacher (r = 0 in every task; its reasoning computes the answer), student
     identical to it                                                 [policy transfer]

Row M: gold answers uniform over ``N_CLASSES`` classes (4 at the bundled sizes, 10 — digits —
at the organism's); a residual at the start / end of a model's reasoning is ``s · μ[answer] +
noise`` in ``D_RESID`` dimensions (class means μ standard normal, shared by the models); ``s``
is ``SIGNAL`` = (start, end) for a model whose reasoning computes, (start, start) for the
post-hoc student. Out-of-fold accuracy ≈ 0.32 → 0.54 at the bundled sizes (rise ≈ 0.22),
≈ 0.11 → 0.42 at the organism's (rise ≈ 0.31): far smaller rises than the organism's measured
0.7–0.9, so that M's power is not flattered.

``benchmarks/calibrate_verdict.py`` runs ≥ 500 data sets per scenario and size; the tests run
a small version.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mimicry.stats import bootstrap_indices
from mimicry.stats.pooled import pooled_corr_diff, pooled_paired_binary

from . import compute, mechanistic_row
from .base import Result
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
N_CLASSES = {BUNDLED: 4, ORGANISM: 10}
SIGNAL = {BUNDLED: (0.1, 0.3), ORGANISM: (0.1, 0.5)}
D_RESID = 16


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


def _compute_rows(scenario: str, sizes: tuple, seed: int, n_boot: int,
                  n_perm: int) -> list[dict]:
    """Return the ``compute_rise`` and ``teacher_compute_rise`` rows of one data set."""
    rng = np.random.default_rng([seed, 12])
    n, k = sum(sizes), N_CLASSES.get(sizes, 4)
    s0, s1 = SIGNAL.get(sizes, SIGNAL[BUNDLED])
    y = rng.integers(k, size=n)
    mu = rng.standard_normal((k, D_RESID))
    folds = rng.permutation(n) % 5
    perms = [rng.permutation(n) for _ in range(n_perm)]
    idx = bootstrap_indices(n, n_boot, seed)
    out = []
    for who, ev in (("teacher", "teacher_compute_rise"), ("student", "compute_rise")):
        sig = (s0, s0) if who == "student" and scenario == "c" else (s0, s1)
        X = np.stack([s * mu[y] + rng.standard_normal((n, D_RESID)) for s in sig], 1)
        table, rise = compute.decode(X[:, :, None, :], np.stack([y, y], 1).astype(str),
                                     (0.0, 1.0), [0], folds, perms, idx, 10.0, who, "answer")
        out.append(mechanistic_row.compute_row("s", who, ev, Result(
            "compute", table, tables={"rise": rise})))
    return out


def simulate(scenario: str, sizes=BUNDLED, *, seed: int = 0, n_boot: int = 1000,
             n_perm: int = 100, n_perm_compute: int = 20, m_row: bool = True) -> pd.DataFrame:
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
    if m_row:
        rows += _compute_rows(scenario, sizes, seed, n_boot, n_perm_compute)
    return pd.DataFrame(rows)


def call_rates(scenario: str, sizes=BUNDLED, *, n_sets: int = 500, seed: int = 0,
               n_boot: int = 1000, n_perm: int = 100, n_perm_compute: int = 20,
               m_row: bool = True) -> dict:
    """Return the share of each call over ``n_sets`` simulated data sets, and the wrong rate."""
    calls = [decide(simulate(scenario, sizes, seed=seed + k, n_boot=n_boot, n_perm=n_perm,
                             n_perm_compute=n_perm_compute, m_row=m_row))[0]
             for k in range(n_sets)]
    c = pd.Series(calls)
    out = {"scenario": scenario, "sizes": "+".join(map(str, sizes)), "n_sets": n_sets,
           "policy transfer": float((c == "policy transfer").mean()),
           "surface mimicry": float((c == "surface mimicry").mean()),
           "inconclusive (underpowered)": float((c == "inconclusive (underpowered)").mean()),
           "inconclusive": float((c == "inconclusive").mean())}
    out["wrong"] = out[WRONG[scenario]]
    return out
