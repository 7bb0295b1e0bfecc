"""The rule letters read from a verdict's reasons: every row that decided, W- included."""

from __future__ import annotations

from probes.figures_calls import decided_rows
from probes.verdict_reasons import rule_letters, short

MIMIC = ("N: accuracy below base by 0.42 (exact McNemar p = 1.5e-09 < 0.0167); W-: its answers "
         "do not depend on its reasoning, the teacher's do (reliance -0.04 vs 0.71, difference "
         "p = 3.5e-35 < 0.0167); M: the gold answer is not decodable at the end of the "
         "student's reasoning any better than at its start (compute rise CI includes 0 or is "
         "below): its reasoning does not compute the answer; (against-tests: C, N, W-, each at "
         "p < 0.0167)")
OPEN = ("A: behavioural r CI excludes 0; W: its reasoning does work, as the teacher's does "
        "(reliance > 0, p < 0.05); open: P: planning not shown beyond chance (max-stat p = "
        "0.0099, gain low = -0.06); open: W: reliance not > 0; A: Δr CI [-0.2, 0.1] contains "
        "both 0 and −r̄_teacher = -0.90; ~400 items needed")


def test_letters_of_the_demo_reasons():
    assert rule_letters(MIMIC) == (["N", "W-", "M"], [])
    assert short(MIMIC) == "N, W-, M"
    # after the open rows come the power notes: they did not decide anything
    assert rule_letters(OPEN) == (["A", "W"], ["P", "W"])
    assert short(OPEN) == "A, W; open: P, W"
    assert rule_letters("C: Δr̄ -0.65 below; N; W-; M (as above)") == (["C", "N", "W-", "M"], [])
    assert rule_letters("T: the teacher's behavioural r is missing: nothing to compare") == (
        ["T"], [])
    assert rule_letters("M-: decodable along the teacher's reasoning, not along the student's "
                        "(difference p = 0.001 < 0.0125); (against-tests: C, N, W-, M-, each "
                        "at p < 0.0125)") == (["M-"], [])
    assert rule_letters(float("nan")) == ([], []) and short("") == ""


def test_the_verdict_figure_marks_the_w_minus_and_m_rows():
    assert decided_rows(MIMIC) == {"accuracy_vs_base", "reliance", "teacher_reliance",
                                   "compute_rise"}
