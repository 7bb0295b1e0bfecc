"""``mimicry organism train --out DIR [--seed N]``: train the model organism on this CPU."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError


def register(subparsers) -> None:
    """Add the ``organism`` command (sub-command ``train``) to the CLI."""
    p = subparsers.add_parser("organism", help="the model organism (tiny models, known answer)",
                              description=__doc__)
    sub = p.add_subparsers(dest="organism_command", metavar="SUBCOMMAND")
    t = sub.add_parser("train", help="train teacher, base and the three students (~minutes)",
                       description="Train the five organism models into DIR/<role>/ "
                                   "(deterministic for a given seed on one machine).")
    t.add_argument("--out", required=True, help="output folder (one sub-folder per role)")
    t.add_argument("--seed", type=int, default=None,
                   help="training seed (default 0; 100 with --v2)")
    t.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1: reproducible; more may be faster)")
    t.add_argument("--eval", action="store_true",
                   help="after training, print each model's accuracy and r (greedy decoding)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--v2", action="store_true",
                   help="train organism v2 (three families, GRPO teacher, four students) "
                        "into DIR/v2/ (default seed 100, the development seed)")
    t.set_defaults(func=_train)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _train(args: argparse.Namespace) -> int:
    from ..preflight import check_output_dir

    out = Path(args.out)
    check_output_dir(out)  # before any training: a folder, writable
    if getattr(args, "v2", False):
        from .v2.cli import train_v2

        return train_v2(args)
    from ..locking import writer_lock
    from .training import OrganismConfig, train

    args.seed = 0 if args.seed is None else args.seed
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    cfg = OrganismConfig()
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        cfg.threads = args.threads
    print(f"training the organism into {out} (seed {args.seed}, {cfg.threads} thread(s)); "
          f"cost: {cfg.teacher_steps + cfg.base_steps + 3 * cfg.student_steps} optimiser "
          f"steps of {cfg.batch_size} sequences", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(out, "organism train"):
        paths = train(out, seed=args.seed, config=cfg, progress=not args.quiet)
    summary = json.loads((out / "train_summary.json").read_text())
    print(f"done in {summary['wall_seconds']} s wall, {summary['cpu_seconds']} s CPU",
          file=sys.stderr)
    for role, path in paths.items():
        print(f"{role}\t{path}")
    if args.eval:
        from .evaluate import behaviour_of, fmt

        for role, path in paths.items():
            print(f"{role}: {fmt(behaviour_of(path))}  [synthetic difficulty norm]")
    return 0
