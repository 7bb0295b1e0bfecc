"""Split generated token ids into reasoning and answer, with exact token counts.

The text split is :func:`mimicry.traces.split_reasoning`; this module finds the same split
in the *generated ids*, so ``reasoning_tokens`` counts the tokens the model really produced
(not a re-tokenisation of the decoded text). ``</think>`` need not be a single token: its
position is located by decoding prefixes of the ids (binary search over character offsets),
so a tokenizer that spells it ``</``, ``think``, ``>`` is handled the same way.

Counting convention (documented in docs/generate.md):
``reasoning_tokens`` = tokens after a generated ``<think>`` (if any) and before ``</think>``;
``answer_tokens`` = tokens after ``</think>``; the tag tokens themselves, eos and padding are
not counted. Without ``</think>``, a completion that opened ``<think>`` (itself or in the
prompt) or was cut by the token limit is all reasoning; otherwise it is all answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..traces import THINK_CLOSE, THINK_OPEN, split_reasoning


@dataclass
class Segmented:
    """One completion split into reasoning and answer, as text and as token counts."""

    completion: str
    reasoning: str
    answer: str
    closed: bool
    reasoning_tokens: int
    answer_tokens: int


def decode_ids(tokenizer, ids: Sequence[int]) -> str:
    """Return the text of ``ids`` with special tokens kept and no space clean-up."""
    return tokenizer.decode(list(ids), skip_special_tokens=False,
                            clean_up_tokenization_spaces=False)


def _first_prefix(n: int, pred: Callable[[int], bool]) -> int:
    """Return the smallest k in [0, n] with ``pred(k)`` true (``pred`` monotone; n if none)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def strip_stop(ids: Sequence[int], stop_ids: set[int]) -> tuple[list[int], bool]:
    """Return ``(ids before the first stop id, whether a stop id was found)``."""
    ids = list(ids)
    for i, t in enumerate(ids):
        if t in stop_ids:
            return ids[:i], True
    return ids, False


def segment_ids(tokenizer, ids: Sequence[int], *, prompt_opens_think: bool = False,
                finish_reason: str | None = None) -> Segmented:
    """Return the reasoning/answer split of generated ``ids`` (eos and padding already removed).

    Token boundaries come from character offsets of decoded prefixes, so they agree with the
    text split of :func:`split_reasoning` on the decoded completion.
    """
    ids = list(ids)
    n = len(ids)
    text = decode_ids(tokenizer, ids)
    reasoning, answer, closed = split_reasoning(
        text, prompt_opens_think=prompt_opens_think, finish_reason=finish_reason)

    cache: dict[int, str] = {}

    def prefix(k: int) -> str:
        if k not in cache:
            cache[k] = decode_ids(tokenizer, ids[:k])
        return cache[k]

    # Tokens of a generated opening <think> (not counted as reasoning).
    stripped = text.lstrip()
    opened_here = stripped.startswith(THINK_OPEN)
    open_end = 0
    search_from = 0
    if opened_here:
        search_from = text.find(THINK_OPEN) + len(THINK_OPEN)
        open_end = _first_prefix(n, lambda k: THINK_OPEN in prefix(k))

    if closed:
        idx = text.find(THINK_CLOSE, search_from)
        end_char = idx + len(THINK_CLOSE)
        # First token whose text reaches into '</think>': its prefix is longer than idx chars.
        close_start = _first_prefix(n, lambda k: len(prefix(k)) > idx) - 1
        close_end = _first_prefix(n, lambda k: len(prefix(k)) >= end_char
                                  and THINK_CLOSE in prefix(k)[search_from:])
        close_start = max(close_start, open_end)
        r_tok = close_start - open_end
        a_tok = n - close_end
    elif prompt_opens_think or opened_here or finish_reason == "length":
        r_tok, a_tok = n - open_end, 0
    else:
        r_tok, a_tok = 0, n
    return Segmented(completion=text, reasoning=reasoning, answer=answer, closed=closed,
                     reasoning_tokens=r_tok, answer_tokens=a_tok)


def count_text_tokens(tokenizer, text: str) -> int:
    """Return the number of tokens ``tokenizer`` makes of ``text`` (no special tokens added)."""
    if not text:
        return 0
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
