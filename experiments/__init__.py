"""experiments: run a study end to end — the only package that imports both mimicry and probes.

Modules: ``configs/*.toml`` (one config per model family, package data), ``config`` (the
:class:`ExperimentConfig`), ``cost`` and ``shapes`` (dry-run cost), ``stages`` (generate,
align, capture, reliance, probe, report), ``probing`` (probes on a run folder), ``report``
(report.md / report.html), ``runner`` (plan, stage markers, run, demo), ``reader``
(:func:`load_run` -> :class:`Run`), ``cli`` (the ``mimicry`` console command).
"""

from __future__ import annotations

from .reader import Run, load_run

__all__ = ["Run", "load_run"]
