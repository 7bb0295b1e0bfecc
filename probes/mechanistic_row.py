"""The verdict's mechanistic evidence: rows from the computation, steering and patching probes.

``rows(student, teacher, compute=..., steer=..., patch=...)`` returns evidence rows in the
verdict's row format; ``judge(rows_by_evidence, alpha_k)`` returns what the deciding row M adds
to the call (``support``, ``against``, ``open``, ``power`` lists), the only mechanistic row that
can decide; ``measured(rows_by_evidence)`` says whether its AGAINST test M− was measured (the
verdict counts it in k, the Bonferroni family C, N, W−, M−):

  M  computes   ``compute_rise``: out-of-fold accuracy of decoding the GOLD answer from the
                student's last-layer residual at the end of its reasoning (fraction 1,
                ``</think>``) minus at its start (fraction 0, the first reasoning token),
                paired bootstrap 95% CI over items; ``teacher_compute_rise``: the same for
                the teacher. A rise *holds* ⇐ CI low > 0 and the end accuracy beats its
                shuffled-label control (p_perm < 0.05).
     M+         the student's rise holds: supports policy transfer.
     M−         AGAINST ⇐ the teacher's rise holds, the student's does not, and student −
                teacher rise < 0 with p < 0.05 / k (z from the two CIs, as W−: independent
                samples, conservative for the same items). Measured (counted in k) whenever
                both rows have a CI and the teacher's holds.
     open       the student's rise does not hold and M− does not fire: "(underpowered)" with
                the items needed when its CI contains both 0 and the teacher's rise; when the
                teacher's row is missing (M− untestable) M is open too. A teacher whose rise
                does not hold leaves no computation to transfer: M then adds nothing unless
                the student's holds. A missing ``compute_rise`` row adds nothing.

No separate text baseline: the rise is end minus start of the same reasoning, and the start
residual has read the whole prompt, so whatever the prompt alone gives away about the answer
is already in the start term (a stronger baseline than prompt length or a bag of tokens, which
only see the text). The verdict uses that gain.

Reported beside the call, not deciding: ``steer_teacher_mapped`` (slope of mean log(1 +
reasoning tokens) per unit α along the teacher's mapped direction, bootstrap CI, p against
the random-direction band), ``steer_own`` (the same for the student's own difference of
means) and ``patch_effect`` (normalised effect of patching a hard item's ``last_prompt``
state into an easy one at the student's middle layer). Row M was first frozen in "mech:
freeze rule" (outside the Bonferroni family, failing counted against); the rule above was
frozen in "verdict: freeze rule (row M in the Bonferroni family ...)" (docs/probes.md, "The
verdict rule", row M).
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


def _ok(r) -> bool:
    return r is not None and math.isfinite(_num(r["value"])) and math.isfinite(
        _num(r["ci_low"])) and math.isfinite(_num(r["ci_high"]))


def measured(g: dict) -> bool:
    """Return whether M− is measured: both rise rows have a CI and the teacher's holds."""
    s, t = g.get("compute_rise"), g.get("teacher_compute_rise")
    return _ok(s) and _ok(t) and holds(t)


def diff_p(a, b) -> tuple[float, float]:
    """Return (a − b, two-sided p) from two rows' values and 95% CIs (z, independent samples)."""
    from scipy import stats as sps

    d = _num(a["value"]) - _num(b["value"])
    se = math.hypot(*((_num(x["ci_high"]) - _num(x["ci_low"])) / (2 * 1.959964)
                      for x in (a, b)))
    return d, (float(2 * sps.norm.sf(abs(d) / se)) if se > 0 else NA)


def judge(g: dict, alpha_k: float = 0.05) -> tuple[list[str], list[str], list[str], list[str]]:
    """Return (support, against, open, power) reasons that row M adds, from ``{evidence: row}``.

    ``alpha_k``: the Bonferroni level of the AGAINST tests (0.05 / k).
    """
    from mimicry.stats.pooled import items_needed

    s, t = g.get("compute_rise"), g.get("teacher_compute_rise")
    if not _ok(s):
        return [], [], [], []
    if holds(s):
        return ["M: the gold answer becomes decodable along the student's reasoning "
                f"(compute rise {_num(s['value']):.2f}, CI low {_num(s['ci_low']):.2f} > 0, "
                "end beats shuffled labels)"], [], [], []
    if not _ok(t):
        return [], [], ["M: compute rise not shown, and the teacher's is missing (M− cannot "
                        "be tested)"], []
    if not holds(t):
        return [], [], [], []
    d, p = diff_p(s, t)
    if d < 0 and p < alpha_k:
        return [], [f"M-: the gold answer becomes decodable along the teacher's reasoning, not "
                    f"along the student's (compute rise {_num(s['value']):.2f} vs "
                    f"{_num(t['value']):.2f}, difference p = {p:.2g} < {alpha_k:.3g})"], [], []
    lo, hi, tv = _num(s["ci_low"]), _num(s["ci_high"]), _num(t["value"])
    power = []
    if lo <= 0 <= tv <= hi:
        need = items_needed(lo, hi, _num(s["n"]), tv)
        power = [f"M: compute rise CI [{lo:.2f}, {hi:.2f}] contains 0 and the teacher's "
                 f"{tv:.2f}; ~{need:.0f} items needed"]
    return [], [], [f"M: compute rise not shown, not shown below the teacher's (difference "
                     f"p = {p:.2g})"], power
