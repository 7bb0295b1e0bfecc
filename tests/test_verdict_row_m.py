"""Row M on the multi-task path: M+ supports, M- is an AGAINST test in the Bonferroni family.

Hand-built evidence tables at the bundled task sizes (181 items over 4 tasks) assert the call;
the difference p is recomputed here from the two CIs with scipy. One test goes through a 4-task
``align()`` and ``verdict.run`` with hand-built compute results.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from probes import mechanistic_row, verdict
from probes.base import Result

N = 181  # syllogisms 64 + spatial 56 + relational_4ps 45 + relational_3ps 16

# every other row passes (C, N and W- measured: k = 3 without M)
GOOD = dict(teacher_behaviour_r=(0.5, 0.38, 0.6, 0.001), behaviour_r=(0.5, 0.38, 0.6, 0.001),
            delta_r=(0.0, -0.12, 0.12, 0.9), accuracy_vs_base=(0.3, 0.22, 0.38, 1e-10),
            planning_rho=(0.5, 0.3, 0.7, 0.01), reliance=(0.3, 0.2, 0.4, 1e-6),
            teacher_reliance=(0.3, 0.2, 0.4, 1e-6))
T_RISE = (0.6, 0.5, 0.7, 0.001)          # the teacher's rise holds


def _table(rows: dict, p_end: dict | None = None) -> pd.DataFrame:
    p_end = p_end or {}
    out = []
    for k, (v, lo, hi, p) in rows.items():
        r = verdict._row("s", k, "x", v, lo, hi, p, N,
                         gain_low=0.1 if k == "planning_rho" else np.nan)
        if k.endswith("compute_rise"):
            r["p_end"] = p_end.get(k, 0.01)
        out.append(r)
    return pd.DataFrame(out)


def _z_p(a, b):
    se = math.sqrt(sum(((hi - lo) / (2 * sps.norm.ppf(0.975))) ** 2 for _, lo, hi, _ in (a, b)))
    return a[0] - b[0], 2 * sps.norm.sf(abs(a[0] - b[0]) / se)


def test_m_plus_supports_policy_transfer():
    call, why = verdict.decide(_table({**GOOD, "compute_rise": (0.55, 0.45, 0.65, 0.001),
                                       "teacher_compute_rise": T_RISE}))
    assert call == "policy transfer", why
    assert any(w.startswith("M: the gold answer becomes decodable") for w in why)


def test_m_minus_fires_with_teacher_holding_and_significant_difference():
    s = (0.0, -0.08, 0.08, 0.9)
    d, p = _z_p(s, T_RISE)
    assert d < 0 and p < 0.05 / 4
    call, why = verdict.decide(_table({**GOOD, "compute_rise": s,
                                       "teacher_compute_rise": T_RISE}))
    assert call == "surface mimicry", why
    assert any(w.startswith("M-:") for w in why)
    assert "(against-tests: C, N, W-, M-, each at p < 0.0125)" in why


@pytest.mark.parametrize("teacher,p_end", [
    ((0.05, -0.05, 0.15, 0.3), 0.01),    # the teacher's CI includes 0
    (T_RISE, 0.2),                        # the teacher's end accuracy is at shuffled-label level
])
def test_m_minus_needs_the_teachers_rise(teacher, p_end):
    ev = _table({**GOOD, "compute_rise": (0.0, -0.08, 0.08, 0.9),
                 "teacher_compute_rise": teacher}, {"teacher_compute_rise": p_end})
    assert not mechanistic_row.measured({r["evidence"]: r for _, r in ev.iterrows()})
    call, why = verdict.decide(ev)
    assert call == "policy transfer", why       # M adds nothing: no computation to transfer
    assert "M" not in {w.split(":")[0].removeprefix("open: ") for w in why}


def test_m_not_significant_is_underpowered_with_items_needed():
    s = (0.3, -0.02, 0.62, 0.06)
    d, p = _z_p(s, T_RISE)
    assert d < 0 and p > 0.05 / 4
    call, why = verdict.decide(_table({**GOOD, "compute_rise": s,
                                       "teacher_compute_rise": T_RISE}))
    assert call == "inconclusive (underpowered)", why
    need = math.ceil(N * (0.64 / 0.6) ** 2)
    assert any(w.startswith("M: compute rise CI") and f"~{need} items" in w for w in why), why
    assert not any(w.startswith("M-") for w in why)


def test_end_at_chance_is_not_m_plus():
    """A rise whose CI is above 0 but whose end accuracy does not beat shuffled labels."""
    s = (0.3, 0.15, 0.45, 0.001)
    call, why = verdict.decide(_table({**GOOD, "compute_rise": s, "teacher_compute_rise": T_RISE},
                                      {"compute_rise": 0.2}))
    d, p = _z_p(s, T_RISE)
    assert p < 0.05 / 4 and call == "surface mimicry", why       # shown below the teacher's
    call, why = verdict.decide(_table({**GOOD, "compute_rise": (0.55, 0.4, 0.7, 0.001),
                                       "teacher_compute_rise": T_RISE},
                                      {"compute_rise": 0.2}))
    assert call == "inconclusive" and "open: M: compute rise not shown" in "; ".join(why), why


def test_absence_is_open_not_against():
    """Without the teacher's row M- cannot be tested: a failing rise leaves the call open."""
    call, why = verdict.decide(_table({**GOOD, "compute_rise": (0.0, -0.1, 0.1, 0.9)}))
    assert call == "inconclusive", why
    assert any(w.startswith("open: M:") for w in why)
    assert "M-" not in "; ".join(why)
    # and a missing compute_rise changes nothing
    assert verdict.decide(_table(GOOD))[0] == "policy transfer"


def test_m_minus_in_k_changes_the_bonferroni_threshold():
    """W-'s difference p lies between 0.05/4 and 0.05/3: it fires with k = 3, not with k = 4."""
    s_rel, se1 = (0.05, -0.05, 0.15, 0.3), 0.2 / (2 * 1.959964)
    t_val = 0.05 + 2.457 * math.hypot(se1, se1)
    t_rel = (t_val, t_val - 0.1, t_val + 0.1, 0.001)
    d, p = _z_p(s_rel, t_rel)
    assert 0.05 / 4 < p < 0.05 / 3
    rows = {**GOOD, "reliance": s_rel, "teacher_reliance": t_rel}
    call3, why3 = verdict.decide(_table(rows))
    assert call3 == "surface mimicry" and "(against-tests: C, N, W-, each at p < 0.0167)" in why3
    # M measured (the teacher's rise holds; the student's holds too: M+): k = 4
    call4, why4 = verdict.decide(_table({**rows, "compute_rise": (0.55, 0.45, 0.65, 0.001),
                                         "teacher_compute_rise": T_RISE}))
    assert call4 == "inconclusive", why4
    assert any(w.startswith("open: W: reliance not > 0, not shown below") for w in why4)


def _compute_result(model: str, rise: float, lo: float, hi: float, end: float,
                    p_perm: float) -> Result:
    table = pd.DataFrame([{"model": model, "layer": 2, "fraction": f, "accuracy": a,
                           "shuffled_mean": 0.1, "p_perm": p_perm if f == 1.0 else 0.5}
                          for f, a in ((0.0, end - rise), (1.0, end))])
    r = pd.DataFrame([{"model": model, "layer": 2, "n": N, "first": 0.0, "last": 1.0,
                       "rise": rise, "ci_low": lo, "ci_high": hi, "p": 0.001}])
    return Result("compute", table, tables={"rise": r}, meta={})


def test_four_task_align_with_compute_rows():
    """4-task align() + compute results through verdict.run: M- fires in the family of 3."""
    from test_verdict_multitask import _four_task, _verdict

    suite, traces = _four_task(7, 0.6, 0.6, acc_student=0.85, acc_base=0.8)
    teacher = _compute_result("T", 0.6, 0.5, 0.7, 0.8, 0.01)
    low = {"S": _compute_result("S", 0.0, -0.08, 0.08, 0.2, 0.4), "T": teacher}
    call, ev, _ = _verdict(suite, traces, compute=low)
    assert ev.loc["compute_rise", "value"] == 0.0
    assert ev.loc["teacher_compute_rise", "p_end"] == 0.01
    assert call["call"] == "surface mimicry", call["decided_by"]
    assert "M-:" in call["decided_by"] and "(against-tests: C, N, M-" in call["decided_by"]
    high = {"S": _compute_result("S", 0.55, 0.45, 0.65, 0.8, 0.01), "T": teacher}
    call, _, _ = _verdict(suite, traces, compute=high)
    assert call["call"].startswith("inconclusive")       # W has no rows here
    assert "M: the gold answer becomes decodable" in call["decided_by"]
