"""Traces -> token ids with segment boundaries, exactly as the capturing model would see them.

The text is ``render_prompt(tok, prompt)`` (the model's chat template) + ``"<think>\\n"``
(unless the template already opened it) + reasoning + ``"\\n</think>\\n\\n"`` + answer. It is
tokenised once with ``return_offsets_mapping``, and segment boundaries are found from
character offsets, so traces written by another model (another tokenizer) are re-tokenised
correctly. A token belongs to the segment where it starts. A trace cut by the length limit
(``finish_reason == "length"`` and no answer) has no ``</think>``: it is captured as
prompt + reasoning, with an empty answer segment, ``think_end = -1`` and ``truncated`` set.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import InputError
from ..traces import Trace
from ..traces.prompt import build_text
from .base import EncodedItem
from .config import CaptureConfig


def _tokenise(tok, text: str, cuts: tuple[int, int], templated: bool) -> tuple[list[int], int, int]:
    """Return ``(ids, n_prompt_tokens, reasoning_end_token)`` using character offsets."""
    add = not templated  # a chat template already contains BOS etc.
    try:
        enc = tok(text, add_special_tokens=add, return_offsets_mapping=True)
        starts = np.array([s for s, _ in enc["offset_mapping"]], dtype=np.int64)
        # zero-width (added special) tokens take the position of the token before them
        starts = np.maximum.accumulate(starts) if len(starts) else starts
        ids = list(enc["input_ids"])
        return ids, int((starts < cuts[0]).sum()), int((starts < cuts[1]).sum())
    except NotImplementedError:  # slow tokenizer: no offsets; count prefix tokens instead
        ids = tok(text, add_special_tokens=add)["input_ids"]
        n_p = len(tok(text[:cuts[0]], add_special_tokens=add)["input_ids"])
        n_r = len(tok(text[:cuts[1]], add_special_tokens=add)["input_ids"])
        return ids, n_p, n_r


def sampled_positions(length: int, n: int, seed: int, key: str,
                      always: tuple[int, ...] = ()) -> np.ndarray:
    """Return sorted query positions ``[<= n + len(always)]``: ``n`` drawn + ``always``.

    Deterministic in ``(seed, key)``, so the set is the same on a resumed run.
    """
    if length <= n:
        return np.arange(length, dtype=np.int64)
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    rng = np.random.default_rng([seed, h])
    pos = set(rng.choice(length, size=n, replace=False).tolist())
    pos.update(a for a in always if 0 <= a < length)
    return np.array(sorted(pos), dtype=np.int64)


def token_positions(item: EncodedItem, config: CaptureConfig) -> np.ndarray:
    """Return the sorted positions whose residual is stored per token (stride rows).

    ``per_token_segment="all"``: every ``stride``-th position from 0; ``"reasoning"``: every
    ``stride``-th position of the reasoning segment from its first token, plus its last one
    (empty when the segment is).
    """
    stride = int(config.per_token_stride)
    if config.per_token_segment == "reasoning":
        a, b = item.n_prompt, item.reasoning_end
        if b <= a:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.r_[np.arange(a, b, stride), b - 1]).astype(np.int64)
    return np.arange(0, item.length, stride, dtype=np.int64)


def encode_trace(tok, trace: Trace, row: int, config: CaptureConfig,
                 file: str | None = None) -> EncodedItem:
    """Return the :class:`EncodedItem` of one trace (``row``: its index in the input)."""
    if not trace.prompt:
        raise InputError(f"trace {trace.item_id!r} has no prompt", file=file, row=row + 1,
                         fix="capture needs the prompt text of every trace")
    if trace.reasoning is None and trace.answer_text is None:
        raise InputError(f"trace {trace.item_id!r} has no reasoning or answer_text",
                         file=file, row=row + 1,
                         fix="capture needs the trace text, not only reasoning_tokens")
    text, c_p, c_r, truncated = build_text(tok, trace, config.chat_template)
    templated = config.chat_template != "none" and bool(getattr(tok, "chat_template", None))
    ids, n_p, n_r = _tokenise(tok, text, (c_p, c_r), templated)
    if n_p < 1:
        raise InputError(f"trace {trace.item_id!r}: the prompt tokenises to nothing",
                         file=file, row=row + 1)
    item = EncodedItem(
        item_id=str(trace.item_id), input_ids=np.asarray(ids, dtype=np.int64), n_prompt=n_p,
        reasoning_end=n_r, think_end=-1 if truncated else n_r - 1, row=row,
        task=trace.task or "", trace_model=trace.model or "", truncated=truncated,
        reasoning_tokens=-1 if trace.reasoning_tokens is None else int(trace.reasoning_tokens))
    if config.entropy == "sampled":
        item.entropy_positions = sampled_positions(
            item.length, config.n_sampled, config.seed, item.key,
            always=(item.last_prompt, item.think_end))
    if config.per_token_stride:
        item.token_positions = token_positions(item, config)
    return item


def encode_traces(tok, traces: list[Trace], config: CaptureConfig,
                  file: str | None = None) -> list[EncodedItem]:
    """Return one :class:`EncodedItem` per trace; duplicate ``(model, item_id)`` is an error."""
    out, seen = [], {}
    for i, t in enumerate(traces):
        it = encode_trace(tok, t, i, config, file)
        if it.key in seen:
            raise InputError(f"duplicate trace for model {t.model!r}, item {t.item_id!r} "
                             f"(also row {seen[it.key] + 1})", file=file, row=i + 1,
                             fix="keep one trace per (model, item_id)")
        seen[it.key] = i
        out.append(it)
    return out
