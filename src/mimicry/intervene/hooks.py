"""Hooks that change the residual stream during a forward pass or a whole generation.

Each is a context manager that registers one hook and always removes it (``finally``), in
the style of baukit's ``Trace``. Layer ``0`` edits the input of decoder layer 0 (the
embeddings after any model-specific scaling); layer ``i`` >= 1 edits the output of decoder
layer ``i`` — the same positions the cache's ``resid(i, ...)`` reads. During ``generate``
with a KV cache the hook sees the prefill (all prompt positions) first, then one new
position per call; ``call`` counts those forwards from 0 (0 = the prefill).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..capture.hf import decoder_layers
from ..errors import InputError

Edit = Callable[[torch.Tensor, int], torch.Tensor]  # (hidden [b, L, d], call) -> hidden


def _layer_index(model, layer: int) -> int:
    n = len(decoder_layers(model))
    idx = layer + n + 1 if layer < 0 else layer
    if not 0 <= idx <= n:
        raise InputError(f"layer {layer} out of range for a model with {n} decoder layers",
                         fix=f"use 0 (embeddings) .. {n}, or a negative index")
    return idx


@contextlib.contextmanager
def residual_edit(model, layer: int, edit: Edit) -> Iterator[dict]:
    """Apply ``edit(hidden [b, L, d], call) -> hidden`` at ``layer`` for the block; yield state.

    The yielded dict counts the forwards seen (``state["calls"]``). The hook is removed on
    exit, also when the block raises.
    """
    layers = decoder_layers(model)
    idx = _layer_index(model, layer)
    state = {"calls": 0}

    def pre(mod, args, kwargs):
        if args:
            new = edit(args[0], state["calls"])
            state["calls"] += 1
            return (new, *args[1:]), kwargs
        kwargs = dict(kwargs)
        kwargs["hidden_states"] = edit(kwargs["hidden_states"], state["calls"])
        state["calls"] += 1
        return args, kwargs

    def post(mod, args, output):
        hs = output[0] if isinstance(output, tuple) else output
        new = edit(hs, state["calls"])
        state["calls"] += 1
        return (new, *output[1:]) if isinstance(output, tuple) else new

    if idx == 0:
        handle = layers[0].register_forward_pre_hook(pre, with_kwargs=True)
    else:
        handle = layers[idx - 1].register_forward_hook(post)
    try:
        yield state
    finally:
        handle.remove()


def _as_tensor(v, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v).to(
        device=like.device, dtype=like.dtype)


POSITIONS = ("all", "prompt", "generated")


@contextlib.contextmanager
def steer(model, direction, alpha: float, layer: int, *, positions: str = "all"
          ) -> Iterator[dict]:
    """Add ``alpha · direction [d]`` to the residual at ``layer`` for the block; yield state.

    ``positions``: ``all`` (every position of every forward: prompt and generated tokens),
    ``prompt`` (only the first forward, i.e. the prefill of a generation) or ``generated``
    (every forward but the first).
    """
    if positions not in POSITIONS:
        raise InputError(f"unknown steering positions {positions!r}",
                         fix=f"use one of {', '.join(POSITIONS)}")
    vec = torch.as_tensor(np.asarray(direction, np.float64) * float(alpha))
    if vec.ndim != 1:
        raise InputError(f"direction must be one vector [d_model], got shape {tuple(vec.shape)}")

    def edit(hs: torch.Tensor, call: int) -> torch.Tensor:
        if (positions == "prompt" and call > 0) or (positions == "generated" and call == 0):
            return hs
        if hs.shape[-1] != vec.shape[0]:
            raise InputError(f"direction has {vec.shape[0]} dims, the residual {hs.shape[-1]}",
                             fix="use a direction from this model's cache (or map it)")
        return hs + _as_tensor(vec, hs)

    with residual_edit(model, layer, edit) as state:
        yield state


@contextlib.contextmanager
def patch_residual(model, layer: int, values, position: int = -1) -> Iterator[dict]:
    """Replace the residual at ``layer``, ``position`` of the first forward by ``values [b, d]``.

    The first forward is the prefill of a generation (or the only forward of a plain call);
    with LEFT padding, ``position=-1`` is every row's last prompt token. Later forwards (new
    tokens) are not touched: they see the patched state through the KV cache.
    """
    vals = torch.as_tensor(np.asarray(values, np.float64) if not torch.is_tensor(values)
                           else values)
    if vals.ndim != 2:
        raise InputError(f"patch values must be [batch, d_model], got {tuple(vals.shape)}")

    def edit(hs: torch.Tensor, call: int) -> torch.Tensor:
        if call > 0:
            return hs
        if hs.shape[0] != vals.shape[0] or hs.shape[-1] != vals.shape[1]:
            raise InputError(f"patch values {tuple(vals.shape)} do not fit the batch "
                             f"{tuple(hs.shape)}")
        hs = hs.clone()
        hs[:, position, :] = _as_tensor(vals, hs)
        return hs

    with residual_edit(model, layer, edit) as state:
        yield state
