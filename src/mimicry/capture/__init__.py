"""capture: forward passes over prompt + trace that record residuals and attention entropy.

Modules: ``config`` (the job's :class:`CaptureConfig`), ``base`` (``EncodedItem``,
``ItemActivations``, the ``Backend`` protocol, shared reductions), ``entropy`` (chunked fp32
attention entropy, the reference), ``segments`` (trace -> tokens + segment boundaries),
``hf`` (default backend: stock HF model, SDPA, registered attention function), ``driver``
(batching, resume, writing through :mod:`mimicry.store`), ``cli`` (``mimicry capture``,
``mimicry cache info``). Peers: ``tl_backend``, ``nnsight_backend``, ``triton_entropy``.
"""

from __future__ import annotations

from .config import CaptureConfig


def __getattr__(name: str):
    # numpy and torch are imported on first use (keeps `mimicry --help` fast)
    if name in ("attention_entropy", "entropy_stats"):
        from . import entropy

        return getattr(entropy, name)
    if name in ("Backend", "EncodedItem", "ItemActivations", "reduce_item"):
        from . import base

        return getattr(base, name)
    raise AttributeError(name)


def capture(*args, **kwargs):
    """Return the path of the HDF5 cache written for a model over traces (see driver.capture)."""
    from .driver import capture as _capture

    return _capture(*args, **kwargs)


__all__ = ["Backend", "CaptureConfig", "EncodedItem", "ItemActivations", "attention_entropy",
           "capture", "entropy_stats", "reduce_item"]
