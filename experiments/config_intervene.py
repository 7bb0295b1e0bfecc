"""Settings of the intervene stage (``[intervene]``): which models, how many per-token rows.

What the stage runs is decided by ``[probes] names`` (``compute``, ``steer``, ``patch``) and
their options (``[probes.options.steer]`` ...: α, random directions, layers, pairs, budgets),
so the CLI, IPython and the runner share one set of probe options; ``[intervene]`` holds what
only the stage needs. See :mod:`experiments.stage_intervene`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mimicry.errors import InputError


@dataclass
class InterveneStageConfig:
    """Settings of the intervene stage (the model runs of the compute, steer and patch probes).

    Fields:
        models: keys of the students/controls to steer and patch (``[]``: every one; each
            costs a full steering sweep, see the dry run). ``compute`` always covers the
            teacher and every student/control.
        token_rows: per-token residual rows kept along the longest reasoning for ``compute``
            (the capture stride is ``ceil((longest + 2) / token_rows)``; disk grows with it).
    """

    models: list[str] = field(default_factory=list)
    token_rows: int = 128


def validate_intervene(cfg, source: str) -> None:
    """Raise :class:`InputError` when ``[intervene] models`` names no student or control."""
    roles = {m.key: m.role for m in cfg.models}
    bad = [k for k in cfg.intervene.models if roles.get(k) not in ("student", "control")]
    if bad:
        ok = [k for k, r in roles.items() if r in ("student", "control")]
        raise InputError(f"[intervene] models {bad} are not students or controls of this "
                         "config", file=source,
                         fix=f"use some of {', '.join(ok) or '(none)'} or [] for all")
