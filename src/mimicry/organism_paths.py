"""Where the bundled model-organism checkpoints live and which roles exist (v1 and v2).

Returns folders only: :func:`checkpoint_path` maps a role (``teacher``, ``v2/student_posthoc``)
to its saved model. It sits below both :mod:`mimicry.models` (which resolves ``organism:ROLE``
through it, so a config, ``ModelSpec`` and the CLI all accept that name) and
:mod:`mimicry.organism` (which trains and loads the models and re-exports these names), so
neither of the two imports the other for it. A new organism version's roles and folder go here.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelNotFoundError

_ORGANISM = Path(__file__).resolve().parent / "organism"

ROLES = ("teacher", "base", "student_mastery", "student_mimic_content", "student_mimic_length")
CHECKPOINTS = _ORGANISM / "checkpoints"

V2_ROLES = ("teacher", "base", "student_mastery", "student_mimic_content",
            "student_mimic_length", "student_posthoc")
V2_EXTRA_ROLES = ("teacher_warm",)
V2_CHECKPOINTS = _ORGANISM / "v2" / "checkpoints"


def find_checkpoint(role: str, roles, base: Path, what: str, train_cmd: str) -> Path:
    """Return ``base/role`` when it holds a saved model; else raise :class:`ModelNotFoundError`.

    Shared by the v1 and v2 organisms: ``roles`` the valid names, ``what`` the label in the
    message, ``train_cmd`` the command that trains the folder.
    """
    if role not in roles:
        raise ModelNotFoundError(f"unknown {what} role {role!r}",
                                 fix=f"use one of {', '.join(roles)}")
    p = base / role
    if not (p / "config.json").exists():
        raise ModelNotFoundError(f"{what} model '{role}' not found in {base}",
                                 fix=f"train it: {train_cmd} (then pass root=DIR)")
    return p


def v2_checkpoint_path(role: str, root: str | Path | None = None) -> Path:
    """Return the folder of a trained v2 model (committed ones when ``root`` is None).

    Raises :class:`ModelNotFoundError` for an unknown role or a missing folder.
    """
    return find_checkpoint(role, V2_ROLES + V2_EXTRA_ROLES,
                           Path(root) if root is not None else V2_CHECKPOINTS, "organism v2",
                           "mimicry organism train --v2 --out DIR")


def checkpoint_path(role: str, root: str | Path | None = None) -> Path:
    """Return the folder of a trained organism model (committed ones when ``root`` is None).

    ``v2/ROLE`` names an organism v2 model (:func:`v2_checkpoint_path`, under ``root/v2``).
    Raises :class:`ModelNotFoundError` for an unknown role or a missing folder.
    """
    if role.startswith("v2/"):
        return v2_checkpoint_path(role.removeprefix("v2/"),
                                  Path(root) / "v2" if root is not None else None)
    return find_checkpoint(role, ROLES, Path(root) if root is not None else CHECKPOINTS,
                           "organism", "mimicry organism train --out DIR")
