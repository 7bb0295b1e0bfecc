"""``mimicry align``: behavioural alignment statistics from trace files (see docs/alignment.md)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..errors import MimicryError

# file stems the pipeline and the CLI give derived traces: teacher__scrambled,
# student__self_scrambled, student__after_scrambled (answers forced after a given reasoning)
DERIVED = re.compile(r"__(self_)?scrambled$|__after_[A-Za-z0-9_]+$")


def register(subparsers) -> None:
    """Add the ``align`` sub-command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "align", help="correlate reasoning cost with human difficulty (r, CI, p per task)",
        description="Per model x task: Pearson r of log reasoning tokens vs log human RT "
                    "(or error rate), bootstrap CI over items, permutation p; r-bar by Fisher "
                    "z; with --roles, teacher/student/base comparisons. Writes alignment.csv, "
                    "summary.json and figures into --out.")
    p.add_argument("traces", nargs="+", metavar="TRACES", help="traces JSONL file(s)")
    p.add_argument("--tasks", required=True, metavar="SUITE|FILE",
                   help="built-in suite name or items CSV/JSONL with human norms")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--roles", default=None, metavar="teacher=M1,student=M2,base=M3",
                   help="model names for the teacher/student/base comparisons (any subset)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap/permutation seed (default 0)")
    p.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples (10000)")
    p.add_argument("--n-perm", type=int, default=10_000, help="permutations (10000)")
    p.add_argument("--min-items", type=int, default=5,
                   help="cells with fewer included items are reported but not analysed (5)")
    p.add_argument("--keep-truncated", action="store_true",
                   help="keep traces cut by the token limit (finish_reason=length)")
    p.add_argument("--cooks", action="store_true",
                   help="drop items with Cook's distance > 4/n within each cell (reported)")
    p.add_argument("--cost", choices=["reasoning_tokens", "total_tokens"],
                   default="reasoning_tokens", help="what counts as cost (reasoning_tokens)")
    p.set_defaults(func=run)


def parse_roles(text: str | None) -> dict[str, str]:
    """Return ``{"teacher": M1, ...}`` from ``"teacher=M1,student=M2"``."""
    if not text:
        return {}
    roles: dict[str, str] = {}
    for part in text.split(","):
        role, sep, model = part.partition("=")
        if not sep or not role.strip() or not model.strip():
            raise MimicryError(f"--roles entry {part!r} is not ROLE=MODEL",
                               fix="e.g. --roles teacher=R1,student=R1-Distill,base=Qwen")
        roles[role.strip()] = model.strip()
    return roles


def run(args: argparse.Namespace) -> int:
    """Run ``mimicry align``; validate everything before writing; return the exit code."""
    from ..tasks.registry import load_suite
    from .cells import align

    for name, v in (("--n-boot", args.n_boot), ("--n-perm", args.n_perm)):
        if v < 100:
            raise MimicryError(f"{name} {v} is too small", fix="use at least 100 (default 10000)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise MimicryError("--out exists and is not a folder", file=out,
                           fix="give a folder path (it is created if missing)")
    roles = parse_roles(args.roles)
    suite = load_suite(args.tasks)
    paths = [Path(t) for t in args.traces]
    own = [p for p in paths if not DERIVED.search(p.stem)]
    if len(own) < len(paths):  # a glob over a run's traces/ also matches these
        print("skipping derived traces (scrambled reasoning or answers forced after it; not "
              "a model's own behaviour): " + ", ".join(p.name for p in paths if p not in own))
    if not own:
        raise MimicryError("every traces file given is derived (scrambled or forced)",
                           fix="pass the models' own traces, e.g. run/traces/teacher.jsonl")
    res = align(own, suite, roles=roles, seed=args.seed,
                n_boot=args.n_boot, n_perm=args.n_perm, min_items=args.min_items,
                exclude_truncated=not args.keep_truncated, cooks=args.cooks, cost=args.cost)
    written = res.save(args.out)
    print_result(res, written)
    return 0


def _ci(v: float, lo: float | None, hi: float | None) -> str:
    if v is None or v != v:
        return "–"
    ok = lo is not None and hi is not None and lo == lo and hi == hi
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if ok else f"{v:.3f}"


def print_result(res, written) -> None:
    """Print r per model × task, r̄ per model, exclusions and the figures written (rich)."""
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    tab = Table(title="alignment: Pearson r of log cost with the difficulty norm (95% CI)",
                title_justify="left")
    for c in ("model", "task", "n", "r [95% CI]", "p (perm.)"):
        tab.add_column(c, justify="left" if c in ("model", "task") else "right", no_wrap=True)
    for r in res.table.itertuples():
        tab.add_row(str(r.model), str(r.task), str(int(r.n)), _ci(r.r, r.ci_low, r.ci_high),
                    "–" if r.p_perm != r.p_perm else f"{r.p_perm:.3g}")
    con.print(tab)
    for m, s in res.summary["per_model"].items():
        k = s.get("k") or 0
        what = "no task with enough included items" if s.get("r_bar") is None else \
            _ci(s["r_bar"], s.get("ci_low"), s.get("ci_high")) + (
                f" over {k} tasks (Fisher z)" if k > 1 else " (one task: its CI is above)")
        con.print(f"  r̄ {m}: {what}")
    ex = res.summary["exclusions"]
    why = ", ".join(f"{k}: {v}" for k, v in ex["by_reason"].items()) or "none"
    con.print(f"  exclusions: {ex['total']} ({why}); one row each in exclusions.csv")
    figs = sorted(p.name for p in written if p.suffix == ".png")
    out = written[0].parent if written else ""
    con.print(f"  wrote tables, summary.json and figures ({', '.join(figs)}, PDF beside) "
              f"into {out}")
