"""``mimicry align``: behavioural alignment statistics from trace files (see docs/alignment.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MimicryError


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
    res = align([Path(t) for t in args.traces], suite, roles=roles, seed=args.seed,
                n_boot=args.n_boot, n_perm=args.n_perm, min_items=args.min_items,
                exclude_truncated=not args.keep_truncated, cooks=args.cooks, cost=args.cost)
    res.save(args.out)
    t = res.table
    for r in t.itertuples():
        ci = f"[{r.ci_low:.2f}, {r.ci_high:.2f}]" if r.r == r.r else ""
        print(f"{r.model:>20s} {r.task:>16s}  n={r.n:<4d} r={r.r:.3f} {ci} p={r.p_perm:.4g}")
    for m, s in res.summary["per_model"].items():
        print(f"{m:>20s}  r-bar={s['r_bar']:.3f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}] "
              f"over {s['k']} tasks")
    ex = res.summary["exclusions"]
    print(f"exclusions: {ex['total']} {ex['by_reason']}; wrote {args.out}")
    return 0
