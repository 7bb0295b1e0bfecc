"""Which model a cache holds: checks for probes that need caches of one model or one shape.

A cache's root attrs name the model (``model``), its weights (``weights_hash``, see
:mod:`mimicry.fingerprint`) and its shape (``n_layers``, ``d_model``, ``n_heads``). The
ablation compares one model over several traces files, so its caches must come from the
same weights; a random-init control must have the same architecture (its weights differ by
design).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InputError

SHAPE = ("n_layers", "d_model", "n_heads")


def model_of(cache: Any) -> str:
    """Return the identity of the model behind a cache: its weights hash, else its name."""
    m = cache.meta
    return str(m.get("weights_hash") or f"name:{m.get('model')}")


def _shape(cache: Any) -> tuple:
    return tuple(int(cache.meta.get(k, -1)) for k in SHAPE)


def require_same_model(caches: Mapping[str, Any], what: str) -> None:
    """Raise :class:`InputError` unless every cache holds the same model (weights and shape)."""
    names = list(caches)
    if not names:
        return
    first = caches[names[0]]
    for k in names[1:]:
        c = caches[k]
        if _shape(c) != _shape(first) or model_of(c) != model_of(first):
            raise InputError(
                f"{what}: caches '{names[0]}' ({first.meta.get('model')}, "
                f"{_shape(first)[0]} layers) and '{k}' ({c.meta.get('model')}, "
                f"{_shape(c)[0]} layers) hold different models",
                fix="give caches of ONE model captured over different traces (own, "
                    "teacher's, scrambled)")


def require_same_architecture(cache: Any, control: Any, what: str) -> None:
    """Raise :class:`InputError` unless ``control`` has the layers/width/heads of ``cache``."""
    a, b = _shape(cache), _shape(control)
    if a != b:
        raise InputError(
            f"{what}: the control cache has (layers, d_model, heads) = {b}, the model's "
            f"cache {a}", fix="capture a random-init model of the SAME architecture "
                              "(mimicry.testing / from_config) over the same traces")
