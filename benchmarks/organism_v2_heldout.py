"""Held-out evaluation of the verdict on organism v2: train evaluation seeds, run, commit tables.

    python benchmarks/organism_v2_heldout.py [--seeds 205 206 207 208 209 210] [--out DIR]
        [--docs docs/organism-v2-eval2] [--allow-unfrozen]

Protocol (docs/organism.md, "Organism v2: held-out protocol"): the verdict rule must be frozen in
a commit whose message starts with "verdict: freeze rule" BEFORE any evaluation seed is trained.
The script refuses to start without such a commit in ``git log`` (``--allow-unfrozen`` only for
trying the script itself; its output is then marked NOT HELD OUT). For each seed it trains the
v2 set (``mimicry.organism.v2.train``), runs ``experiments/configs/organism-v2.toml`` on it
through the runner (generate → align → capture → reliance → probes → verdict → report), and copies the
evidence files (``probes/verdict*.csv``, ``alignment/alignment.csv``, ``probes/reliance.csv``,
``probes/compute_rise.csv`` (row M))
to ``DOCS/seed-N/``; ``DOCS/calls.csv`` lists every call as it came out next to the ground
truth (mastery: policy transfer; the three others: surface mimicry), with the rule's commit and
the commit the organism was trained from. Processes run side by side on different seeds merge
their rows into the one ``calls.csv`` (under a file lock; rows of a seed run again replace its
old rows).
Each seed costs one v2 training (~15 CPU minutes) plus one organism-v2 run.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path

# run as a script, benchmarks/ is sys.path[0] and benchmarks/probes.py shadows the probes
# package (experiments.layout imports probes.results): drop it, put the repository root first
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from mimicry.organism.v2 import GROUND_TRUTH as TRUTH  # noqa: E402 (after the path fix)

EVAL_SEEDS = (205, 206, 207, 208, 209, 210)  # recipe 2; the first evaluation used 200..204
DEV_SEEDS = (100, 101, 102, 103, 104, 200, 201, 202, 203, 204)  # 200..204: evaluated once, then
# used for development of recipe 2 (docs/organism.md, "Held-out protocol")
FIELDS = ["seed", "student", "call", "truth", "right", "decided_by", "rule_commit",
          "organism_commit"]
FREEZE = "verdict: freeze rule"


def freeze_commit(repo: Path) -> str | None:
    """Return ``"<sha> <subject>"`` of the newest rule-freeze commit, or None."""
    out = subprocess.run(["git", "-C", str(repo), "log", "--format=%H %s"],
                         capture_output=True, text=True, check=True).stdout
    return next((ln for ln in out.splitlines() if ln.split(" ", 1)[1].startswith(FREEZE)),
                None)


def run_seed(seed: int, out: Path, docs: Path, repo: Path) -> list[dict]:
    """Train + run one evaluation seed; copy its evidence; return its call rows."""
    import pandas as pd

    from experiments.config import load_config
    from experiments.runner import run_experiment
    from mimicry.organism.v2.train import train

    models = out / f"seed-{seed}" / "models"
    if not (models / "train_summary.json").exists():
        train(models, seed=seed)
    cfg = load_config(repo / "experiments" / "configs" / "organism-v2.toml")
    cfg.seed = seed
    for m in cfg.models:
        m.local_path = str(models / m.name.removeprefix("organism:v2/"))
    run = out / f"seed-{seed}" / "run"
    run_experiment(cfg, out=run)
    dest = docs / f"seed-{seed}"
    dest.mkdir(parents=True, exist_ok=True)
    for f in [*sorted((run / "probes").glob("verdict*.csv")), run / "alignment" /
              "alignment.csv", run / "probes" / "reliance.csv", run / "probes" / "compute_rise.csv",
              models / "train_summary.json"]:
        if f.exists():
            shutil.copy2(f, dest / f.name)
    calls = pd.read_csv(run / "probes" / "verdict_calls.csv")
    rows = []
    for _, r in calls.iterrows():
        student = r.get("student")
        rows.append({"seed": seed, "student": student, "call": r.get("call"),
                     "truth": TRUTH.get(student, ""),
                     "right": r.get("call") == TRUTH.get(student),
                     "decided_by": r.get("decided_by", "")})
    return rows


def merge_calls(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` into ``path`` (a calls.csv), keeping the rows of other seeds; under a lock
    so that processes evaluating different seeds side by side do not overwrite each other."""
    import fcntl
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "mimicry-heldout-calls.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mine = {r["seed"] for r in rows}
        old = []
        if path.exists():
            with open(path, newline="") as fh:
                old = [r for r in csv.DictReader(fh) if int(r["seed"]) not in mine]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS, restval="")
            w.writeheader()
            for r in sorted(old + rows, key=lambda r: (int(r["seed"]), r["student"])):
                w.writerow({k: r.get(k, "") for k in FIELDS})
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run the held-out evaluation; return the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(EVAL_SEEDS))
    ap.add_argument("--out", default="cache/organism-v2-heldout")
    ap.add_argument("--docs", default="docs/organism-v2-eval2")
    ap.add_argument("--allow-unfrozen", action="store_true")
    args = ap.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    frozen = freeze_commit(repo)
    if frozen is None and not args.allow_unfrozen:
        print(f"error: no commit starting with '{FREEZE}' in git log; freeze the verdict rule "
              "first (the evaluation seeds must not be trained before it)", file=sys.stderr)
        return 2
    dev = sorted(set(args.seeds) & set(DEV_SEEDS))
    if dev:
        print(f"error: seeds {dev} are development seeds (looked at while the organism was "
              "built); pick evaluation seeds", file=sys.stderr)
        return 2
    docs = repo / args.docs
    rows = []
    for seed in args.seeds:
        rows += run_seed(seed, Path(args.out), docs, repo)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    for r in rows:
        r.update(rule_commit=frozen or "NOT HELD OUT (no frozen rule)", organism_commit=head)
    merge_calls(docs / "calls.csv", rows)
    right = sum(r["right"] for r in rows)
    print(f"{right}/{len(rows)} calls right; rule {frozen}; tables in {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
