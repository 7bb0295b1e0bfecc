"""Markdown tables of the organism v2 evaluation, read from the committed evidence files.

    python benchmarks/organism_v2_report.py [--docs docs/organism-v2-eval]

Reads ``DOCS/seed-N/`` (written by ``benchmarks/organism_v2_heldout.py``: ``train_summary.json``,
``verdict.csv``, ``verdict_calls.csv``) and prints the tables docs/organism.md and
docs/probes.md quote: the RL teacher per family and seed against its targets, training time,
every call next to the ground truth with the rows that decided it, and the mechanistic rows
(compute rise, steering, patching) per student with their 95% CIs. Nothing is recomputed: the
tables are the files, formatted.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pandas as pd

from mimicry.organism.v2 import GROUND_TRUTH as TRUTH
from mimicry.organism.v2.families import FAMILIES

MECH = ("compute_rise", "teacher_compute_rise", "steer_teacher_mapped", "steer_own",
        "patch_effect")


def _seeds(docs: Path) -> list[Path]:
    return sorted((p for p in docs.glob("seed-*") if p.is_dir()),
                  key=lambda p: int(p.name.split("-")[1]))


def _f(x, nd=3) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def teacher_table(docs: Path) -> str:
    """Return the RL teacher's greedy accuracy / r per family and seed, with the targets."""
    out = ["| seed | " + " | ".join(f"{f}: acc, r" for f in FAMILIES)
           + " | targets met (acc ≥ 0.9, r ≥ 0.8) | train CPU s | train wall s |",
           "|---|" + "---|" * (len(FAMILIES) + 3)]
    for d in _seeds(docs):
        s = json.loads((d / "train_summary.json").read_text())
        g = s["teacher_behaviour"]["teacher"]["greedy"]
        cells, met = [], []
        for f in FAMILIES:
            a, r = g[f]["accuracy"], g[f]["r"]
            cells.append(f"{_f(a)}, {_f(r)}")
            ok = a >= 0.9 and r is not None and math.isfinite(r) and r >= 0.8
            met.append(f if ok else f"~~{f}~~")
        out.append(f"| {d.name.split('-')[1]} | " + " | ".join(cells)
                   + f" | {' '.join(met)} | {s['cpu_seconds']:.0f} | {s['wall_seconds']:.0f} |")
    return "\n".join(out)


def _letters(text: str) -> str:
    """Return the rule letters that decided a call (before any 'open:' part)."""
    decided = str(text).split("open:")[0]
    return ", ".join(dict.fromkeys(re.findall(r"(?:^|; )\(?([A-Z]-?)(?=:)", decided))) or "—"


def calls_table(docs: Path) -> tuple[str, pd.DataFrame]:
    """Return the calls (seed × student) next to the ground truth, and the rows as a frame."""
    rows = []
    for d in _seeds(docs):
        c = pd.read_csv(d / "verdict_calls.csv")
        for _, r in c.iterrows():
            truth = TRUTH.get(r["student"], "")
            rows.append({"seed": int(d.name.split("-")[1]), "student": r["student"],
                         "call": r["call"], "truth": truth, "right": r["call"] == truth,
                         "decided by": _letters(r["decided_by"]),
                         "open": "; ".join(x.split(":")[0].strip() for x in
                                           str(r["decided_by"]).split("open: ")[1:])})
    t = pd.DataFrame(rows)
    out = ["| seed | student | ground truth | call | right? | rows that decided (against) or held (support) | open rows |",
           "|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        out.append(f"| {r['seed']} | `{r['student']}` | {r['truth']} | {r['call']} | "
                   f"{'yes' if r['right'] else 'no'} | {r['decided by']} | {r['open'] or ''} |")
    return "\n".join(out), t


def mech_table(docs: Path) -> str:
    """Return the mechanistic rows per seed and student: value [CI]."""
    out = ["| seed | student | " + " | ".join(MECH) + " |", "|---|---|" + "---|" * len(MECH)]
    for d in _seeds(docs):
        v = pd.read_csv(d / "verdict.csv")
        for st in TRUTH:
            g = v[v["student"] == st].set_index("evidence")
            cells = []
            for e in MECH:
                if e not in g.index or not math.isfinite(float(g.loc[e, "value"])):
                    cells.append("n/a")
                    continue
                r = g.loc[e]
                cells.append(f"{r['value']:.2f} [{_f(r['ci_low'], 2)}, {_f(r['ci_high'], 2)}]")
            out.append(f"| {d.name.split('-')[1]} | `{st}` | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the tables; return the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", default="docs/organism-v2-eval")
    args = ap.parse_args(argv)
    docs = Path(args.docs)
    print("## RL teacher per family (greedy)\n\n" + teacher_table(docs) + "\n")
    text, t = calls_table(docs)
    print(f"## Calls ({int(t['right'].sum())}/{len(t)} right)\n\n" + text + "\n")
    print("## Mechanistic rows (value [95% CI])\n\n" + mech_table(docs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
