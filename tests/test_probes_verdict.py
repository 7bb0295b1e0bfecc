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
    for k, (v, lo, hi, p) in rows.items():
        out.append(verdict._row("s", k, "x", v, lo, hi, p))
    return pd.DataFrame(out)


GOOD = dict(behaviour_r=(0.6, 0.4, 0.8, 0.001), teacher_behaviour_r=(0.7, 0.5, 0.85, 0.001), delta_r=(-0.05, -0.2, 0.1, 0.5),
            accuracy_vs_base=(0.1, np.nan, np.nan, 0.01), planning_rho=(0.5, 0.3, 0.7, 0.01),
            teacher_planning_rho=(0.6, 0.45, 0.75, 0.01), ablation_drop=(0.3, 0.1, 0.5, 0.01))


@pytest.mark.parametrize("change,expected", [
    ({}, "policy transfer"),
    ({"behaviour_r": (0.05, -0.1, 0.2, 0.4)}, "surface mimicry"),
    ({"delta_r": (-0.5, -0.7, -0.3, 0.001)}, "surface mimicry"),
    ({"accuracy_vs_base": (-0.2, np.nan, np.nan, 0.001)}, "surface mimicry"),
    ({"accuracy_vs_base": (-0.2, np.nan, np.nan, 0.3)}, "policy transfer"),
    ({"planning_rho": (0.05, -0.1, 0.2, 0.3)}, "surface mimicry"),
    ({"planning_rho": (0.2, 0.1, 0.3, 0.01)}, "policy transfer"),      # below teacher: shown only
    ({"planning_rho": (np.nan, np.nan, np.nan, np.nan)}, "inconclusive"),
    ({"ablation_drop": (-0.1, -0.3, -0.01, 0.01)}, "policy transfer"),  # W via accuracy gain
    ({"ablation_drop": (-0.1, -0.3, -0.01, 0.01),
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}, "surface mimicry"),  # W fails
    ({"ablation_drop": (np.nan,) * 4, "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)},
     "inconclusive"),                                                  # W untested
    ({"ablation_drop": (0.05, -0.1, 0.2, 0.4)}, "policy transfer"),    # undecided: no veto
    # reliance decides W when present; the activation ablation only stands in without it
    ({"reliance": (0.4, 0.3, 0.5, 0.001), "ablation_drop": (-0.1, -0.3, -0.01, 0.01),
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}, "policy transfer"),
    ({"reliance": (0.06, -0.02, 0.15, 0.26), "ablation_drop": (0.03, 0.01, 0.05, 0.001),
      "accuracy_vs_base": (-0.1, np.nan, np.nan, 0.12)}, "surface mimicry"),  # seed-2 mimic
    ({"reliance": (0.04, 0.01, 0.08, 0.125),                     # bootstrap CI > 0, exact n.s.
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}, "surface mimicry"),
    ({"reliance": (-0.2, -0.3, -0.1, 0.001),
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}, "surface mimicry"),
    ({"reliance": (0.0, -0.05, 0.05, 1.0)}, "policy transfer"),   # W via accuracy gain
    ({"reliance": (np.nan,) * 4, "ablation_drop": (-0.1, -0.3, -0.01, 0.01),
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}, "surface mimicry"),  # ablation stands in
    # a teacher whose answers ignore its own reasoning: a flat student reliance is no evidence
    ({"reliance": (0.0, -0.05, 0.05, 1.0), "teacher_reliance": (0.02, -0.03, 0.07, 0.6),
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}, "policy transfer"),  # ablation decides
    ({"reliance": (0.0, -0.05, 0.05, 1.0), "teacher_reliance": (0.02, -0.03, 0.07, 0.6),
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9), "ablation_drop": (np.nan,) * 4},
     "inconclusive"),
    ({"reliance": (0.0, -0.05, 0.05, 1.0), "teacher_reliance": (0.5, 0.4, 0.6, 0.001),
      "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}, "surface mimicry"),
    ({"teacher_behaviour_r": (0.1, -0.1, 0.3, 0.3)}, "inconclusive"),  # teacher has no policy
    ({"teacher_behaviour_r": (0.1, -0.1, 0.3, 0.3), "behaviour_r": (0.0, -0.2, 0.2, 0.9)},
     "inconclusive"),
])
def test_rule(change, expected):
    call, reasons = verdict.decide(_ev(**{**GOOD, **change}))
    assert call == expected, reasons
    assert reasons


def test_w_reason_names_the_deciding_row():
    _, reasons = verdict.decide(_ev(**{**GOOD, "reliance": (0.06, -0.02, 0.15, 0.26),
                                       "accuracy_vs_base": (0.0, np.nan, np.nan, 0.9)}))
    assert [r for r in reasons if r.startswith("W:")] == [
        "W: no accuracy gain over base, and scrambling its reasoning's content does not cost "
        "accuracy (reliance not > 0 at p < 0.05): the reasoning does no work"]


def test_constant_cost_fails_alignment():
    ev = _ev(**GOOD)
    ev.loc[ev.evidence == "behaviour_r", ["value", "ci_low", "ci_high"]] = np.nan
    ev.loc[ev.evidence == "behaviour_r", "note"] = "constant cost over items: r undefined"
    call, reasons = verdict.decide(ev)
    assert call == "surface mimicry" and reasons[0].startswith("A: the student's cost")


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
    plan = planning.run(caches, teacher="T", n_perm=10, n_boot=200, progress_bar=False)
    calls = {}
    for s in ("good", "bad"):
        al = align(traces, suite, roles={"teacher": "T", "student": s, "base": "B"},
                   n_boot=500, n_perm=500, progress=False)
        al.save(tmp_path / s)
        v = verdict.run(teacher="T", students=s, alignment=tmp_path / s, planning=plan)
        calls[s] = v.tables["calls"].iloc[0]["call"]
        ev = v.table.set_index("evidence")
        assert ev.loc["behaviour_r", "n"] == 40 and ev.loc["ablation_drop", "reading"] == "n/a"
        assert ev.loc["delta_r", "source"] == "summary.json"
    assert calls == {"good": "policy transfer", "bad": "surface mimicry"}
    v.plot()
    # reliance rows come from probes.reliance, matched by the traces' model names
    from probes import reliance

    forced = []
    rng = np.random.default_rng(5)
    for t in traces:
        if t.model in ("T", "good", "bad"):
            keep = t.model == "bad" or rng.uniform() < 0.2   # "bad" loses nothing
            forced.append(Trace(item_id=t.item_id, model=t.model, task="t",
                                correct=bool(t.correct) and keep))
    rel = reliance.run([t for t in traces if t.model != "B"], forced, tasks=suite, n_boot=300)
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
