"""``mimicry probe compute|steer|patch``: the computation and causal probes from the shell.

- ``mimicry probe compute [name=]TOKENS.h5 ... --tasks SUITE --out DIR [--target answer|
  running_value]`` — caches with per-token rows along the reasoning (``mimicry capture
  --per-token-stride N --per-token-segment reasoning``);
- ``mimicry probe steer [name=]OWN.h5 [TEACHER.h5] --model PATH --tasks SUITE --out DIR
  [--layer L --alphas -1,1 --n-random 20 --max-new-tokens N]`` — the model the first cache
  was captured from; the optional second cache is the teacher's (its direction is mapped in);
- ``mimicry probe patch --model PATH --tasks SUITE --out DIR [--layers 0,1,2 --n-pairs 24
  --max-new-tokens N]`` — no cache needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mimicry.errors import InputError

MECH_PROBES = ("compute", "steer", "patch")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options only these probes use to the ``probe`` parser."""
    p.add_argument("--model", help="steer/patch: the model to intervene on (path or hub id)")
    p.add_argument("--layer", type=int, help="steer: cache layer to steer (default: middle)")
    p.add_argument("--layers", help="patch: comma-separated cache layers (default: all)")
    p.add_argument("--alphas", help="steer: strengths, × the own hard − easy difference norm "
                                    "(write '--alphas=-1,1': a leading minus; default: "
                                    "-1,-0.5,0.5,1)")
    p.add_argument("--n-random", type=int, help="steer: random directions (default 20)")
    p.add_argument("--n-pairs", type=int, help="patch: pairs per direction (default 24)")
    p.add_argument("--max-new-tokens", type=int, default=256,
                   help="steer/patch: generation budget per item")


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--{what} {text!r}: expected comma-separated numbers",
                         fix=f"e.g. --{what} -1,1") from None


def run(args: argparse.Namespace, named, open_caches) -> int:
    """Run ``args.name`` (compute, steer or patch); print the written paths; return 0.

    Defaults are :data:`experiments.probing.PROBE_DEFAULTS` (what ``mimicry run`` uses),
    updated by the flags given; results are written as ``mimicry run`` writes them.
    """
    from probes import compute, patch, steer

    from .probing import probe_options, save_units

    given = {"n_folds": args.n_folds, "n_perm": args.n_perm, "n_boot": args.n_boot}
    if args.name == "steer":
        given.update(alphas=_floats(args.alphas, "alphas") if args.alphas else None,
                     n_random=args.n_random, layer=args.layer)
    elif args.name == "patch":
        given.update(n_pairs=args.n_pairs, layers=[int(x) for x in _floats(
            args.layers, "layers")] if args.layers else None)
    elif args.target in ("answer", "running_value"):
        given["target"] = args.target
    opts = probe_options(args.name, {k: v for k, v in given.items() if v is not None},
                         where=f"mimicry probe {args.name}")

    if not args.tasks:
        raise InputError(f"probe {args.name} needs --tasks SUITE|FILE (gold answers, "
                         "difficulty norms)")
    from mimicry.tasks.registry import load_suite

    suite = load_suite(args.tasks)
    results = []
    if args.name == "compute":
        if not args.caches:
            raise InputError("compute needs at least one cache with per-token reasoning rows",
                             fix="mimicry capture ... --per-token-stride 1 --per-token-segment "
                                 "reasoning")
        caches = open_caches(named(args.caches))
        res = {k: compute.run(c, tasks=suite, name=k, seed=args.seed, **opts)
               for k, c in caches.items()}
        results.append(compute.combine(res) if len(res) > 1 else next(iter(res.values())))
    else:
        if not args.model:
            raise InputError(f"probe {args.name} needs --model PATH_OR_HUB_ID",
                             fix="the model to intervene on")
        common = dict(tasks=suite, max_new_tokens=args.max_new_tokens, seed=args.seed,
                      name=Path(args.model.rstrip("/")).name, **opts)
        if args.name == "steer":
            if not 1 <= len(args.caches) <= 2:
                raise InputError(f"steer takes OWN.h5 [TEACHER.h5], got {len(args.caches)} "
                                 "caches")
            caches = list(open_caches(named(args.caches)).values())
            results.append(steer.run(args.model, caches[0], teacher_cache=(
                caches[1] if len(caches) > 1 else None), **common))
        else:
            results.append(patch.run(args.model, **common))
    for p in save_units([("all", r) for r in results], Path(args.out), args.name,
                        seed=args.seed):
        print(p)
    r = results[0]
    show = r.tables["rise"] if args.name == "compute" else r.table
    print(show.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return 0
