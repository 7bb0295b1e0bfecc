"""experiments: run a study end to end — the only package that imports both mimicry and probes.

Modules: ``configs/*.toml`` (one config per model family, package data), ``config`` (the
:class:`ExperimentConfig`), ``cost`` and ``shapes`` (dry-run cost), ``stages`` (generate,
align, capture, probe, report; ``stage_reliance``, ``stage_intervene``), ``probing`` (probes on a run folder), ``report``
(report.md / report.html), ``runner`` (plan, stage markers, run, demo), ``reader``
(:func:`load_run` -> :class:`Run`), ``cli`` (the ``mimicry`` console command).
"""

from __future__ import annotations

__all__ = ["Run", "load_run"]


def __getattr__(name: str):
    """Return ``Run`` / ``load_run``, importing the reader (and pandas) on first use."""
    if name in __all__:
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
