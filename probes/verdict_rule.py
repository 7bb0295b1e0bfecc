"""The verdict rule: one student's evidence rows -> "policy transfer", "surface mimicry" or
"inconclusive" (with "(underpowered)" and the items needed when a CI cannot tell).

Rows (``evidence`` names) and what the rule reads from them — every CI is 95%:

  T  teacher_behaviour_r  teacher's r (Fisher-z mean over tasks; stratified bootstrap CI).
                          Holds when CI low > 0. Missing, or undefined (constant cost): no
                          policy to compare with -> "inconclusive".
  A  behaviour_r          student's r, same estimator. Holds when CI low > 0.
  X  behaviour_r          constant cost over items (r undefined): AGAINST.
  C  delta_r              Δr̄ = r̄_student − r̄_teacher, paired stratified bootstrap over items
                          (CI-consistent p). AGAINST when Δr̄ < 0 and p < 0.05 / k.
  N  accuracy_vs_base     student − base accuracy over all items, exact McNemar on the pooled
                          discordant pairs. AGAINST when diff < 0 and p < 0.05 / k.
  P  planning_rho         peak layer: max-statistic permutation p over layers < 0.05 AND the
                          simultaneous lower bound of its gain over the best text-only baseline
                          (prompt tokens, bag of tokens) > 0.
  W  reliance             accuracy own − after its own reasoning scrambled (McNemar p). Holds
                          when student reliance > 0 (p < 0.05) AND teacher_reliance > 0
                          (p < 0.05) AND every measured control (reliance_empty: own − after an
                          empty reasoning; reliance_filler: own − after a length-matched filler)
                          > 0 (p < 0.05) — otherwise a scramble that merely distracts would pass.
     W-                   AGAINST when teacher reliance > 0 (p < 0.05), the student's is not,
                          and student − teacher reliance < 0 with p < 0.05 / k (z test from the
                          two CIs, independent samples: conservative for paired items).
     ablation_drop        only where reliance cannot be compared (no student or teacher
                          reliance row, or the teacher's reliance is not > 0): W holds when the
                          drop's CI low > 0; never against.
  M  compute_rise         (only when the row is present; probes/mechanistic_row.py) gold answer
                          decoded at the end of the reasoning − at its start (paired bootstrap
                          CI; the start term holds whatever the prompt alone gives). M+
                          supports when CI low > 0 and the end beats shuffled labels (p_perm
                          < 0.05). Otherwise open, unless the teacher's own rise is not shown
                          (then M adds nothing).
     M-                   AGAINST when teacher_compute_rise holds, the student's does not, and
                          student − teacher rise < 0 with p < 0.05 / k (z from the two CIs, as
                          W-).
  k = the number of AGAINST tests measured (C, N, W-, M-): Bonferroni, so that a student
  statistically identical to its teacher is called surface mimicry in ≤ 5% of data sets.

policy transfer  ⇐ T, A, P and W hold, M holds or is absent, and no AGAINST fires
surface mimicry  ⇐ T holds and an AGAINST fires
inconclusive     otherwise; "(underpowered)" when a row that could decide was measured but its
                 CI contains both "as good as the teacher" and "no effect" (A with Δr, W with
                 reliance, M with the teacher's rise), with the items needed for its CI to be
                 narrower than the teacher's effect. A failing A, P, W or M alone never counts
                 against the student: absence of evidence is not evidence of absence.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats as sps

from . import mechanistic_row

NA = float("nan")
ALPHA = 0.05


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return NA
    return v if math.isfinite(v) else NA


def _items_needed(lo: float, hi: float, n: float, effect: float) -> float:
    from mimicry.stats.pooled import items_needed

    return items_needed(lo, hi, n, effect)


def decide(ev: pd.DataFrame) -> tuple[str, list[str]]:
    """Return (call, reasons) for one student's evidence rows, by the module's rule."""
    g = {r["evidence"]: r for _, r in ev.iterrows()}

    def v(k, f="value"):
        return _num(g[k][f]) if k in g else NA

    def have(k):
        return math.isfinite(v(k))

    def ci(k):
        return have(k) and math.isfinite(v(k, "ci_low")) and math.isfinite(v(k, "ci_high"))

    def pos(k):  # > 0 at p < 0.05: CI low > 0, else p when the row has no CI
        if ci(k):
            return v(k, "ci_low") > 0
        return have(k) and v(k) > 0 and v(k, "p") < ALPHA

    # T: a teacher whose cost tracks difficulty
    if not ci("teacher_behaviour_r"):
        why = ("undefined (constant cost over items)" if "teacher_behaviour_r" in g
               and str(g["teacher_behaviour_r"]["note"]).startswith("constant") else "missing")
        return "inconclusive", [f"T: the teacher's behavioural r is {why}: nothing to compare "
                                "the student with"]
    if v("teacher_behaviour_r", "ci_low") <= 0:
        return "inconclusive", ["T: the teacher's own behavioural r CI includes 0 or is below: "
                                "no difficulty-tracking policy to transfer or mimic"]
    support, against, open_, power = [], [], [], []
    # the AGAINST tests that were measured (Bonferroni over them)
    t_rel = have("teacher_reliance") and math.isfinite(v("teacher_reliance", "p")) \
        and v("teacher_reliance") > 0 and v("teacher_reliance", "p") < ALPHA
    s_rel = have("reliance") and math.isfinite(v("reliance", "p"))
    tests = [k for k, ok in (("C", have("delta_r") and math.isfinite(v("delta_r", "p"))),
                             ("N", have("accuracy_vs_base")
                              and math.isfinite(v("accuracy_vs_base", "p"))),
                             ("W-", s_rel and t_rel and ci("reliance")
                              and ci("teacher_reliance")),
                             ("M-", mechanistic_row.measured(g))) if ok]
    k = max(1, len(tests))
    a_k = ALPHA / k
    # A / X
    if ci("behaviour_r"):
        if v("behaviour_r", "ci_low") > 0:
            support.append("A: behavioural r CI excludes 0")
        else:
            open_.append("A: behavioural r CI includes 0")
            if ci("delta_r") and v("delta_r", "ci_low") < 0 < v("delta_r", "ci_high"):
                need = _items_needed(v("delta_r", "ci_low"), v("delta_r", "ci_high"),
                                     v("delta_r", "n"), v("teacher_behaviour_r"))
                power.append(f"A: Δr CI [{v('delta_r', 'ci_low'):.2f}, "
                             f"{v('delta_r', 'ci_high'):.2f}] contains both 0 (as aligned as "
                             f"the teacher) and −r̄_teacher = {-v('teacher_behaviour_r'):.2f}; "
                             f"~{need:.0f} items needed")
    elif "behaviour_r" in g and str(g["behaviour_r"]["note"]).startswith("constant cost"):
        against.append("X: the student's cost is constant over items (no difficulty dependence)")
    else:
        open_.append("A: behavioural r missing")
    # C
    if "C" in tests and v("delta_r") < 0 and v("delta_r", "p") < a_k:
        against.append(f"C: Δr̄ {v('delta_r'):.2f} below the teacher's (p = "
                       f"{v('delta_r', 'p'):.2g} < {a_k:.3g})")
    # N
    if "N" in tests and v("accuracy_vs_base") < 0 and v("accuracy_vs_base", "p") < a_k:
        against.append(f"N: accuracy below base by {-v('accuracy_vs_base'):.2f} (exact McNemar "
                       f"p = {v('accuracy_vs_base', 'p'):.2g} < {a_k:.3g})")
    # P
    if have("planning_rho"):
        pm, gl = v("planning_rho", "p"), _num(g["planning_rho"].get("gain_low", NA))
        if pm < ALPHA and gl > 0:
            support.append(f"P: planning ρ max-stat p = {pm:.2g}, gain over text baseline "
                           f"> 0 (simultaneous low {gl:.2f})")
        else:
            open_.append("P: planning not shown beyond chance over layers and the text "
                         f"baseline (max-stat p = {pm:.2g}, gain low = {gl:.2f})")
    else:
        open_.append("P: planning ρ missing")
    # W
    rel_ok = s_rel and t_rel
    if rel_ok:
        ctrl = [c for c in ("reliance_empty", "reliance_filler") if have(c)]
        if v("reliance") > 0 and v("reliance", "p") < ALPHA \
                and all(v(c) > 0 and v(c, "p") < ALPHA for c in ctrl):
            support.append("W: its reasoning does work, as the teacher's does (reliance > 0, "
                           "p < 0.05" + (", also vs " + " and ".join(
                               c.split("_")[1] for c in ctrl) if ctrl else "") + ")")
        elif "W-" in tests and not (v("reliance") > 0 and v("reliance", "p") < ALPHA):
            d = v("reliance") - v("teacher_reliance")
            se = math.hypot(*((v(x, "ci_high") - v(x, "ci_low")) / (2 * 1.959964)
                              for x in ("reliance", "teacher_reliance")))
            p = float(2 * sps.norm.sf(abs(d) / se)) if se > 0 else NA
            if d < 0 and p < a_k:
                against.append(f"W-: its answers do not depend on its reasoning, the teacher's "
                               f"do (reliance {v('reliance'):.2f} vs {v('teacher_reliance'):.2f},"
                               f" difference p = {p:.2g} < {a_k:.3g})")
            else:
                open_.append("W: reliance not > 0, not shown below the teacher's")
                if ci("reliance") and v("reliance", "ci_low") <= 0 \
                        and v("reliance", "ci_high") >= v("teacher_reliance"):
                    need = _items_needed(v("reliance", "ci_low"), v("reliance", "ci_high"),
                                         v("reliance", "n"), v("teacher_reliance"))
                    power.append(f"W: reliance CI [{v('reliance', 'ci_low'):.2f}, "
                                 f"{v('reliance', 'ci_high'):.2f}] contains 0 and the "
                                 f"teacher's {v('teacher_reliance'):.2f}; ~{need:.0f} items "
                                 "needed")
        else:
            bad = [c for c in ctrl if not (v(c) > 0 and v(c, "p") < ALPHA)]
            open_.append("W: scrambling costs accuracy but " + " and ".join(
                f"answering after {c.split('_')[1]} reasoning does not" for c in bad)
                + " (distraction, not use)" if bad else "W: reliance not > 0 at p < 0.05")
    elif ci("ablation_drop"):
        why = "no reliance rows" if not s_rel else "the teacher's reliance is not > 0"
        if v("ablation_drop", "ci_low") > 0:
            support.append(f"W: ablation drop CI above 0 ({why}: the ablation stands in)")
        else:
            open_.append(f"W: ablation drop CI includes 0 ({why}: the ablation stands in)")
    else:
        open_.append("W: reliance (with the teacher's > 0) and ablation not available")
    # M (probes/mechanistic_row.py): a missing compute_rise row adds nothing
    m = mechanistic_row.judge(g, a_k)
    support, against, open_, power = (x + y for x, y in zip((support, against, open_, power),
                                                             m))
    if against:
        return "surface mimicry", against + [f"(against-tests: {', '.join(tests) or 'none'}, "
                                             f"each at p < {a_k:.3g})"]
    if not open_:
        return "policy transfer", support
    call = "inconclusive (underpowered)" if power else "inconclusive"
    return call, support + [f"open: {o}" for o in open_] + power


def reading(r: pd.Series) -> str:
    """Return a short reading of one evidence row (CI > 0, CI < 0, CI ∋ 0, p, n/a)."""
    if not math.isfinite(_num(r["value"])):
        return "n/a"
    if math.isfinite(_num(r["ci_low"])) and math.isfinite(_num(r["ci_high"])):
        return "CI > 0" if r["ci_low"] > 0 else "CI < 0" if r["ci_high"] < 0 else "CI ∋ 0"
    if math.isfinite(_num(r["p"])):
        return "p < .05" if r["p"] < 0.05 else "p ≥ .05"
    return "no CI"

