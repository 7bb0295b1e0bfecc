"""intervene: causal tests that touch a model — steering along a direction, patching a state.

Where new code of this kind goes: hooks that change a forward pass live in ``hooks``
(context managers that always remove themselves); pure-numpy direction arithmetic in
``directions``; generation under an intervention (one row per item: reasoning tokens,
correctness) in ``generation``; the independent nnsight path used to check the hf hooks in
``nnsight_path``. Statistics over the rows (dose–response, normalised patching effect) are
probes (``probes.steer``, ``probes.patch``), not library code.

Layer convention (the cache's): layer 0 = the embeddings (input of decoder layer 0), layer
``i`` >= 1 = the output of decoder layer ``i`` (before the final norm).
"""

from __future__ import annotations

from .directions import mean_difference, random_directions, unit
from .hooks import patch_residual, residual_edit, steer

__all__ = ["mean_difference", "patch_residual", "random_directions", "residual_edit", "steer",
           "unit"]
