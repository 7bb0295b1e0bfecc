"""Probes over mimicry caches: difficulty, entropy, similarity, planning, ablation, verdict.

Each module has a scikit-learn-style estimator and ``run(...) -> Result``; see docs/probes.md.
Import the modules you need (``from probes import difficulty``); nothing heavy runs on import.
"""

from .base import Result

__all__ = ["Result"]
