"""The headline of a run: one row per model with r̄, Δr, reliance and the call.

``headline(run)`` reads what the stages left in a run folder (``alignment/summary.json``,
``alignment/alignment.csv``, ``alignment[/pairs/<student>]/delta_r.csv``,
``probes/reliance.csv``, ``probes/verdict_calls.csv``) and returns a DataFrame; the report's
Summary and the console table at the end of ``mimicry run``/``demo`` (:func:`print_headline`)
both show it, so the two never disagree. Missing pieces are shown as "–", never guessed.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from .layout import RunFolder

log = logging.getLogger(__name__)
COLUMNS = ["model", "role", "r̄ [95% CI]", "Δr vs teacher [95% CI]", "reliance [95% CI]",
           "call", "decided by"]


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _ci(v: Any, lo: Any, hi: Any, sign: bool = False) -> str:
    v, lo, hi = _num(v), _num(lo), _num(hi)
    if not math.isfinite(v):
        return "–"
    f = "{:+.2f}" if sign else "{:.2f}"
    out = f.format(v)
    if math.isfinite(lo) and math.isfinite(hi):
        out += f" [{f.format(lo)}, {f.format(hi)}]"
    return out


def _csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path) if path.is_file() else None
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def _r_bar(model: str, per: dict, table: pd.DataFrame | None) -> str:
    d = per.get(model) or {}
    if d.get("r_bar") is None:
        return "–"
    if d.get("ci_low") is None and table is not None:  # one task: its bootstrap CI
        t = table[(table["model"] == model) & table["r"].notna()]
        if len(t) == 1:
            return _ci(t["r"].iloc[0], t["ci_low"].iloc[0], t["ci_high"].iloc[0])
    return _ci(d.get("r_bar"), d.get("ci_low"), d.get("ci_high"))


def _delta(run: Path, model: str) -> str:
    f = RunFolder(run)
    for d in (f.alignment, f.alignment_pair(model)):
        s = _json(d / "summary.json").get("roles") or {}
        if s.get("student") != model:
            continue
        t = _csv(d / "delta_r.csv")
        if t is None or not len(t):
            return "–"
        if len(t) == 1:
            return _ci(t["delta_r"].iloc[0], t["ci_low"].iloc[0], t["ci_high"].iloc[0], True)
        return f"{t['delta_r'].mean():+.2f} (mean of {len(t)} tasks)"
    return "–"


def short_reasons(decided_by: str) -> str:
    """Return the rule letters of a verdict's ``decided_by`` text (``"A: …; W-: …; open: P: …"``
    → ``"A, W-; open: P"``): every row that decided the call, then the open ones."""
    from probes.verdict_reasons import short

    return short(decided_by)


def headline(run: str | Path) -> pd.DataFrame:
    """Return one row per model of the run (config order): r̄, Δr, reliance, call, decided by."""
    run = Path(run)
    f = RunFolder(run)
    cfg = _json(f.config)
    summ = _json(f.alignment / "summary.json")
    per = summ.get("per_model") or {}
    roles = {m["key"]: m["role"] for m in cfg.get("models", [])}
    models = list(roles) or list(per)
    table = _csv(f.alignment / "alignment.csv")
    rel = _csv(f.probe_table("reliance"))
    calls = _csv(f.probe_table("verdict", "calls"))
    rows = []
    for m in models:
        role = roles.get(m, "")
        r_rel = "–"
        if rel is not None and {"model", "task"} <= set(rel.columns):
            t = rel[(rel["model"] == m) & (rel["task"] == "all")]
            if len(t):
                r_rel = _ci(t["reliance"].iloc[0], t["ci_low"].iloc[0], t["ci_high"].iloc[0],
                            True)
        call, why = "", ""
        if calls is not None and {"student", "call"} <= set(calls.columns):
            c = calls[calls["student"] == m]
            if len(c):
                call = str(c["call"].iloc[0])
                why = str(c.get("decided_by", pd.Series([""])).iloc[0])
        rows.append({"model": m, "role": role, "r̄ [95% CI]": _r_bar(m, per, table),
                     "Δr vs teacher [95% CI]": _delta(run, m) if role in ("student", "control")
                     else "", "reliance [95% CI]": r_rel, "call": call,
                     "decided by": "" if why == "nan" else why})
    return pd.DataFrame(rows, columns=COLUMNS)


def print_headline(run: str | Path, console=None) -> None:
    """Print the headline table (rich) and, under it, the rows that decided each call."""
    from rich.console import Console
    from rich.table import Table

    df = headline(run)
    if not len(df):
        return
    if console is None:
        console = Console(highlight=False)
        if console.width < 140:  # not a terminal, or a narrow one: keep rows on one line
            console = Console(highlight=False, width=140)
    tab = Table(title=f"Result: {Path(run)}", title_justify="left")
    heads = ["model", "role", "r̄ [95% CI]", "Δr [95% CI]", "reliance [95% CI]", "call"]
    for c in heads:
        tab.add_column(c, justify="left" if c in ("model", "role", "call") else "right",
                       no_wrap=True)
    tab.add_column("rules")
    styles = {"policy transfer": "bold green", "surface mimicry": "bold red"}
    for r in df.itertuples(index=False):
        call = r[5]
        tab.add_row(*[str(v) for v in r[:5]],
                    f"[{styles.get(call, 'yellow')}]{call}[/]" if call else "",
                    short_reasons(r[6]))
    console.print(tab)
    for r in df.itertuples(index=False):
        if r[6]:
            console.print(f"  {r[0]}: {r[5]} — {r[6]}")
    console.print("  r̄: alignment of log reasoning tokens with the difficulty norm (Fisher z "
                  "over tasks; one task: its bootstrap CI). Δr = r(student) − r(teacher). rules: the "
                  "verdict's rule letters that decided the call, then the open ones (docs/probes.md). "
                  "reliance = accuracy own − after its reasoning scrambled.")
