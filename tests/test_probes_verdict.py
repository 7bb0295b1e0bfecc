"""Verdict: the rule on hand-made evidence, and end to end from a real align() + planning()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _probes_fake import FakeCache

from mimicry.tasks.items import HumanNorms, Item, TaskSuite
from mimicry.traces import Trace
from probes import planning, verdict


def _ev(**rows):
    out = []
    for k, vals in rows.items():
        v, lo, hi, p = vals[:4]
        r = verdict._row("s", k, "x", v, lo, hi, p, n=100)
        if len(vals) > 4:
            r["gain_low"] = vals[4]
        out.append(r)
    return pd.DataFrame(out)


NA4 = (np.nan,) * 4
GOOD = dict(behaviour_r=(0.6, 0.4, 0.8, 0.001), teacher_behaviour_r=(0.7, 0.5, 0.85, 0.001),
            delta_r=(-0.05, -0.2, 0.1, 0.5), accuracy_vs_base=(0.1, 0.02, 0.18, 0.01),
            planning_rho=(0.5, 0.3, 0.7, 0.01, 0.1),
            teacher_planning_rho=(0.6, 0.45, 0.75, 0.01, 0.2),
            reliance=(0.4, 0.3, 0.5, 0.001), teacher_reliance=(0.5, 0.4, 0.6, 0.001),
            ablation_drop=(0.3, 0.1, 0.5, 0.01))
FLAT_T = {"teacher_reliance": (0.02, -0.03, 0.07, 0.6), "reliance": (0.0, -0.05, 0.05, 1.0)}
UNDER = "inconclusive (underpowered)"


@pytest.mark.parametrize("change,expected", [
    ({}, "policy transfer"),
    # A fails while Δr cannot tell the student from the teacher: absence of evidence
    ({"behaviour_r": (0.05, -0.1, 0.2, 0.4)}, UNDER),
    ({"behaviour_r": (0.05, -0.1, 0.2, 0.4), "delta_r": (-0.5, -0.7, -0.3, 0.001)},
     "surface mimicry"),                                              # C: worse than teacher
    ({"delta_r": (-0.3, -0.55, -0.02, 0.03)}, "policy transfer"),     # p > 0.05/3: no veto
    ({"accuracy_vs_base": (-0.2, -0.3, -0.1, 0.001)}, "surface mimicry"),  # N
    ({"accuracy_vs_base": (-0.2, -0.4, 0.05, 0.3)}, "policy transfer"),
    ({"planning_rho": (0.05, -0.1, 0.2, 0.3, -0.2)}, "inconclusive"),  # P not shown: no veto
    ({"planning_rho": (0.5, 0.3, 0.7, 0.01, -0.05)}, "inconclusive"),  # text explains it
    ({"planning_rho": (0.5, 0.3, 0.7, 0.01, np.nan)}, "inconclusive"),  # no baseline gain
    ({"planning_rho": NA4}, "inconclusive"),
    # post-hoc student: accurate, reliance 0, teacher relies -> W- (defect 6)
    ({"reliance": (0.0, -0.05, 0.05, 1.0), "teacher_reliance": (0.6, 0.5, 0.7, 1e-9),
      "accuracy_vs_base": (0.3, 0.2, 0.4, 1e-6)}, "surface mimicry"),
    # accuracy above base alone is not W
    ({"reliance": NA4, "teacher_reliance": NA4, "ablation_drop": NA4}, "inconclusive"),
    # flat student reliance whose CI also holds the teacher's: underpowered
    ({"reliance": (0.05, -0.05, 0.15, 0.3), "teacher_reliance": (0.12, 0.02, 0.22, 0.02)},
     UNDER),
    ({"reliance": (0.04, 0.01, 0.08, 0.125)}, "surface mimicry"),  # n.s. and far below teacher
    ({"reliance": (0.3, 0.1, 0.5, 0.07)}, "inconclusive"),       # not > 0, not below teacher
    # scramble costs accuracy but an empty reasoning does not: distraction, not use
    ({"reliance_empty": (0.0, -0.05, 0.05, 1.0)}, "inconclusive"),
    ({"reliance_empty": (0.3, 0.2, 0.4, 0.001), "reliance_filler": (0.2, 0.1, 0.3, 0.001)},
     "policy transfer"),
    ({"reliance_filler": (0.01, -0.04, 0.06, 0.8)}, "inconclusive"),
    # a teacher whose answers ignore its reasoning: the ablation stands in, never against
    ({**FLAT_T}, "policy transfer"),
    ({**FLAT_T, "ablation_drop": NA4}, "inconclusive"),
    ({**FLAT_T, "ablation_drop": (-0.1, -0.3, -0.01, 0.01)}, "inconclusive"),
    ({"reliance": NA4, "teacher_reliance": NA4}, "policy transfer"),   # ablation stands in
    ({"reliance": NA4}, "policy transfer"),                            # ... teacher alone too
    # T: the teacher must be aligned, and its r defined and present (defect 3)
    ({"teacher_behaviour_r": (0.1, -0.1, 0.3, 0.3)}, "inconclusive"),
    ({"teacher_behaviour_r": NA4}, "inconclusive"),
    ({"teacher_behaviour_r": NA4, "behaviour_r": (0.0, -0.2, 0.2, 0.9),
      "delta_r": (-0.6, -0.8, -0.4, 0.001)}, "inconclusive"),
])
def test_rule(change, expected):
    call, reasons = verdict.decide(_ev(**{**GOOD, **change}))
    assert call == expected, reasons
    assert reasons


def test_underpowered_prints_items_needed():
    ev = _ev(**{**GOOD, "behaviour_r": (0.05, -0.1, 0.2, 0.4)})
    call, reasons = verdict.decide(ev)
    # Δr CI width 0.3, n 100, teacher r 0.7: 100 · (0.3 / 0.7)² = 18.4 -> 19
    assert call == UNDER and any("~19 items needed" in r for r in reasons), reasons


def test_against_tests_are_bonferroni_corrected():
    # three against-tests measured: each at 0.05 / 3; with only Δr measured it is 0.05
    ev = {**GOOD, "delta_r": (-0.3, -0.55, -0.02, 0.03)}
    assert verdict.decide(_ev(**ev))[0] == "policy transfer"
    ev.update(accuracy_vs_base=NA4, reliance=NA4)
    call, reasons = verdict.decide(_ev(**ev))
    assert call == "surface mimicry" and "C, each at p < 0.05" in reasons[-1], reasons


def test_teacher_with_constant_cost_is_inconclusive():
    ev = _ev(**{**GOOD, "teacher_behaviour_r": NA4, "delta_r": NA4})
    ev.loc[ev.evidence == "teacher_behaviour_r", "note"] = "constant cost over items: r undefined"
    call, reasons = verdict.decide(ev)
    assert call == "inconclusive" and "constant cost" in reasons[0]


def test_constant_cost_fails_alignment():
    ev = _ev(**GOOD)
    ev.loc[ev.evidence == "behaviour_r", ["value", "ci_low", "ci_high"]] = np.nan
    ev.loc[ev.evidence == "behaviour_r", "note"] = "constant cost over items: r undefined"
    call, reasons = verdict.decide(ev)
    assert call == "surface mimicry" and reasons[0].startswith("X: the student's cost")


def _suite_and_traces(n=40, seed=0):
    rng = np.random.default_rng(seed)
    rt = np.exp(7 + 0.5 * rng.standard_normal(n))
    items = [Item(f"q{i}", "t", prompt="p", answer="a", human=HumanNorms(rt_ms=float(rt[i])))
             for i in range(n)]
    suite = TaskSuite("toy", items)
    z = (np.log(rt) - np.log(rt).mean()) / np.log(rt).std()
    traces = []
    for model, slope, acc in (("T", 1.0, 0.95), ("good", 0.9, 0.9), ("bad", 0.0, 0.5),
                              ("B", 0.0, 0.3)):
        toks = np.exp(4 + slope * z + 0.3 * rng.standard_normal(n)).round().astype(int) + 1
        correct = rng.uniform(size=n) < acc
        for i in range(n):
            traces.append(Trace(item_id=f"q{i}", model=model, task="t",
                                reasoning_tokens=int(toks[i]), correct=bool(correct[i])))
    return suite, traces, z


def _cache(tokens, strength, seed, ids):
    rng = np.random.default_rng(seed)
    lt = np.log1p(tokens)
    z = (lt - lt.mean()) / lt.std()
    resid = {(layer, "last_prompt"): rng.standard_normal((len(ids), 8)) for layer in range(3)}
    resid[(2, "last_prompt")][:, 0] += strength * z
    items = pd.DataFrame({"item_id": ids, "task": "t", "reasoning_tokens": tokens})
    return FakeCache(items, resid)


def test_verdict_end_to_end(tmp_path):
    from mimicry.alignment import align

    suite, traces, _ = _suite_and_traces()
    ids = [it.item_id for it in suite]
    tok = {m: np.array([t.reasoning_tokens for t in traces if t.model == m]) for m in
           ("T", "good", "bad", "B")}
    caches = {"T": _cache(tok["T"], 3, 1, ids), "good": _cache(tok["good"], 3, 2, ids),
              "bad": _cache(tok["bad"], 0, 3, ids), "B": _cache(tok["B"], 0, 4, ids)}
    plan = planning.run(caches, tasks=suite, teacher="T", n_perm=40, n_boot=200,
                        progress_bar=False)
    from probes import reliance

    forced = []
    rng = np.random.default_rng(5)
    for t in traces:
        if t.model in ("T", "good", "bad"):
            keep = t.model == "bad" or rng.uniform() < 0.2   # "bad" loses nothing
            forced.append(Trace(item_id=t.item_id, model=t.model, task="t",
                                correct=bool(t.correct) and keep))
    rel = reliance.run([t for t in traces if t.model != "B"], forced, tasks=suite, n_boot=300)
    calls = {}
    for s in ("good", "bad"):
        al = align(traces, suite, roles={"teacher": "T", "student": s, "base": "B"},
                   n_boot=500, n_perm=500, progress=False)
        al.save(tmp_path / s)
        v = verdict.run(teacher="T", students=s, alignment=tmp_path / s, planning=plan,
                        reliance=rel)
        calls[s] = v.tables["calls"].iloc[0]["call"]
        ev = v.table.set_index("evidence")
        assert ev.loc["behaviour_r", "n"] == 40 and ev.loc["ablation_drop", "reading"] == "n/a"
        assert ev.loc["delta_r", "source"] == "summary.json"
    assert calls == {"good": "policy transfer", "bad": "surface mimicry"}
    v.plot()
    # reliance rows come from probes.reliance, matched by the traces' model names
    al = tmp_path / "good"
    v3 = verdict.run(teacher="teacher", students="student", alignment=al, planning=plan,
                     reliance=rel, model_names={"teacher": "T", "student": "good"})
    ev = v3.table.set_index("evidence")
    row = rel.table.query("model == 'good' and task == 'all'").iloc[0]
    assert ev.loc["reliance", "value"] == pytest.approx(row["reliance"])
    assert ev.loc["reliance", "p"] == pytest.approx(row["p"])
    assert ev.loc["teacher_reliance", "value"] == pytest.approx(
        rel.table.query("model == 'T' and task == 'all'").iloc[0]["reliance"])
    v2 = verdict.run(teacher="T", students=["good"])           # nothing given: all n/a
    assert v2.tables["calls"].iloc[0]["call"] == "inconclusive"
    from mimicry.errors import InputError

    with pytest.raises(InputError, match="summary.json"):
        verdict.run(teacher="T", students="good", alignment=tmp_path / "nope")
    # a result keyed by other names than the verdict's is an error listing both, never n/a
    from types import SimpleNamespace

    renamed = SimpleNamespace(table=plan.table.assign(
        role=plan.table["role"].map({"T": "teacher", "good": "student"}).fillna("other")),
        tables={})
    with pytest.raises(InputError, match=r"planning has \['other', 'student', 'teacher'\]"):
        verdict.run(teacher="T", students=["good"], alignment=tmp_path / "good",
                    planning=renamed)
    with pytest.raises(InputError, match=r"no model \['student_mastery'\]"):
        verdict.run(teacher="T", students=["student_mastery"], alignment=tmp_path / "good")
