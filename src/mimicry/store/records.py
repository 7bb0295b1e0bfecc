"""What one item contributes to a cache: the encoded trace and its reduced activations.

:class:`EncodedItem` (token ids plus segment boundaries, as the capturing model sees a trace)
and :class:`ItemActivations` (residuals per site and layer, attention entropy per segment)
are produced by :mod:`mimicry.capture` and written by :mod:`mimicry.store.writer` /
:mod:`mimicry.store.shards`. They live here, below both, so that the store never imports
capture (capture imports the store to write). Positions are item-relative (0 = first real
token), never padded-batch indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
