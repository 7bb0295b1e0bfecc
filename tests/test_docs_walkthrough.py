"""The README's CLI walk-through runs top to bottom, as written, on the model organism.

The hub models are swapped for the organism's (``organism:ROLE``) and the spatial suite for the
organism's; fewer items and resamples keep it quick. Everything else — the commands, their
order, the file names and the names that must line up — is the README's own text.
"""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SWAP = {"Qwen/QwQ-32B": "organism:teacher",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": "organism:student_mastery",
        "Qwen/Qwen2.5-32B": "organism:base",
        "--tasks spatial": "--tasks organism",
        "--max-new-tokens 32768": "--max-new-tokens 96 --limit 40",
        "experiments/configs/": str(ROOT / "experiments" / "configs") + "/"}
QUICK = {"align": ["--n-boot", "300", "--n-perm", "300"],
         "verdict": ["--n-perm", "10", "--n-boot", "100"],
         "reliance": ["--n-boot", "300"]}


def walkthrough() -> list[str]:
    """Return the README's walk-through commands (continuations joined, comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(mimicry tasks list.*?)```", text, re.S).group(1)
    cmds, cur = [], ""
    for line in block.splitlines():
        line = line.split("  #", 1)[0].rstrip() if "#" in line else line.rstrip()
        cur += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            cmds.append(cur.strip())
            cur = ""
    return [c for c in cmds if c]


def test_readme_walkthrough_runs_on_the_organism(tmp_path, monkeypatch):
    org = pytest.importorskip("mimicry.organism")
    if any(not (org.CHECKPOINTS / r / "config.json").exists() for r in org.ROLES):
        pytest.skip("organism checkpoints not committed")
    from experiments.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    cmds = walkthrough()
    assert cmds[0] == "mimicry tasks list" and len(cmds) >= 15
    for cmd in cmds:
        if cmd.startswith("mimicry run") and "--dry-run" not in cmd:
            continue  # the full qwen-7b run downloads 7B models
        for a, b in SWAP.items():
            cmd = cmd.replace(a, b)
        argv = [x for a in shlex.split(cmd)[1:]   # the shell's glob expansion
                for x in (sorted(glob.glob(a)) if "*" in a else [a])]
        key = argv[1] if argv[0] == "probe" else argv[0]
        argv += QUICK.get(key, [])
        assert main(argv) == 0, cmd
    calls = pd.read_csv(tmp_path / "run" / "probes" / "verdict_calls.csv")
    assert list(calls["student"]) == ["student"]  # the base is not a student
    ev = pd.read_csv(tmp_path / "run" / "probes" / "verdict.csv").set_index("evidence")
    for row in ("behaviour_r", "reliance", "planning_rho"):   # every name lined up: no n/a
        assert ev.loc[row, "reading"] != "n/a", row
