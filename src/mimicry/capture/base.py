"""What every capture backend consumes and produces, and the reductions they share.

A backend (``hf``, ``tl``, ``nnsight``) is built from ``(model, tokenizer, config)`` and maps
a batch of :class:`EncodedItem` (token ids plus segment boundaries) to one
:class:`ItemActivations` per item: the residual stream at each site for every layer, and the
attention entropy reduced over each query segment. Backends that hold full per-token tensors
(TransformerLens, nnsight) call :func:`reduce_item` so that every backend reduces the same way.

Positions are item-relative (0 = first real token), never padded-batch indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import ENTROPY_SEGMENTS, ENTROPY_VARIANTS, CaptureConfig


@dataclass
class EncodedItem:
    """One trace, tokenised as the capturing model sees it, with its segment boundaries.

    Token ranges: prompt ``[0, n_prompt)``, reasoning ``[n_prompt, reasoning_end)`` (includes
    the ``<think>`` opener when the completion carries it, and ``</think>``), answer
    ``[reasoning_end, length)``. ``last_prompt = n_prompt - 1``; ``think_end`` is the
    ``</think>`` token or ``-1`` when the trace was cut before closing (``truncated``).
    ``row``: index of the trace in the input file (orders the cache).
    ``entropy_positions``: the sampled query positions (``sampled`` mode) or ``None`` (all).
    ``token_positions``: positions whose residual is stored per token (stride) or ``None``.
    """

    item_id: str
    input_ids: np.ndarray  # [length] int64
    n_prompt: int
    reasoning_end: int
    think_end: int
    row: int
    task: str = ""
    trace_model: str = ""
    truncated: bool = False
    reasoning_tokens: int = -1
    entropy_positions: np.ndarray | None = None  # [n_sampled] int64, sorted
    token_positions: np.ndarray | None = None  # [n_rows] int64, sorted
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Return the number of tokens."""
        return int(len(self.input_ids))

    @property
    def last_prompt(self) -> int:
        """Return the position of the last prompt token."""
        return self.n_prompt - 1

    @property
    def key(self) -> str:
        """Return the unique key of this item in a cache (``trace_model::item_id``)."""
        return f"{self.trace_model}::{self.item_id}"

    def segment_range(self, name: str) -> tuple[int, int]:
        """Return ``[start, stop)`` token positions of a segment or point site (empty: a == b)."""
        if name in ("prompt", "mean_prompt"):
            return 0, self.n_prompt
        if name in ("reasoning", "mean_reasoning"):
            return self.n_prompt, self.reasoning_end
        if name in ("answer", "mean_answer"):
            return self.reasoning_end, self.length
        if name == "last_prompt":
            return self.last_prompt, self.last_prompt + 1
        if name == "think_end":
            return (self.think_end, self.think_end + 1) if self.think_end >= 0 else (0, 0)
        raise KeyError(name)

    def weights(self, names: tuple[str, ...] | list[str],
                positions: np.ndarray | None = None) -> np.ndarray:
        """Return averaging weights ``[len(names), length]`` (rows of an empty set are all 0).

        Row ``i`` averages over the positions of ``names[i]`` (restricted to ``positions``
        when given, e.g. the sampled query positions), so ``weights @ x`` is the mean.
        """
        w = np.zeros((len(names), self.length), dtype=np.float64)
        keep = None
        if positions is not None:
            keep = np.zeros(self.length, dtype=bool)
            keep[np.asarray(positions, dtype=np.int64)] = True
        for i, name in enumerate(names):
            a, b = self.segment_range(name)
            sel = np.zeros(self.length, dtype=bool)
            sel[a:b] = True
            if keep is not None:
                sel &= keep
            n = int(sel.sum())
            if n:
                w[i, sel] = 1.0 / n
        return w


@dataclass
class ItemActivations:
    """The reduced activations of one item.

    ``resid[site]``: ``[n_layers + 1, d_model]`` float32 (row 0 = input to the first layer,
    i.e. the embeddings; row i = output of decoder layer i, before the final norm);
    ``entropy[variant][segment]``: ``[n_layers, n_heads]`` float32 with variants ``raw``,
    ``norm`` (÷ log #visible keys) and ``nosink`` (key 0 removed, renormalised); NaN where
    the segment is empty (e.g. ``answer`` of a truncated trace). Empty when entropy is off.
    ``token_resid``: ``[n_rows, n_layers + 1, d_model]`` at ``token_positions`` (stride) or None.
    """

    item_id: str
    resid: dict[str, np.ndarray]
    entropy: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    token_resid: np.ndarray | None = None
    token_positions: np.ndarray | None = None


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
