"""The verdict's mechanistic evidence: rows from the computation, steering and patching probes.

``rows(student, teacher, compute=..., steer=..., patch=...)`` returns evidence rows in the
verdict's row format; ``judge(rows_by_evidence)`` returns what the deciding row M adds to the
call (``support``, ``against`` lists), the only mechanistic row that can decide:

  M  computes   ``compute_rise``: out-of-fold accuracy of decoding the GOLD answer from the
                student's last-layer residual at the end of its reasoning (fraction 1,
                ``</think>``) minus at its start (fraction 0), paired bootstrap 95% CI over
                items. M holds ⇐ CI low > 0 and the end accuracy beats its shuffled-label
                control (p_perm < 0.05); M fails ⇐ otherwise. Counted only when the row is
                present, and against the student only when the teacher's own
                ``teacher_compute_rise`` holds (a teacher whose reasoning does not arrive at
                the answer leaves no computation to transfer).
                M failing is evidence of surface mimicry; M holding supports policy transfer
                (it is not required: a missing M leaves the call to the other rows).

Reported beside the call, not deciding: ``steer_teacher_mapped`` (slope of mean log(1 +
reasoning tokens) per unit α along the teacher's mapped direction, bootstrap CI, p against
the random-direction band), ``steer_own`` (the same for the student's own difference of
means) and ``patch_effect`` (normalised effect of patching a hard item's ``last_prompt``
state into an easy one at the student's middle layer). Rule frozen in the commit "mech:
freeze rule" (docs/probes.md, "The verdict rule", row M).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

NA = float("nan")


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return NA
    return v if math.isfinite(v) else NA


def row(student, evidence, kind="mechanistic", value=NA, lo=NA, hi=NA, p=NA, n=NA, layer=NA,
        source="", note="") -> dict:
    """Return one evidence row in the verdict's format."""
    return {"student": student, "evidence": evidence, "kind": kind, "value": _num(value),
            "ci_low": _num(lo), "ci_high": _num(hi), "p": _num(p), "n": _num(n),
            "layer": _num(layer), "source": source, "note": note}


def _pick(results: dict | None, who: str):
    if not results:
        return None
    return results.get(who)


def compute_row(student: str, who: str, evidence: str, result) -> dict | None:
    """Return the ``compute_rise`` row of model ``who`` from a compute Result (last layer)."""
    if result is None:
        return None
    rise = result.tables["rise"]
    t = result.table
    if "model" in rise.columns and who in set(rise["model"]):
        rise, t = rise[rise["model"] == who], t[t["model"] == who]
    if not len(rise):
        return None
    r = rise.loc[rise["layer"].idxmax()]
    end = t[(t["layer"] == r["layer"]) & (t["fraction"] == r["last"])]
    e = end.iloc[0] if len(end) else None
    note = (f"gold answer decoded at the end {e['accuracy']:.2f} vs start "
            f"{e['accuracy'] - r['rise']:.2f}; end vs shuffled labels "
            f"{e['shuffled_mean']:.2f}, p_perm {e['p_perm']:.3f}") if e is not None else ""
    out = row(student, evidence, value=r["rise"], lo=r["ci_low"], hi=r["ci_high"], p=r["p"],
              n=r["n"], layer=r["layer"], source="compute", note=note)
    out["p_end"] = _num(e["p_perm"]) if e is not None else NA
    return out


def rows(student: str, teacher: str, *, compute: dict | None = None,
         steer: dict | None = None, patch: dict | None = None) -> list[dict]:
    """Return the mechanistic rows of one student (missing inputs give no rows).

    ``compute``, ``steer``, ``patch``: ``{model name: Result}`` of the three probes.
    """
    out = []
    if compute:
        for who, ev in ((student, "compute_rise"), (teacher, "teacher_compute_rise")):
            r = compute_row(student, who, ev, _pick(compute, who))
            if r is not None:
                out.append(r)
            elif ev == "compute_rise":
                out.append(row(student, ev, source="n/a"))
    s = _pick(steer, student)
    if s is not None:
        eff = s.tables["effects"]
        for kind, ev in (("teacher_mapped", "steer_teacher_mapped"), ("own_meandiff",
                                                                        "steer_own")):
            e = eff[eff["kind"] == kind]
            if len(e):
                e = e.iloc[0]
                out.append(row(student, ev, value=e["slope"], lo=e["ci_low"], hi=e["ci_high"],
                               p=e.get("p_random"), n=e["n"], layer=s.meta.get("layer"),
                               source="steer",
                               note=f"Δ log(1+tokens) per unit α; random band "
                                    f"[{e.get('random_low', NA):.3f}, "
                                    f"{e.get('random_high', NA):.3f}]; p vs random"))
    pt = _pick(patch, student)
    if pt is not None:
        t = pt.table[pt.table["direction"] == "hard_to_easy"]
        if len(t):
            mid = t.iloc[(t["layer"] - t["layer"].max() / 2).abs().argsort().iloc[0]]
            out.append(row(student, "patch_effect", value=mid["effect"], lo=mid["ci_low"],
                           hi=mid["ci_high"], n=mid["n_pairs"], layer=mid["layer"],
                           source="patch", note="hard → easy last_prompt, normalised effect"))
    return out


def holds(r: dict | pd.Series) -> bool:
    """Return whether a ``compute_rise`` row holds: CI low > 0 and end p_perm < 0.05."""
    lo = _num(r["ci_low"])
    p_end = _num(r.get("p_end", NA)) if hasattr(r, "get") else NA
    return math.isfinite(lo) and lo > 0 and (not math.isfinite(p_end) or p_end < 0.05)


def judge(g: dict) -> tuple[list[str], list[str]]:
    """Return (support, against) reasons that row M adds, from ``{evidence: row}``."""
    r = g.get("compute_rise")
    if r is None or not math.isfinite(_num(r["value"])) or not math.isfinite(
            _num(r["ci_low"])):
        return [], []
    if holds(r):
        return ["M: the gold answer becomes decodable along the student's reasoning "
                "(compute rise CI above 0)"], []
    t = g.get("teacher_compute_rise")
    if t is not None and math.isfinite(_num(t["ci_low"])) and not holds(t):
        return [], []
    return [], ["M: the gold answer is not decodable at the end of the student's reasoning "
                "any better than at its start (compute rise CI includes 0 or is below): its "
                "reasoning does not compute the answer"]
