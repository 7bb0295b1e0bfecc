"""Which capture settings a cache and a run must share before the run may append to it.

Returns the comparable part of a cache's ``capture_config`` attr. The rule belongs to the
capture config (defaults for fields an older cache lacks, performance knobs that may differ),
so :mod:`mimicry.capture.config` registers it here on import with
:func:`register_config_identity`; the store never imports capture. Until one is registered
(no capture code loaded), the whole config must be equal: a refusal, never a silent mix.
"""

from __future__ import annotations

import json
from collections.abc import Callable

_RULE: list[Callable[[str], dict]] = []


def register_config_identity(rule: Callable[[str], dict]) -> None:
    """Set ``rule(capture_config_json) -> dict`` of the fields that must match (last one wins)."""
    _RULE[:] = [rule]


def config_identity(text: str) -> dict:
    """Return the fields of a ``capture_config`` JSON that a resumed or merged run must match."""
    return _RULE[0](text) if _RULE else json.loads(text)
