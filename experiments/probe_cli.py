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

from . import mech_cli
from .mech_cli import MECH_PROBES

PROBES = ("difficulty", "entropy", "similarity", "planning", "ablation", "verdict", "reliance",
          "compute", "steer", "patch")


def register(subparsers) -> None:
    """Add the ``probe`` and ``scramble`` sub-commands."""
    p = subparsers.add_parser(
        "probe", help="run a probe over HDF5 caches (difficulty, entropy, similarity, planning, "
                      "ablation, verdict) or over traces (reliance)",
        description="Run one probe over caches written by `mimicry capture`; writes NAME.csv, "
                    "extra tables, NAME.json (settings, n, exclusions, seeds) and NAME.png/pdf.")
    p.add_argument("name", choices=PROBES, help="the probe to run")
    p.add_argument("caches", nargs="*", metavar="CACHE",
                   help="cache .h5 files, optionally name=path (similarity: TEACHER STUDENT; "
                        "ablation: one model's caches per condition, reference first; "
                        "reliance: OWN.jsonl FORCED.jsonl traces, see `mimicry generate "
                        "--after-reasoning`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tasks", help="task suite name or items CSV/JSONL (human difficulty)")
    p.add_argument("--target", default="human", choices=["human", "log_reasoning_tokens",
                                                          "answer", "running_value"],
                   help="what the probe predicts: the difficulty norm or the model's own effort "
                        "(difficulty, planning); compute: answer (gold answer) or running_value")
    p.add_argument("--site", help="residual site (default: per probe)")
    p.add_argument("--segment", default="reasoning", help="entropy segment")
    p.add_argument("--variant", default="raw", choices=["raw", "norm", "nosink"],
                   help="entropy: raw nats, ÷ log visible keys (norm), or without the position-0 sink")
    p.add_argument("--teacher", help="name of the teacher cache (planning, verdict; "
                                     "default: the first)")
    p.add_argument("--random-cache", help="difficulty: cache of a random-init model of the "
                                          "same architecture over the same traces")
    p.add_argument("--alignment", help="verdict: the --out folder of `mimicry align`")
    p.add_argument("--roles", metavar="ROLE=CACHE,...",
                   help="verdict: teacher=T,base=B,student=S1,student=S2 (control= too); "
                        "the base is never a student (default: teacher = --teacher or the "
                        "first cache; a cache named like 'base' is the base; the rest students)")
    p.add_argument("--reliance", metavar="CSV|OWN.jsonl,FORCED.jsonl",
                   help="verdict: reliance.csv written by `mimicry probe reliance`, or the two "
                        "traces files (default: --out/reliance.csv when it exists)")
    p.add_argument("--ablation", action="append", default=[], metavar="STUDENT:cond=path,...",
                   help="verdict: ablation caches of one student (repeatable)")
    p.add_argument("--empty", help="reliance: answers after an EMPTY reasoning (control)")
    p.add_argument("--filler", help="reliance: answers after a length-matched filler (control)")
    p.add_argument("--n-folds", type=int, default=5, help="cross-validation folds (grouped)")
    p.add_argument("--n-perm", type=int, default=100, help="label permutations for the null")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--seed", type=int, default=0, help="seed of folds, permutations, bootstrap")
    mech_cli.add_arguments(p)
    p.set_defaults(func=_probe)

    s = subparsers.add_parser(
        "scramble", help="format-preserving content scramble of a traces file (for ablations)",
        description="Keep <think> tags, lines, step markers and lengths; destroy content.")
    s.add_argument("traces", help="traces JSONL to scramble")
    s.add_argument("--out", required=True,
                   help="scrambled traces JSONL (name it *__scrambled.jsonl: align skips it)")
    s.add_argument("--mode", default="within", choices=["within", "across"],
                   help="shuffle words within each trace, or swap content across traces")
    s.add_argument("--seed", type=int, default=0, help="shuffle seed (recorded)")
    s.add_argument("--tokenizer", help="tokenizer path/name to recount reasoning_tokens "
                                       "(with --control filler: to match lengths exactly)")
    s.add_argument("--control", choices=["empty", "filler"],
                   help="write a reliance control instead of a scramble: the reasoning emptied, "
                        "or replaced by a content-free filler of the same length")
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
    from .console import quiet_numeric_warnings

    with quiet_numeric_warnings(f"probe {args.name}"):
        return _probe_run(args)


def _probe_run(args: argparse.Namespace) -> int:
    # lazy: mimicry does not depend on probes at import time
    from probes import ablation, difficulty, entropy, planning, similarity

    if args.name == "reliance":
        return _reliance(args)
    if args.name in MECH_PROBES:
        return mech_cli.run(args, _named, _open)
    if not args.caches:
        raise InputError(f"probe {args.name} needs at least one CACHE")
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
            r.name = f"difficulty__{k}" if len(caches) > 1 else "difficulty"
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
        teacher, students = _verdict_roles(args.roles, teacher, names)
        rel = _reliance_input(args.reliance, Path(args.out))
        v = run_all(caches, teacher=teacher, students=students, tasks=tasks,
                    alignment=args.alignment, ablation=abl or None, reliance=rel,
                    n_perm=args.n_perm, progress_bar=False, **common)
        for key, r in v.arrays["results"].items():   # the component probes, saved beside it
            if key == "reliance" and not isinstance(rel, tuple):
                continue  # read from a saved table: already on disk
            for unit, res in (r.items() if isinstance(r, dict) else [("", r)]):
                res.name = f"{key}__{unit}" if unit else key   # as the runner names them
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


def _verdict_roles(text: str | None, teacher: str, names: list[str]) -> tuple[str, list[str]]:
    """Return (teacher, students) from ``--roles`` or, without it, from the cache names."""
    from mimicry.plots import guess_role

    if not text:
        return teacher, [n for n in names if n != teacher and guess_role(n) != "base"]
    roles: dict[str, list[str]] = {}
    for part in text.split(","):
        role, sep, name = (x.strip() for x in part.partition("="))
        if not sep or role not in ("teacher", "base", "student", "control") or not name:
            raise InputError(f"--roles entry {part!r} is not ROLE=CACHE",
                             fix="e.g. --roles teacher=T,base=B,student=S1,student=S2")
        if name not in names:
            raise InputError(f"--roles names {name!r}, which is not one of the caches {names}",
                             fix="use the cache names (name=path labels them)")
        roles.setdefault(role, []).append(name)
    if len(roles.get("teacher", [])) != 1:
        raise InputError("--roles needs exactly one teacher=CACHE")
    students = roles.get("student", []) + roles.get("control", [])
    if not students:
        raise InputError("--roles names no student", fix="add student=CACHE")
    return roles["teacher"][0], students


def _reliance_input(spec: str | None, out: Path):
    """Return what the verdict's reliance rows come from: a saved table, two traces, or None."""
    import pandas as pd

    from probes.base import Result

    if spec and "," in spec:
        own, forced = spec.split(",", 1)
        return (own, forced)
    path = Path(spec) if spec else out / "reliance.csv"
    if path.is_dir():
        path = path / "reliance.csv"
    if not path.is_file():
        if spec:
            raise InputError("reliance table not found", file=path,
                             fix="give reliance.csv from `mimicry probe reliance --out DIR`")
        return None
    print(f"reliance rows from {path}")
    return Result("reliance", pd.read_csv(path))


def _reliance(args: argparse.Namespace) -> int:
    from probes import reliance

    if len(args.caches) != 2:
        raise InputError(f"reliance takes two traces files (OWN FORCED), got {len(args.caches)}",
                         fix="mimicry probe reliance own.jsonl after_scrambled.jsonl --out DIR")
    r = reliance.run(args.caches[0], args.caches[1], tasks=args.tasks, n_boot=args.n_boot,
                     seed=args.seed, empty=args.empty, filler=args.filler)
    for p in r.save(Path(args.out)):
        print(p)
    cols = ["model", "task", "control", "n", "acc_own", "acc_forced", "reliance", "ci_low",
            "ci_high", "p"]
    print(r.table[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return 0


def _scramble(args: argparse.Namespace) -> int:
    from mimicry.traces.scramble import scramble_file

    tok = None
    if args.tokenizer:
        from mimicry.models import ModelSpec, load_tokenizer

        tok = load_tokenizer(ModelSpec(args.tokenizer))
    if args.control:
        from mimicry.generate.controls import control_file
        from mimicry.traces import read_traces

        control_file(args.traces, args.out, args.control, tokenizer=tok)
        print(f"{args.control} control of {len(read_traces(args.out))} traces -> {args.out}")
        return 0
    n = scramble_file(args.traces, args.out, mode=args.mode, seed=args.seed, tokenizer=tok)
    print(f"scrambled {n} traces ({args.mode}, seed {args.seed}) -> {args.out}")
    return 0
