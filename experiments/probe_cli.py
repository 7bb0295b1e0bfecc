"""``mimicry probe NAME CACHE... --out DIR`` and ``mimicry scramble TRACES --out FILE``.

Caches are given as paths or ``name=path`` (the name labels tables and figures; default: the
file stem). ``mimicry probe reliance OWN.jsonl FORCED.jsonl`` takes two TRACES files instead:
the models' own traces, then their answers after the scrambled reasoning. The probes package
is imported inside the handler (``mimicry`` never imports ``probes`` at import time).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mimicry.errors import InputError

PROBES = ("difficulty", "entropy", "similarity", "planning", "ablation", "verdict", "reliance")


def register(subparsers) -> None:
    """Add the ``probe`` and ``scramble`` sub-commands."""
    p = subparsers.add_parser(
        "probe", help="run a probe over HDF5 caches (difficulty, entropy, similarity, planning, "
                      "ablation, verdict) or over traces (reliance)",
        description="Run one probe over caches written by `mimicry capture`; writes NAME.csv, "
                    "extra tables, NAME.json (settings, n, exclusions, seeds) and NAME.png/pdf.")
    p.add_argument("name", choices=PROBES)
    p.add_argument("caches", nargs="+", metavar="CACHE",
                   help="cache .h5 files, optionally name=path (similarity: TEACHER STUDENT; "
                        "ablation: one model's caches per condition, reference first; "
                        "reliance: OWN.jsonl FORCED.jsonl traces, see `mimicry generate "
                        "--after-reasoning`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tasks", help="task suite name or items CSV/JSONL (human difficulty)")
    p.add_argument("--target", default="human", choices=["human", "log_reasoning_tokens"])
    p.add_argument("--site", help="residual site (default: per probe)")
    p.add_argument("--segment", default="reasoning", help="entropy segment")
    p.add_argument("--variant", default="raw", choices=["raw", "norm", "nosink"])
    p.add_argument("--teacher", help="name of the teacher cache (planning, verdict; "
                                     "default: the first)")
    p.add_argument("--random-cache", help="difficulty: cache of a random-init model of the "
                                          "same architecture over the same traces")
    p.add_argument("--alignment", help="verdict: the --out folder of `mimicry align`")
    p.add_argument("--ablation", action="append", default=[], metavar="STUDENT:cond=path,...",
                   help="verdict: ablation caches of one student (repeatable)")
    p.add_argument("--n-folds", type=int, default=5)
    p.add_argument("--n-perm", type=int, default=100)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_probe)

    s = subparsers.add_parser(
        "scramble", help="format-preserving content scramble of a traces file (for ablations)",
        description="Keep <think> tags, lines, step markers and lengths; destroy content.")
    s.add_argument("traces")
    s.add_argument("--out", required=True)
    s.add_argument("--mode", default="within", choices=["within", "across"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tokenizer", help="tokenizer path/name to recount reasoning_tokens")
    s.set_defaults(func=_scramble)


def _named(specs: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        p = Path(path)
        name = name or p.stem
        if not p.exists():
            raise InputError("cache not found", file=p, fix="give the .h5 written by "
                             "`mimicry capture` (name=path to label it)")
        if name in out:
            raise InputError(f"two caches named {name!r}", fix="label them name=path")
        out[name] = p
    return out


def _open(paths: dict[str, Path]) -> dict:
    from mimicry.store import open_cache

    return {k: open_cache(v) for k, v in paths.items()}


def _probe(args: argparse.Namespace) -> int:
    # lazy: mimicry does not depend on probes at import time
    from probes import ablation, difficulty, entropy, planning, similarity

    if args.name == "reliance":
        return _reliance(args)
    caches = _open(_named(args.caches))
    names = list(caches)
    tasks = None
    if args.tasks:
        from mimicry.tasks.registry import load_suite

        tasks = load_suite(args.tasks)
    if args.target == "human" and tasks is None and args.name in ("difficulty", "entropy",
                                                                  "ablation"):
        raise InputError(f"probe {args.name} with --target human needs --tasks SUITE|FILE",
                         fix="or use --target log_reasoning_tokens")
    teacher = args.teacher or names[0]
    if teacher not in caches:
        raise InputError(f"--teacher {teacher!r} is not one of the caches {names}")
    common = dict(seed=args.seed, n_boot=args.n_boot)
    results = []
    if args.name == "difficulty":
        rnd = _open(_named([args.random_cache]))[Path(args.random_cache).stem] \
            if args.random_cache else None
        for k, c in caches.items():
            r = difficulty.run(c, tasks=tasks, target=args.target, name=k, random_cache=rnd,
                               sites=[args.site] if args.site else None, n_folds=args.n_folds,
                               n_perm=args.n_perm, **common)
            r.name = f"difficulty_{k}" if len(caches) > 1 else "difficulty"
            results.append(r)
    elif args.name == "entropy":
        results.append(entropy.run(caches, tasks=tasks, target=args.target,
                                   segment=args.segment, variant=args.variant,
                                   n_perm=max(args.n_perm, 1000), **common))
    elif args.name == "similarity":
        if len(caches) != 2:
            raise InputError(f"similarity takes two caches (TEACHER STUDENT), got {len(caches)}")
        results.append(similarity.run(*caches.values(), site=args.site or "last_prompt",
                                      names=tuple(names), n_perm=args.n_perm, seed=args.seed,
                                      n_boot=min(args.n_boot, 200)))
    elif args.name == "planning":
        results.append(planning.run(caches, tasks=tasks, teacher=teacher,
                                    site=args.site or "last_prompt", n_folds=args.n_folds,
                                    n_perm=args.n_perm, **common))
    elif args.name == "ablation":
        results.append(ablation.run(caches, tasks=tasks, target=args.target,
                                    site=args.site or "mean_reasoning", n_folds=args.n_folds,
                                    **common))
    else:
        from probes.suite import run_all

        abl = {}
        for spec in args.ablation:
            student, _, conds = spec.partition(":")
            if student not in caches or not conds:
                raise InputError(f"--ablation {spec!r}: expected STUDENT:cond=path,... with "
                                 f"STUDENT one of {names}")
            abl[student] = _open(_named(conds.split(",")))
        v = run_all(caches, teacher=teacher, tasks=tasks, alignment=args.alignment,
                    ablation=abl or None, n_perm=args.n_perm, **common)
        for key, r in v.arrays["results"].items():   # the component probes, saved beside it
            for unit, res in (r.items() if isinstance(r, dict) else [("", r)]):
                res.name = f"{key}_{unit}" if unit else key
                results.append(res)
        results.append(v)
    out = Path(args.out)
    for r in results:
        for p in r.save(out):
            print(p)
    for r in results:
        if r.name == "verdict":
            print(r.tables["calls"].to_string(index=False))
    return 0


def _reliance(args: argparse.Namespace) -> int:
    from probes import reliance

    if len(args.caches) != 2:
        raise InputError(f"reliance takes two traces files (OWN FORCED), got {len(args.caches)}",
                         fix="mimicry probe reliance own.jsonl after_scrambled.jsonl --out DIR")
    r = reliance.run(args.caches[0], args.caches[1], tasks=args.tasks, n_boot=args.n_boot,
                     seed=args.seed)
    for p in r.save(Path(args.out)):
        print(p)
    cols = ["model", "task", "n", "acc_own", "acc_forced", "reliance", "ci_low", "ci_high", "p"]
    print(r.table[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return 0


def _scramble(args: argparse.Namespace) -> int:
    from mimicry.traces.scramble import scramble_file

    tok = None
    if args.tokenizer:
        from mimicry.models import ModelSpec, load_tokenizer

        tok = load_tokenizer(ModelSpec(args.tokenizer))
    n = scramble_file(args.traces, args.out, mode=args.mode, seed=args.seed, tokenizer=tok)
    print(f"scrambled {n} traces ({args.mode}, seed {args.seed}) -> {args.out}")
    return 0
