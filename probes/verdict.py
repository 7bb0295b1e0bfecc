"""Verdict: behavioural and mechanistic evidence side by side, and a call per teacher/student pair.

``run(teacher=..., students=[...], alignment=..., planning=..., difficulty=..., similarity=...,
entropy=..., ablation=..., reliance=...)`` reads whatever results are given (missing ones
become ``n/a``) and returns one evidence row per (student, measure) with its CI, plus ``.tables["calls"]``:
"policy transfer", "surface mimicry" or "inconclusive" and the rows that decided it.

The rule lives in :mod:`probes.verdict_rule` (docs/probes.md, "The verdict rule"): T (teacher
aligned), A (student aligned), P (planning beyond chance over layers and beyond text-only
baselines) and W (its reasoning does work, as the teacher's does) must hold for "policy
transfer", and M (the answer becomes decodable along the reasoning) when its row is present;
only evidence that the student is WORSE than the teacher or its base (C: Δr̄ below 0, N:
accuracy below base, W-: reliance below the teacher's, M-: compute rise below the teacher's,
X: constant cost; Bonferroni over the against-tests measured) gives "surface mimicry"; everything else is "inconclusive", with
"(underpowered)" and the items needed when a CI cannot tell the student from the teacher.
On the multi-task path every test pools over items (stratified by task): see
:mod:`mimicry.stats.pooled`.
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
from .verdict_rule import decide, reading

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
         note="", gain=NA, gain_low=NA, gain_high=NA):
    return {"student": student, "evidence": evidence, "kind": kind, "value": _num(value),
            "ci_low": _num(lo), "ci_high": _num(hi), "p": _num(p), "n": _num(n),
            "layer": _num(layer), "source": source, "note": note, "gain": _num(gain),
            "gain_low": _num(gain_low), "gain_high": _num(gain_high)}


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
    dr = summary.get("delta_r") or {}
    pooled = dr.get("pooled") if dr.get("student") == student else None
    for who, ev, side in ((student, "behaviour_r", "student"),
                          (teacher, "teacher_behaviour_r", "teacher")):
        pm = (summary.get("per_model") or {}).get(who)
        t = table[table["model"] == who] if table is not None else pd.DataFrame()
        if pooled and dr.get(side) == who and math.isfinite(_num(pooled.get(f"r_bar_{side}"))):
            lo, hi = pooled[f"{side}_ci"]
            rows.append(_row(key, ev, "behavioural", pooled[f"r_bar_{side}"], lo, hi,
                             pooled.get(f"{side}_p"), pooled["n"], source="summary.json",
                             note=f"Fisher-z mean over {pooled['k']} task(s); items resampled "
                                  "within task"))
        elif len(t) == 1 and math.isfinite(_num(t.iloc[0]["r"])):
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
    if pooled:
        rows.append(_row(key, "delta_r", "behavioural", pooled["delta_r"], pooled["ci_low"],
                         pooled["ci_high"], pooled["p"], pooled["n"], source="summary.json",
                         note=f"Δ of Fisher-z means over {pooled['k']} task(s); paired "
                              "bootstrap of items within task"))
    elif dr.get("student") == student and dr.get("per_task"):
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
    if nt.get("student") == student and nt.get("pooled"):
        pb = nt["pooled"]
        rows.append(_row(key, "accuracy_vs_base", "behavioural", pb["diff"], pb["ci_low"],
                         pb["ci_high"], pb["p"], pb["n"], source="summary.json",
                         note=f"exact McNemar on pooled discordant pairs ({pb['a_only']} base "
                              f"only, {pb['b_only']} student only; {pb['k']} task(s)); "
                              f"smallest attainable p {pb['min_p']:.2g}"))
    elif nt.get("student") == student and nt.get("per_task"):
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


def _peak_row(student, ev, r, source, note=""):
    """Return the evidence row of a peak layer, corrected for choosing it among layers."""
    if "p_maxstat" in r.index and math.isfinite(_num(r["p_maxstat"])):
        pmin = _num(r.get("p_min"))
        if pmin >= 0.05:
            note = (note + "; " if note else "") + (
                f"too few permutations: the smallest attainable p is {pmin:.3g} >= 0.05, "
                "so this row cannot hold (raise n_perm)")
        return _row(student, ev, "mechanistic", r["rho"], r["rho_sim_low"], r["rho_sim_high"],
                    r["p_maxstat"], r["n"], r["layer"], source=source,
                    note=(note + "; " if note else "") + f"peak of {int(r['n_layers_tested'])} "
                         "layers: max-stat permutation p, simultaneous CI; gain over text "
                         f"baseline '{r['baseline'] or 'none'}' (ρ {_num(r['baseline_rho']):.2f})",
                    gain=r["gain"], gain_low=r["gain_sim_low"], gain_high=r["gain_sim_high"])
    return _row(student, ev, "mechanistic", r["rho"], r["rho_ci_low"], r["rho_ci_high"],
                NA, r["n"], r["layer"], source=source,
                note=(note + "; " if note else "") + "uncorrected peak: no max-stat p")


def _mechanistic(student, teacher, planning, difficulty, similarity, entropy, ablation):
    rows = []
    if planning is not None:
        t = planning.table
        for who, ev in ((student, "planning_rho"), (teacher, "teacher_planning_rho")):
            r = _peak(t[(t["role"] == who) & (t["target"] == "log_reasoning_tokens")])
            rows.append(_peak_row(student, ev, r, "planning") if r is not None
                        else _row(student, ev, "mechanistic", source="n/a"))
        tr = planning.tables.get("transfer")
        if tr is not None and len(tr):
            d = tr[(tr["student"] == student) & (tr["target"] == "log_reasoning_tokens")]
            r = _peak(d)
            if r is not None:
                m = int(d["rho"].notna().sum())
                rows.append(_row(student, "planning_transfer_rho", "mechanistic", r["rho"],
                                 r["rho_ci_low"], r["rho_ci_high"],
                                 min(1.0, _num(r["p_perm"]) * m), r["n"],
                                 r["student_layer"], source="planning",
                                 note=f"teacher's probe on the student; peak of {m} layers, "
                                      "p Bonferroni × layers (CI uncorrected)"))
    else:
        rows.append(_row(student, "planning_rho", "mechanistic", source="n/a"))
    d = (difficulty or {}).get(student)
    if d is not None:
        r = _peak(d.table)
        rows.append(_peak_row(student, "difficulty_peak_rho", r, "difficulty",
                              note=f"site {r['site']}"))
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
                             r["slope_ci_low"], r["slope_ci_high"],
                             min(1.0, _num(r.get("partial_p")) * len(t)), r["n"],
                             r["layer"], source="entropy",
                             note=f"nats per SD difficulty, given log length; peak of {len(t)}"
                                  " rows, p Bonferroni × rows (CI uncorrected)"))
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
    if t is not None and "control" not in t.columns:
        t = t.assign(control="scrambled")
    for who, ev0 in ((student, "reliance"), (teacher, "teacher_reliance")):
        for control in ("scrambled", "empty", "filler"):
            ev = ev0 if control == "scrambled" else f"{ev0}_{control}"
            r = t[t["model"].isin({who, names.get(who, who)}) & (t["task"] == "all")
                  & (t["control"] == control)] if t is not None else []
            if len(r):
                r = r.iloc[0]
                rows.append(_row(student, ev, "behavioural", r["reliance"], r["ci_low"],
                                 r["ci_high"], r["p"], r["n"], source="reliance",
                                 note=f"accuracy {r['acc_own']:.2f} own vs "
                                      f"{r['acc_forced']:.2f} after {control} reasoning "
                                      f"({r['test']})"))
            elif ev == "reliance":
                rows.append(_row(student, ev, "behavioural", source="n/a"))
    return rows


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
    out["reading"] = out.apply(reading, axis=1)
    meta = {"probe": "verdict", "teacher": teacher, "students": students,
            "rule": _rule_text(),
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


def _rule_text() -> str:
    from . import verdict_rule

    return (verdict_rule.__doc__ or "").split("\n\n", 1)[1].strip()


def plot(result: Result):
    """Return a figure: one row per evidence with its unit; rows that decided the call marked."""
    from .figures_calls import verdict_figure

    return verdict_figure(result)
