"""Organism v2: three task families with constant-length prompts, an RL-trained teacher, and
four students distilled from its sampled traces (mastery, content mimic, length mimic, post-hoc).

Where things are: :mod:`.families` (tasks, suite ``organism_v2``, scorers), :mod:`.leakage`
(bag-of-tokens probe on the prompts), :mod:`.traces` (training completions per role),
:mod:`.rl` (TRL GRPO with a correctness reward and a per-token cost), :mod:`.train` (the whole
set), :mod:`.evaluate` (quick per-family behaviour). Models are named ``organism:v2/ROLE`` in
experiment configs. Importing this package is cheap (no torch). See docs/organism.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...organism_paths import V2_CHECKPOINTS as CHECKPOINTS
from ...organism_paths import V2_EXTRA_ROLES as EXTRA_ROLES
from ...organism_paths import V2_ROLES as ROLES
from ...organism_paths import v2_checkpoint_path as checkpoint_path

STUDENT_ROLES = ROLES[2:]
SPEC_ROLE = {"teacher": "teacher", "base": "base", "teacher_warm": "control",
             **{s: "student" for s in STUDENT_ROLES}}
DEV_SEED = 100
# what each student is by construction: the answer the verdict is held to (docs/organism.md)
GROUND_TRUTH = {"student_mastery": "policy transfer", "student_mimic_content": "surface mimicry",
                "student_mimic_length": "surface mimicry", "student_posthoc": "surface mimicry"}

__all__ = ["ROLES", "EXTRA_ROLES", "STUDENT_ROLES", "CHECKPOINTS", "DEV_SEED", "GROUND_TRUTH",
           "checkpoint_path", "load",
           "model_specs", "train"]


def load(role: str, root: str | Path | None = None, **kw: Any):
    """Return ``(model, tokenizer)`` of a v2 role via :func:`mimicry.models.load_model`."""
    from ...models import load_model

    kw.setdefault("dtype", "float32")
    return load_model(str(checkpoint_path(role, root)), **kw)


def model_specs(root: str | Path | None = None) -> dict[str, Any]:
    """Return ``{role: ModelSpec}`` for every v2 model (``ModelSpec.role`` set)."""
    from ...models import ModelSpec

    return {r: ModelSpec(str(checkpoint_path(r, root)), role=SPEC_ROLE[r], dtype="float32")
            for r in ROLES}


def train(out: str | Path, seed: int = DEV_SEED, **kw: Any) -> dict[str, Path]:
    """Return ``{role: folder}`` after training the v2 set into ``out`` (see train.py)."""
    from .train import train as _train

    return _train(out, seed=seed, **kw)
