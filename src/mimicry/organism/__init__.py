"""The model organism: tiny teacher/student/base models with a KNOWN answer.

A synthetic chain-arithmetic task (difficulty = number of steps, norm SYNTHETIC) and five tiny
Llama models trained here on a CPU (:func:`train`): ``teacher`` (traces that compute the
answer, length tracks difficulty), ``base`` (answers directly), and three students SFT'd from
the base: ``student_mastery`` (teacher's traces), ``student_mimic_content`` (format and
per-item length kept, content scrambled) and ``student_mimic_length`` (format and verbosity
kept, lengths shuffled across items). Trained checkpoints ship in ``checkpoints/``:
``checkpoint_path("teacher")``, ``load("teacher")`` (roles and folders:
:mod:`mimicry.organism_paths`). See docs/organism.md.

Importing this package is cheap (no torch); the task registry imports
:mod:`mimicry.organism.task` to register the ``organism`` suite and its scorer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..organism_paths import CHECKPOINTS, ROLES, checkpoint_path, find_checkpoint

STUDENT_ROLES = ROLES[2:]

# The role each organism model plays in a teacher/student/base comparison (ModelSpec.role).
SPEC_ROLE = {"teacher": "teacher", "base": "base", "student_mastery": "student",
             "student_mimic_content": "student", "student_mimic_length": "student"}

__all__ = ["ROLES", "STUDENT_ROLES", "CHECKPOINTS", "SUITE", "TASK", "checkpoint_path",
           "find_checkpoint",
           "load", "model_specs", "organism_suite", "train"]


def load(role: str, root: str | Path | None = None, **kw: Any):
    """Return ``(model, tokenizer)`` of an organism role via :func:`mimicry.models.load_model`."""
    from ..models import load_model

    kw.setdefault("dtype", "float32")
    return load_model(str(checkpoint_path(role, root)), **kw)


def model_specs(root: str | Path | None = None) -> dict[str, Any]:
    """Return ``{role: ModelSpec}`` for every organism model (``ModelSpec.role`` set)."""
    from ..models import ModelSpec

    return {r: ModelSpec(str(checkpoint_path(r, root)), role=SPEC_ROLE[r], dtype="float32")
            for r in ROLES}


def train(out: str | Path, seed: int = 0, *, version: int = 1, **kw: Any) -> dict[str, Path]:
    """Return ``{role: folder}`` after training all five models into ``out`` (see train.py);
    ``version=2`` trains the v2 set into ``out/v2`` (see v2/train.py)."""
    if version == 2:
        from .v2.train import train as _train_v2

        return _train_v2(Path(out) / "v2", seed=seed, **kw)
    from .training import train as _train

    return _train(out, seed=seed, **kw)


def __getattr__(name: str) -> Any:
    """Return ``SUITE``, ``TASK`` or ``organism_suite`` (the task module loads pandas: lazily)."""
    if name in ("SUITE", "TASK", "organism_suite"):
        from . import task

        return getattr(task, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
