"""alignment: does a model's reasoning cost track human difficulty? (docs/alignment.md).

Modules: ``cells`` (:func:`align` -> :class:`AlignmentResult`: r per model × task with CI and
permutation p, r̄, exclusions), ``roles`` (teacher/student/base comparisons: Δr, negative
transfer, inflation law, fingerprints), ``cli`` (``mimicry align``). Statistics themselves
live in :mod:`mimicry.stats`; new behavioural analyses go here.
"""

from __future__ import annotations

from .._lazy import lazy

__all__ = ["AlignmentResult", "align"]

__getattr__, __dir__ = lazy(__name__, {
    'AlignmentResult': '.cells',
    'align': '.cells',
})
