"""``mimicry probe NAME CACHE... --out DIR``: one probe, or every probe and the verdict.

Caches are given as paths or ``name=path`` (the name labels tables and figures; default: the
file stem). ``mimicry probe reliance OWN.jsonl FORCED.jsonl`` takes two TRACES files instead:
the models' own traces, then their answers after the scrambled reasoning. Defaults, glue and
output format are those of ``mimicry run`` (:mod:`experiments.probing`): ``probe verdict``
runs every probe as the probe stage does, so the same caches give the same evidence.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from mimicry.errors import InputError

from . import mech_cli
from .inputs import common_options
from .layout import RunFolder
from .mech_cli import MECH_PROBES
from .probing import (
    PROBES,
    ProbeInputs,
    probe_functions,
    probe_options,
    run_probes,
    save_units,
)

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``probe`` sub-command."""
    p = subparsers.add_parser(
        "probe", help="run a probe over HDF5 caches (difficulty, entropy, similarity, planning, "
                      "ablation, compute, steer, patch, verdict) or over traces (reliance)",
        description="Run one probe over caches written by `mimicry capture`, with the same "
                    "defaults and output format as `mimicry run`: NAME.csv (a `unit` column per "
                    "model or pair), NAME_<table>.csv, NAME__<unit>.png/pdf and NAME.json "
                    "(settings, n, exclusions, seed).")
    p.add_argument("name", choices=PROBES, help="the probe to run")
    p.add_argument("caches", nargs="*", metavar="CACHE",
                   help="cache .h5 files, optionally name=path (similarity: TEACHER STUDENT; "
                        "ablation: one model's caches per condition, reference first; "
                        "reliance: OWN.jsonl FORCED.jsonl traces, see `mimicry generate "
                        "--after-reasoning`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tasks", help="task suite name or items CSV/JSONL (human difficulty)")
    p.add_argument("--target", default=None, choices=["human", "log_reasoning_tokens",
                                                       "answer", "running_value"],
                   help="what the probe predicts: the difficulty norm or the model's own effort "
                        "(difficulty, planning; default human); compute: answer (gold answer, "
                        "the default) or running_value")
    p.add_argument("--site", help="residual site (default: per probe)")
    p.add_argument("--segment", help="entropy segment (default: reasoning)")
    p.add_argument("--variant", choices=["raw", "norm", "nosink"],
                   help="entropy: raw nats (default), ÷ log visible keys (norm), or without "
                        "the position-0 sink")
    p.add_argument("--teacher", help="name of the teacher cache (planning, verdict; "
                                     "default: the first)")
    p.add_argument("--random-cache", help="difficulty: cache of a random-init model of the "
                                          "same architecture over the same traces")
    p.add_argument("--roles", metavar="ROLE=CACHE,...",
                   help="verdict: teacher=T,base=B,student=S1,student=S2 (control= too); "
                        "the base is never a student (default: teacher = --teacher or the "
                        "first cache; a cache named like 'base' is the base; the rest students)")
    p.add_argument("--alignment", action="append", default=[], metavar="[STUDENT=]DIR",
                   help="verdict: the --out folder of `mimicry align` (per student: repeat "
                        "STUDENT=DIR)")
    p.add_argument("--ablation", action="append", default=[], metavar="STUDENT:cond=path,...",
                   help="verdict: the student's caches over the teacher's (teacher=) and the "
                        "scrambled teacher traces (scrambled=); own= may name its own cache; "
                        "repeatable")
    p.add_argument("--reliance", action="append", default=[],
                   metavar="KEY:OWN,FORCED|OWN,FORCED|CSV",
                   help="verdict: one model's own traces and its answers after them scrambled "
                        "(repeatable), both files for all models, or reliance.csv written by "
                        "`mimicry probe reliance` (default: --out/reliance.csv when it exists)")
    p.add_argument("--n-folds", type=int, help="cross-validation folds (grouped; default: "
                                               "per probe, experiments.probing.PROBE_DEFAULTS)")
    p.add_argument("--n-perm", type=int, help="label permutations for the null (default: "
                                              "per probe)")
    p.add_argument("--n-boot", type=int, help="bootstrap resamples for the CIs (default: "
                                              "per probe)")
    p.add_argument("--empty", help="reliance: answers after an EMPTY reasoning (control)")
    p.add_argument("--filler", help="reliance: answers after a length-matched filler (control)")
    p.add_argument("--seed", type=int, default=0, help="seed of folds, permutations, bootstrap")
    mech_cli.add_arguments(p)
    p.set_defaults(func=_probe)


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


def _common(args: argparse.Namespace) -> dict[str, Any]:
    """Return the options the user gave on the command line (None: the probe's default)."""
    given = {"n_folds": args.n_folds, "n_perm": args.n_perm, "n_boot": args.n_boot,
             "target": args.target, "segment": args.segment, "variant": args.variant}
    return {k: v for k, v in given.items() if v is not None}


def _probe(args: argparse.Namespace) -> int:
    from .console import quiet_numeric_warnings

    with quiet_numeric_warnings(f"probe {args.name}"):
        return _probe_run(args)


def _probe_run(args: argparse.Namespace) -> int:
    if args.name == "reliance":
        return _reliance(args)
    if args.name in MECH_PROBES:
        return mech_cli.run(args, _named, _open)
    if not args.caches:
        raise InputError(f"probe {args.name} needs at least one CACHE")
    paths = _named(args.caches)
    tasks = None
    if args.tasks:
        from mimicry.tasks.registry import load_suite

        tasks = load_suite(args.tasks)
    if (args.target or "human") == "human" and tasks is None \
            and args.name in ("difficulty", "entropy", "ablation", "verdict"):
        raise InputError(f"probe {args.name} with --target human needs --tasks SUITE|FILE",
                         fix="or use --target log_reasoning_tokens")
    names = list(paths)
    teacher = args.teacher or names[0]
    if teacher not in paths:
        raise InputError(f"--teacher {teacher!r} is not one of the caches {names}")
    if args.name == "verdict":
        units = _verdict(args, paths, teacher, tasks)
    else:
        units = _one(args, paths, teacher, tasks)
    for p in save_units(units, Path(args.out), args.name, seed=args.seed):
        print(p)
    return 0


def _one(args: argparse.Namespace, paths: dict[str, Path], teacher: str, tasks) -> list:
    """Return ``[(unit, Result)]`` of one probe, with PROBE_DEFAULTS updated by the flags."""
    fn = probe_functions()[args.name]
    where = f"mimicry probe {args.name}"
    opts = probe_options(args.name, _common(args), where=where)
    caches = _open(paths)
    seed, site = args.seed, args.site
    if args.name == "difficulty":
        rnd = _open(_named([args.random_cache]))[Path(args.random_cache).stem] \
            if args.random_cache else None
        extra = {"random_cache": rnd} if rnd is not None else {}
        return [(k, fn(c, tasks=tasks, name=k, sites=[site] if site else None, seed=seed,
                       **extra, **opts)) for k, c in caches.items()]
    if args.name == "entropy":
        return [("all", fn(caches, tasks=tasks, seed=seed, **opts))]
    if args.name == "similarity":
        if len(caches) != 2:
            raise InputError(f"similarity takes two caches (TEACHER STUDENT), got {len(caches)}")
        t, s = list(caches)
        return [(s, fn(caches[t], caches[s], site=site or "last_prompt", names=(t, s), seed=seed,
                       **opts))]
    if args.name == "planning":
        return [("all", fn(caches, tasks=tasks, teacher=teacher, site=site or "last_prompt",
                           seed=seed, **opts))]
    return [("all", fn(caches, tasks=tasks, site=site or "mean_reasoning", seed=seed, **opts))]


def _verdict(args: argparse.Namespace, paths: dict[str, Path], teacher: str, tasks) -> list:
    """Return the verdict units: every probe run as ``mimicry run`` runs them, then the verdict."""
    common = _common(args)
    roles = _verdict_roles(args.roles, teacher, list(paths))
    caches: dict[str, Any] = dict(paths)
    for spec in args.ablation:
        student, _, conds = spec.partition(":")
        if student not in roles or not conds:
            raise InputError(f"--ablation {spec!r}: expected STUDENT:cond=path,... with "
                             f"STUDENT one of {list(roles)}")
        for cond, p in _named(conds.split(",")).items():
            if cond == "own":  # the reference: the student's own cache, given above
                if p.resolve() != Path(paths[student]).resolve():
                    raise InputError(f"--ablation {spec!r}: own={p} is not the cache of "
                                     f"{student} ({paths[student]})",
                                     fix="leave own= out: the student's own cache is used")
                continue
            stem = {"teacher": RunFolder.cross_stem(student, teacher),
                    "scrambled": RunFolder.scrambled_stem(student)}.get(cond)
            if stem is None:
                raise InputError(f"--ablation {spec!r}: unknown condition {cond!r}",
                                 fix="use teacher=CACHE and/or scrambled=CACHE")
            caches[stem] = p
    reliance, saved = _reliance_inputs(args, roles, tasks)
    alignment: dict[str, Any] = {}
    for spec in args.alignment:
        student, _, d = spec.rpartition("=") if "=" in spec else ("", "", spec)
        for s in ([student] if student else [k for k, r in roles.items() if r == "student"]):
            alignment[s] = d
    names = [n for n in PROBES if n not in MECH_PROBES and (n != "reliance" or reliance)]
    options = dict(common_options(names, common))
    inp = ProbeInputs(roles=roles, caches=caches, suite=tasks, seed=args.seed,
                      reliance=reliance, alignment=alignment, options=options)
    if saved is not None:  # reliance computed before: its Result goes to the verdict as is
        inp.results["reliance"] = {"all": saved}
    out = Path(args.out)
    for name, (units, note) in run_probes(names, inp).items():
        if note:
            log.info("%s: %s", name, note)
        if name != "verdict" and units:
            save_units(units, out, name, seed=args.seed)
    units = list(inp.results.get("verdict", {}).items())
    if not units:
        raise InputError("no verdict: no student could be compared with the teacher",
                         fix="give the teacher's and at least one student's cache")
    import pandas as pd

    print(pd.concat([r.tables["calls"] for _, r in units]).to_string(index=False))
    return units


def _verdict_roles(text: str | None, teacher: str, names: list[str]) -> dict[str, str]:
    """Return ``{cache name: role}`` from ``--roles`` or, without it, from the cache names."""
    from mimicry.plots import guess_role

    if not text:
        return {n: "teacher" if n == teacher else "base" if guess_role(n) == "base"
                else "student" for n in names}
    roles: dict[str, str] = {}
    for part in text.split(","):
        role, sep, name = (x.strip() for x in part.partition("="))
        if not sep or role not in ("teacher", "base", "student", "control") or not name:
            raise InputError(f"--roles entry {part!r} is not ROLE=CACHE",
                             fix="e.g. --roles teacher=T,base=B,student=S1,student=S2")
        if name not in names:
            raise InputError(f"--roles names {name!r}, which is not one of the caches {names}",
                             fix="use the cache names (name=path labels them)")
        roles[name] = role
    if list(roles.values()).count("teacher") != 1:
        raise InputError("--roles needs exactly one teacher=CACHE")
    if not any(r in ("student", "control") for r in roles.values()):
        raise InputError("--roles names no student", fix="add student=CACHE")
    return {n: roles[n] for n in names if n in roles}


def _reliance_inputs(args: argparse.Namespace, roles: dict[str, str], tasks):
    """Return ``({key: (own, forced)}, a saved or joint reliance Result or None)``."""
    import pandas as pd

    from probes import reliance as _rel
    from probes.base import Result

    per_key: dict[str, tuple[Path, Path]] = {}
    specs = list(args.reliance)
    if not specs and (Path(args.out) / "reliance.csv").is_file():
        specs = [str(Path(args.out) / "reliance.csv")]
    saved = None
    for spec in specs:
        key, colon, files = spec.partition(":") if ":" in spec.split(",")[0] else ("", "", spec)
        parts = files.split(",")
        if colon:
            if key not in roles or len(parts) != 2:
                raise InputError(f"--reliance {spec!r}: expected KEY:OWN.jsonl,FORCED.jsonl "
                                 f"with KEY one of {list(roles)}")
            per_key[key] = (Path(parts[0]), Path(parts[1]))
        elif len(parts) == 2:
            saved = _rel.run(parts[0], parts[1], tasks=tasks, seed=args.seed,
                             **probe_options("reliance", {k: v for k, v in _common(args).items()
                                                          if k == "n_boot"}))
        else:
            path = Path(files) / "reliance.csv" if Path(files).is_dir() else Path(files)
            if not path.is_file():
                raise InputError("reliance table not found", file=path,
                                 fix="give reliance.csv from `mimicry probe reliance --out DIR`")
            log.info("reliance rows from %s", path)
            saved = Result("reliance", pd.read_csv(path).drop(columns="unit", errors="ignore"))
    return per_key, saved


def _reliance(args: argparse.Namespace) -> int:
    from probes import reliance

    if len(args.caches) != 2:
        raise InputError(f"reliance takes two traces files (OWN FORCED), got {len(args.caches)}",
                         fix="mimicry probe reliance own.jsonl after_scrambled.jsonl --out DIR")
    opts = probe_options("reliance", _common(args), where="mimicry probe reliance")
    r = reliance.run(args.caches[0], args.caches[1], tasks=args.tasks, seed=args.seed,
                     empty=args.empty, filler=args.filler, **opts)
    for p in save_units([("all", r)], Path(args.out), "reliance", seed=args.seed):
        print(p)
    cols = ["model", "task", "control", "n", "acc_own", "acc_forced", "reliance", "ci_low",
            "ci_high", "p"]
    print(r.table[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return 0
