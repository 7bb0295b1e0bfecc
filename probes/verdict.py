"""Verdict: behavioural and mechanistic evidence side by side, and a call per teacher/student pair.

``run(teacher=..., students=[...], alignment=..., planning=..., difficulty=..., similarity=...,
entropy=..., ablation=..., reliance=...)`` reads whatever results are given (missing ones
become ``n/a``) and returns one evidence row per (student, measure) with its CI, plus ``.tables["calls"]``:
"policy transfer", "surface mimicry" or "inconclusive" and the rows that decided it.

The rule (docs/probes.md, "The verdict rule"), with 95% CIs:
  T  teacher      teacher's behavioural r CI low > 0 (else: inconclusive, nothing to transfer)
  A  aligned      student's behavioural r (log cost vs difficulty) CI low > 0; a student whose
                  cost is constant over items (r undefined) fails A
  C  collapse     Δr (student − teacher): CI high < 0
  N  neg.transfer student accuracy below base: diff < 0 and p < 0.05
  P  plans        student planning ρ (last_prompt → own log reasoning tokens, peak layer)
                  CI low > 0 (the teacher's is shown beside it, not required)
  W  works        the reasoning does work: accuracy above base (diff > 0, p < 0.05), or
                  reliance (accuracy own − after its own reasoning scrambled) > 0 with
                  McNemar p < 0.05. Only when the reliance row is missing (or the
                  teacher's own reliance is not > 0, so a flat student says nothing) does
                  the activation ablation stand in: drop (own − scrambled traces) CI low > 0
policy transfer  ⇐ T, A, P and W hold, and neither C nor N
surface mimicry  ⇐ T holds and (A fails, or C, or N, or P fails, or W fails while reliance
                  or the ablation was measured) — each only when its row is present
inconclusive     otherwise (a deciding row missing, or W untested)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from mimicry.errors import InputError

from . import mechanistic_row
from .base import Result

NA = float("nan")


def load_alignment(alignment: Any) -> tuple[pd.DataFrame | None, dict, pd.DataFrame | None]:
    """Return (alignment table, summary dict, exclusions) from an AlignmentResult, folder or dict."""
    if alignment is None:
        return None, {}, None
    if isinstance(alignment, (str, Path)):
        d = Path(alignment)
        if not (d / "summary.json").exists():
            raise InputError("no summary.json in the alignment folder", file=d,
                             fix="pass the --out folder of `mimicry align`")
        table = pd.read_csv(d / "alignment.csv") if (d / "alignment.csv").exists() else None
        excl = pd.read_csv(d / "exclusions.csv") if (d / "exclusions.csv").exists() else None
        return table, json.loads((d / "summary.json").read_text()), excl
    if isinstance(alignment, dict):
        return None, alignment, None
    return (getattr(alignment, "table", None), dict(getattr(alignment, "summary", {}) or {}),
            getattr(alignment, "exclusions", None))


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return NA
    return v if math.isfinite(v) else NA


def _row(student, evidence, kind, value=NA, lo=NA, hi=NA, p=NA, n=NA, layer=NA, source="",
         note=""):
    return {"student": student, "evidence": evidence, "kind": kind, "value": _num(value),
            "ci_low": _num(lo), "ci_high": _num(hi), "p": _num(p), "n": _num(n),
            "layer": _num(layer), "source": source, "note": note}


def _constant_models(summary: dict, excl: pd.DataFrame | None) -> set[str]:
    """Return the models whose alignment cells were excluded for constant cost."""
    out = set()
    if excl is not None and len(excl) and {"model", "reason"} <= set(excl.columns):
        out |= set(excl.loc[excl["reason"].astype(str).str.contains("constant"), "model"])
    return out


def _behaviour(student: str, teacher: str, table, summary: dict,
               names: dict[str, str] | None = None,
               excl: pd.DataFrame | None = None) -> list[dict]:
    rows = []
    names = names or {}
    key = student
    student, teacher = names.get(student, student), names.get(teacher, teacher)
    for who, ev in ((student, "behaviour_r"), (teacher, "teacher_behaviour_r")):
        pm = (summary.get("per_model") or {}).get(who)
        t = table[table["model"] == who] if table is not None else pd.DataFrame()
        if len(t) == 1 and math.isfinite(_num(t.iloc[0]["r"])):
            r = t.iloc[0]
            rows.append(_row(key, ev, "behavioural", r["r"], r["ci_low"], r["ci_high"],
                             r.get("p_perm"), r["n"], source="alignment.csv",
                             note=f"task {r['task']}"))
        elif pm and math.isfinite(_num(pm.get("r_bar"))):
            lo, hi = pm.get("ci_low"), pm.get("ci_high")
            note = "Fisher-z mean over tasks"
            if not math.isfinite(_num(lo)):
                lo, hi, note = pm.get("ci_fixed_low"), pm.get("ci_fixed_high"), note + " (fixed)"
            rows.append(_row(key, ev, "behavioural", pm.get("r_bar"), lo, hi, pm.get("p"),
                             pm.get("k"), source="summary.json", note=note))
        elif who in _constant_models(summary, excl):
            rows.append(_row(key, ev, "behavioural", source="alignment exclusions",
                             note="constant cost over items: r undefined"))
        else:
            rows.append(_row(key, ev, "behavioural", source="n/a"))
    dr = summary.get("delta_r") or {}
    if dr.get("student") == student and dr.get("per_task"):
        pt = dr["per_task"]
        if len(pt) == 1:
            r = pt[0]
            rows.append(_row(key, "delta_r", "behavioural", r["delta_r"], r["ci_low"],
                             r["ci_high"], r["p"], r["n"], source="summary.json"))
        else:
            at = dr.get("across_tasks", {})
            rows.append(_row(key, "delta_r", "behavioural",
                             _num(dr.get("r_bar_student")) - _num(dr.get("r_bar_teacher")),
                             p=at.get("wilcoxon_p"), n=len(pt), source="summary.json",
                             note="difference of Fisher means; p: Wilcoxon over tasks"))
    else:
        rows.append(_row(key, "delta_r", "behavioural", source="n/a",
                         note="alignment was not run with this student's role"))
    nt = summary.get("negative_transfer") or {}
    if nt.get("student") == student and nt.get("per_task"):
        pt = nt["per_task"]
        if len(pt) == 1:
            r = pt[0]
            rows.append(_row(key, "accuracy_vs_base", "behavioural", r["diff"], p=r["p"],
                             n=r["n"], source="summary.json", note="McNemar"))
        else:
            at = nt.get("across_tasks", {})
            rows.append(_row(key, "accuracy_vs_base", "behavioural", at.get("mean_diff"),
                             p=at.get("wilcoxon_p"), n=len(pt), source="summary.json",
                             note="Wilcoxon over tasks"))
    else:
        rows.append(_row(key, "accuracy_vs_base", "behavioural", source="n/a"))
    inf = summary.get("inflation") or {}
    if inf.get("student") == student:
        fit = inf.get("fit") or inf.get("fit_through_origin")
        if fit:
            rows.append(_row(key, "inflation_slope", "behavioural", fit.get("slope"),
                             fit.get("ci_low"), fit.get("ci_high"), fit.get("p"), fit.get("n"),
                             source="summary.json"))
        elif inf.get("per_task"):
            rows.append(_row(key, "inflation_slope", "behavioural",
                             inf["per_task"][0].get("verbosity_ratio"), source="summary.json",
                             note="one task: verbosity ratio student/base, no CI"))
    return rows


def _peak(df: pd.DataFrame) -> pd.Series | None:
    df = df.dropna(subset=["rho"])
    return None if df.empty else df.loc[df["rho"].idxmax()]


def _mechanistic(student, teacher, planning, difficulty, similarity, entropy, ablation):
    rows = []
    if planning is not None:
        t = planning.table
        for who, ev in ((student, "planning_rho"), (teacher, "teacher_planning_rho")):
            r = _peak(t[(t["role"] == who) & (t["target"] == "log_reasoning_tokens")])
            rows.append(_row(student, ev, "mechanistic", *(
                [r["rho"], r["rho_ci_low"], r["rho_ci_high"], r["p_perm"], r["n"], r["layer"]]
                if r is not None else []), source="planning" if r is not None else "n/a"))
        tr = planning.tables.get("transfer")
        if tr is not None and len(tr):
            r = _peak(tr[(tr["student"] == student) & (tr["target"] == "log_reasoning_tokens")])
            if r is not None:
                rows.append(_row(student, "planning_transfer_rho", "mechanistic", r["rho"],
                                 r["rho_ci_low"], r["rho_ci_high"], r["p_perm"], r["n"],
                                 r["student_layer"], source="planning",
                                 note="teacher's probe on the student"))
    else:
        rows.append(_row(student, "planning_rho", "mechanistic", source="n/a"))
    d = (difficulty or {}).get(student)
    if d is not None:
        r = _peak(d.table)
        rows.append(_row(student, "difficulty_peak_rho", "mechanistic", r["rho"], r["rho_ci_low"],
                         r["rho_ci_high"], r.get("p_perm"), r["n"], r["layer"],
                         source="difficulty", note=f"site {r['site']}"))
    s = (similarity or {}).get(student)
    if s is not None:
        t = s.table
        r = t.iloc[len(t) // 2] if len(t) else None
        if r is not None:
            rows.append(_row(student, "cka_to_teacher", "mechanistic", r["cka"], r["cka_ci_low"],
                             r["cka_ci_high"], r.get("p_perm"), r["n"], r["student_layer"],
                             source="similarity",
                             note=f"depth-matched, relative depth {r['rel_depth']:.2f}"))
    if entropy is not None:
        t = entropy.table[entropy.table["model"] == student]
        if len(t):
            r = t.loc[t["rho"].abs().idxmax()]
            rows.append(_row(student, "entropy_slope", "mechanistic", r["slope"],
                             r["slope_ci_low"], r["slope_ci_high"], r.get("partial_p"), r["n"],
                             r["layer"], source="entropy",
                             note="nats per SD difficulty, given log length"))
    a = (ablation or {}).get(student)
    if a is not None:
        pk = a.tables["peak"].dropna(subset=["drop"])
        scr = pk[pk["condition"].str.contains("scramb")]
        r = (scr if len(scr) else pk).iloc[0] if len(pk) else None
        if r is not None:
            rows.append(_row(student, "ablation_drop", "mechanistic", r["drop"], r["drop_ci_low"],
                             r["drop_ci_high"], r["p_drop"], r["n"], r["layer"],
                             source="ablation",
                             note=f"{a.meta['reference']} − {r['condition']}"))
    else:
        rows.append(_row(student, "ablation_drop", "mechanistic", source="n/a"))
    return rows


def _reliance(student: str, teacher: str, reliance: Result | None,
              model_names: dict[str, str] | None) -> list[dict]:
    """Rows ``reliance`` and ``teacher_reliance`` (accuracy own − after scrambled reasoning)."""
    rows = []
    t = reliance.table if reliance is not None else None
    names = model_names or {}
    for who, ev in ((student, "reliance"), (teacher, "teacher_reliance")):
        r = t[t["model"].isin({who, names.get(who, who)}) & (t["task"] == "all")] \
            if t is not None else []
        if len(r):
            r = r.iloc[0]
            rows.append(_row(student, ev, "behavioural", r["reliance"], r["ci_low"],
                             r["ci_high"], r["p"], r["n"], source="reliance",
                             note=f"accuracy {r['acc_own']:.2f} own vs {r['acc_forced']:.2f} "
                                  f"after scrambled reasoning ({r['test']})"))
        elif ev == "reliance":
            rows.append(_row(student, ev, "behavioural", source="n/a"))
    return rows


def decide(ev: pd.DataFrame) -> tuple[str, list[str]]:
    """Return (call, reasons) for one student's evidence rows, by the module's rule."""
    g = {r["evidence"]: r for _, r in ev.iterrows()}

    def have(k):
        return k in g and math.isfinite(g[k]["value"])

    def ci_ok(k):
        return have(k) and math.isfinite(g[k]["ci_low"]) and math.isfinite(g[k]["ci_high"])

    against, support, missing = [], [], []
    if ci_ok("teacher_behaviour_r") and g["teacher_behaviour_r"]["ci_low"] <= 0:
        return "inconclusive", ["T: the teacher's own behavioural r CI includes 0 or is below: "
                                "no difficulty-tracking policy to transfer or mimic"]
    if ci_ok("behaviour_r"):
        (support if g["behaviour_r"]["ci_low"] > 0 else against).append(
            "A: behavioural r CI " + ("excludes 0" if g["behaviour_r"]["ci_low"] > 0
                                      else "includes 0 or is below"))
    elif "behaviour_r" in g and str(g["behaviour_r"]["note"]).startswith("constant cost"):
        against.append("A: the student's cost is constant over items (no difficulty dependence)")
    else:
        missing.append("A (behavioural r)")
    if ci_ok("delta_r") and g["delta_r"]["ci_high"] < 0:
        against.append("C: Δr CI below 0 (alignment collapsed vs teacher)")
    acc = g.get("accuracy_vs_base")
    acc_p = _num(acc["p"]) if acc is not None else NA
    if have("accuracy_vs_base") and acc["value"] < 0 and acc_p < 0.05:
        against.append("N: accuracy significantly below base (negative transfer)")
    if ci_ok("planning_rho"):
        (support if g["planning_rho"]["ci_low"] > 0 else against).append(
            "P: planning ρ CI " + ("excludes 0" if g["planning_rho"]["ci_low"] > 0
                                   else "includes 0 or is below"))
    else:
        missing.append("P (planning ρ)")
    acc_up = have("accuracy_vs_base") and acc["value"] > 0 and acc_p < 0.05
    def relies(k):
        return g[k]["value"] > 0 and _num(g[k]["p"]) < 0.05

    rel = have("reliance") and math.isfinite(_num(g["reliance"]["p"]))
    rel_up = rel and relies("reliance")
    # a teacher whose own answers do not depend on its reasoning leaves nothing functional to
    # transfer: a student's flat reliance then says nothing against it
    teacher_flat = have("teacher_reliance") and math.isfinite(
        _num(g["teacher_reliance"]["p"])) and not relies("teacher_reliance")
    note = ""
    if rel and not rel_up and teacher_flat:
        rel = False
        note = " (reliance not used: the teacher's own reliance is not > 0)"
    # the activation ablation is a proxy for what reliance measures directly: it stands in
    # only when reliance was not measured
    abl = not rel and ci_ok("ablation_drop")
    abl_up = abl and g["ablation_drop"]["ci_low"] > 0
    if acc_up or rel_up or abl_up:
        support.append("W: " + " and ".join(
            (["accuracy significantly above base"] if acc_up else [])
            + (["scrambling its reasoning's content costs accuracy (reliance p < 0.05)"]
               if rel_up else [])
            + (["ablation drop CI above 0 (content carries the signal)"] if abl_up else []))
            + note)
    elif rel:
        against.append("W: no accuracy gain over base, and scrambling its reasoning's content "
                       "does not cost accuracy (reliance not > 0 at p < 0.05): the reasoning "
                       "does no work")
    elif abl:
        against.append("W: no accuracy gain over base and the difficulty signal survives "
                       "content scrambling (ablation drop CI includes or is below 0)" + note)
    else:
        missing.append("W (no accuracy gain over base shown; reliance and ablation not run)"
                       + note)
    m_support, m_against = mechanistic_row.judge(g)  # row M (probes/mechanistic_row.py)
    support, against = support + m_support, against + m_against
    if against:
        return "surface mimicry", against
    if not missing:
        return "policy transfer", support
    return "inconclusive", support + [f"missing/undecided: {m}" for m in missing]


def run(*, teacher: str, students: list[str] | str, alignment: Any = None,
        planning: Result | None = None, difficulty: dict[str, Result] | None = None,
        similarity: dict[str, Result] | None = None, entropy: Result | None = None,
        ablation: dict[str, Result] | None = None, reliance: Result | None = None,
        model_names: dict[str, str] | None = None, compute: dict[str, Result] | None = None,
        steer: dict[str, Result] | None = None, patch: dict[str, Result] | None = None,
        known_models: Any = ()) -> Result:
    """Return a :class:`Result`: evidence rows per student and ``.tables["calls"]`` with the call.

    ``alignment``: an AlignmentResult, an align ``--out`` folder, a summary dict, or
    ``{student: one of those}`` (one alignment per student, run with roles
    teacher/student/base — what Δr and negative transfer need). ``model_names``: the
    models' names in the alignment when they differ from the keys used here. ``compute``,
    ``steer``, ``patch``: ``{model: Result}`` of the causal/computation probes (row M and
    the rows beside it, :mod:`probes.mechanistic_row`).
    ``known_models``: other models the results may name (e.g. the base); a result keyed by a
    name that is none of these, the teacher, the students or the alignment's models raises
    :class:`InputError` (a naming mismatch is never silently n/a).
    """
    students = [students] if isinstance(students, str) else list(students)
    per_student = isinstance(alignment, dict) and set(alignment) & set(students) \
        and not {"per_model", "delta_r"} & set(alignment)
    _check_names(teacher, students, alignment, per_student, planning, difficulty, similarity,
                 entropy, ablation, reliance, model_names, known_models,
                 compute=compute, steer=steer, patch=patch)
    rows, calls = [], []
    for s in students:
        table, summary, excl = load_alignment(alignment.get(s) if per_student else alignment)
        ev = _behaviour(s, teacher, table, summary, model_names, excl) \
            + _reliance(s, teacher, reliance, model_names) + _mechanistic(
                s, teacher, planning, difficulty, similarity, entropy, ablation) \
            + mechanistic_row.rows(s, teacher, compute=compute, steer=steer, patch=patch)
        df = pd.DataFrame(ev)
        call, reasons = decide(df)
        rows.extend(ev)
        calls.append({"teacher": teacher, "student": s, "call": call,
                      "decided_by": "; ".join(reasons)})
    out = pd.DataFrame(rows)
    out.insert(0, "teacher", teacher)
    out["reading"] = out.apply(_reading, axis=1)
    meta = {"probe": "verdict", "teacher": teacher, "students": students,
            "rule": __doc__.split("The rule", 1)[1].strip(),
            "calls": {c["student"]: c["call"] for c in calls}}
    return Result("verdict", out, tables={"calls": pd.DataFrame(calls)}, meta=meta,
                  plotter=plot)


def _check_names(teacher, students, alignment, per_student, planning, difficulty, similarity,
                 entropy, ablation, reliance, model_names, known_models=(), *,
                 compute=None, steer=None, patch=None) -> None:
    """Raise InputError when a result is keyed by names the verdict was not given (probes.names)."""
    from .names import check_names

    names = model_names or {}
    aligned: set[str] = set()
    if alignment is not None:
        for s in students:
            table, summ, _ = load_alignment(alignment.get(s) if per_student else alignment)
            models = set(map(str, table["model"])) if table is not None and "model" in table \
                else set(map(str, summ.get("models") or []))
            aligned |= models
            missing = [m for m in (teacher, s) if models and names.get(m, m) not in models]
            if missing:
                raise InputError(
                    f"the alignment has no model {missing} (it has {sorted(models)})",
                    fix="give the verdict the model names the traces use, or pass "
                        "model_names={verdict name: trace model name}")
    check_names(teacher, students, {"planning": planning, "difficulty": difficulty,
                                    "similarity": similarity, "entropy": entropy,
                                    "ablation": ablation, "reliance": reliance,
                                    "compute": compute, "steer": steer, "patch": patch},
                known=aligned | set(known_models), model_names=names)


def _reading(r: pd.Series) -> str:
    if not math.isfinite(r["value"]):
        return "n/a"
    if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"]):
        return "CI > 0" if r["ci_low"] > 0 else "CI < 0" if r["ci_high"] < 0 else "CI ∋ 0"
    if math.isfinite(r["p"]):
        return "p < .05" if r["p"] < 0.05 else "p ≥ .05"
    return "no CI"


def plot(result: Result):
    """Return a figure: one row per evidence with its unit; rows that decided the call marked."""
    from .figures_calls import verdict_figure

    return verdict_figure(result)
