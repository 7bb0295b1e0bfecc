"""``mimicry tasks list | export | check``: the suites, their norms, and items files."""

from __future__ import annotations

import argparse
import math


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _table(rows: list[dict], cols: list[str]) -> str:
    cells = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import suite_summary

    df = suite_summary()
    rows = []
    for suite, g in df.groupby("suite", sort=False):
        rows.append({
            "suite": suite, "items": int(g["items"].sum()),
            "tasks": ", ".join(f"{t} ({n})" for t, n in zip(g["task"], g["items"])),
            "norm source": g["norm_source"].iloc[0],
            "measure": "/".join(dict.fromkeys(g["measure"])),
            "reliability": ", ".join(_fmt(v) for v in g["reliability"]),
        })
    print(_table(rows, ["suite", "items", "tasks", "norm source", "measure", "reliability"]))
    print("\nreliability: split-half (random participant halves, Spearman-Brown) of the item "
          "norm, per task; '-' = no trial data")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .registry import load_suite
    from .userfile import export_suite

    suite = load_suite(args.suite)
    path = export_suite(suite, args.out)
    print(f"wrote {len(suite)} items of suite '{suite.name}' to {path}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .registry import load_suite, summary_rows

    suite = load_suite(args.suite)
    rows = summary_rows(suite)
    print(_table(rows, ["suite", "task", "items", "measure", "reliability", "norm_source"]))
    missing = sum(1 for it in suite if it.prompt is None or it.answer is None)
    if missing:
        print(f"\n{missing} item(s) lack a prompt or answer: fine for align, needed to generate")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mimicry tasks ...`` to the top-level parser."""
    p = subparsers.add_parser("tasks", help="task suites with human norms: list, export, check")
    sub = p.add_subparsers(dest="tasks_command", metavar="ACTION")
    sub.required = True
    lp = sub.add_parser("list", help="table of the registered suites")
    lp.set_defaults(func=_cmd_list)
    ep = sub.add_parser("export", help="write a suite as JSONL in the items-file schema")
    ep.add_argument("suite", metavar="SUITE", help="suite name or items file (.csv/.jsonl)")
    ep.add_argument("--out", required=True, help="output .jsonl (written atomically)")
    ep.set_defaults(func=_cmd_export)
    cp = sub.add_parser("check", help="validate a suite or items file and summarise it")
    cp.add_argument("suite", metavar="SUITE", help="suite name or items file (.csv/.jsonl)")
    cp.set_defaults(func=_cmd_check)
