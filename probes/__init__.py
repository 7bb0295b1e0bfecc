"""Probes over mimicry caches: difficulty, entropy, similarity, planning, ablation, verdict.

Each module has a scikit-learn-style estimator and ``run(...) -> Result``; see docs/probes.md.
Import the modules you need (``from probes import difficulty``); nothing heavy runs on import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Result", "load_results", "save_results"]


def __getattr__(name: str) -> Any:
    """Return ``Result``, ``save_results`` or ``load_results`` (:mod:`probes.results`) on first use."""
    if name in __all__:
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
