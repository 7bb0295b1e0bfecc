"""The organism demo at small scale, and the numbers the redesign must not change.

``python tests/_demo_reference.py OUT.json`` runs the organism config (the demo's settings,
``MAX_ITEMS`` items per task) into a temporary folder and writes alignment.csv, reliance.csv and
the verdict's evidence rows and calls as JSON. The committed ``tests/data/demo_reference.json``
was written by the code before the redesign (commit 55b9b3a, where the runner lived in
``mimicry.runner``); ``tests/test_demo_regression.py`` re-runs and compares.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

MAX_ITEMS = 16  # reliance needs >= 10 items per model
# the probes the demo ran when the reference was written (compute, steer and patch came later)
PROBES = ["difficulty", "entropy", "similarity", "planning", "ablation", "reliance", "verdict"]
TABLES = {"alignment": "alignment/alignment.csv", "reliance": "probes/reliance.csv",
          "verdict": "probes/verdict.csv", "verdict_calls": "probes/verdict_calls.csv"}


def run_small_demo(out: Path) -> dict[str, list[dict]]:
    """Return ``{table: rows}`` of a small organism demo run written into ``out``."""
    import pandas as pd

    extra = {}
    try:
        from experiments.runner import organism_config, run_experiment

        # the reference predates the reliance stage's empty/filler controls: off, so the
        # pinned reliance and verdict tables are the same computation
        extra = {"reliance": {"controls": []}}
    except ImportError:  # the code before the redesign
        from mimicry.runner import organism_config, run_experiment
    cfg = organism_config(out=str(out), max_items_per_task=MAX_ITEMS,
                          probes={"names": PROBES}, **extra)
    run_experiment(cfg)
    tables = {}
    for name, rel in TABLES.items():
        df = pd.read_csv(out / rel)
        tables[name] = json.loads(df.to_json(orient="records", double_precision=15))
    return tables


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        res = run_small_demo(Path(sys.argv[2]) if len(sys.argv) > 2 else Path(d) / "run")
    Path(sys.argv[1]).write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
