"""What every capture backend consumes and produces, and the reductions they share.

A backend (``hf``, ``tl``, ``nnsight``) is built from ``(model, tokenizer, config)`` and maps
a batch of :class:`EncodedItem` (token ids plus segment boundaries) to one
:class:`ItemActivations` per item: the residual stream at each site for every layer, and the
attention entropy reduced over each query segment. Backends that hold full per-token tensors
(TransformerLens, nnsight) call :func:`reduce_item` so that every backend reduces the same way.

Positions are item-relative (0 = first real token), never padded-batch indices. The two
records live in :mod:`mimicry.store.records` (what the cache writer takes), re-exported here.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..store.records import EncodedItem, ItemActivations
from .config import ENTROPY_SEGMENTS, ENTROPY_VARIANTS, CaptureConfig

__all__ = ["Backend", "EncodedItem", "ItemActivations", "model_dims", "nan_empty_rows",
           "reduce_item"]


@runtime_checkable
class Backend(Protocol):
    """A capture backend: ``Backend(model, tokenizer, config).run(batch) -> activations``."""

    name: str

    def run(self, batch: list[EncodedItem]) -> list[ItemActivations]:
        """Return one :class:`ItemActivations` per item of ``batch``, same order."""
        ...


def model_dims(model) -> dict[str, int]:
    """Return ``{"n_layers", "d_model", "n_heads"}`` read from an HF model's config."""
    cfg = getattr(model, "config", model)
    cfg = getattr(cfg, "text_config", None) or cfg
    return {"n_layers": int(cfg.num_hidden_layers), "d_model": int(cfg.hidden_size),
            "n_heads": int(cfg.num_attention_heads)}


def nan_empty_rows(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return ``values [n, ...]`` with rows whose weights ``[n, L]`` are all zero set to NaN."""
    empty = weights.sum(axis=1) == 0
    if empty.any():
        values = values.copy()
        values[empty] = np.nan
    return values


def reduce_item(item: EncodedItem, config: CaptureConfig, resid_tokens: np.ndarray,
                entropy_tokens: dict[str, np.ndarray] | None = None) -> ItemActivations:
    """Return the :class:`ItemActivations` of one item from its full per-token tensors.

    ``resid_tokens``: ``[n_layers + 1, length, d_model]`` (no padding);
    ``entropy_tokens[variant]``: ``[n_layers, n_heads, length]`` per query position for
    ``raw``, ``norm``, ``nosink`` (ignored when entropy is ``off``). Means are taken in
    float64; in ``sampled`` mode only ``item.entropy_positions`` enter the means.
    """
    resid_tokens = np.asarray(resid_tokens)
    w = item.weights(config.sites)  # [n_sites, L]
    # [n_sites, n_layers+1, d]
    sites = np.einsum("sl,kld->skd", w, resid_tokens.astype(np.float64))
    sites = nan_empty_rows(sites, w)
    resid = {s: sites[i].astype(np.float32) for i, s in enumerate(config.sites)}
    entropy: dict[str, dict[str, np.ndarray]] = {}
    if config.entropy != "off" and entropy_tokens is not None:
        pos = item.entropy_positions if config.entropy == "sampled" else None
        we = item.weights(ENTROPY_SEGMENTS, pos)
        for v in ENTROPY_VARIANTS:
            red = np.einsum("sl,khl->skh", we, np.asarray(entropy_tokens[v], np.float64))
            red = nan_empty_rows(red, we)
            entropy[v] = {s: red[i].astype(np.float32) for i, s in enumerate(ENTROPY_SEGMENTS)}
    tr = tp = None
    if item.token_positions is not None:
        tp = np.asarray(item.token_positions, dtype=np.int64)
        tr = resid_tokens[:, tp, :].transpose(1, 0, 2).astype(np.float32)
    return ItemActivations(item.item_id, resid, entropy, tr, tp)
