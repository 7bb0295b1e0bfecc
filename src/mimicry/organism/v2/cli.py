"""``mimicry organism train --v2 --out DIR [--seed N]``: train organism v2 on this CPU."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...errors import InputError


def train_v2(args: argparse.Namespace) -> int:
    """Train the v2 set into ``DIR/v2/``; print where each role went; return the exit code."""
    from . import DEV_SEED
    from .train import V2Config, train

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' exists and is not a folder",
                         fix="pass a new or existing folder")
    seed = DEV_SEED if args.seed is None else args.seed
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    cfg = V2Config()
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        cfg.threads = args.threads
    sft_steps = cfg.warm_steps + cfg.base_steps + 4 * cfg.student_steps
    print(f"training organism v2 into {out / 'v2'} (seed {seed}, {cfg.threads} thread(s)); "
          f"cost: {sft_steps} SFT steps of {cfg.batch_size} sequences + {cfg.rl.steps} GRPO "
          f"steps of {cfg.rl.prompts} prompts x {cfg.rl.generations} samples",
          file=sys.stderr)
    from ...locking import writer_lock

    (out / "v2").parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(out / "v2", "organism train --v2"):
        paths = train(out / "v2", seed=seed, config=cfg, progress=not args.quiet)
    summary = json.loads((out / "v2" / "train_summary.json").read_text())
    print(f"done in {summary['wall_seconds']} s wall, {summary['cpu_seconds']} s CPU",
          file=sys.stderr)
    for role, path in paths.items():
        print(f"{role}\t{path}")
    if args.eval:
        from . import load
        from .evaluate import behaviour, fmt

        for role in paths:
            model, tok = load(role, out / "v2")
            print(f"{role}  [synthetic difficulty norm]\n{fmt(behaviour(model, tok))}")
    return 0
