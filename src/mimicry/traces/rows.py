"""Type checks of trace JSONL rows: every field has its type, counts are whole and >= 0.

:func:`check_trace_row` is called by :func:`mimicry.traces.read_traces` on every row, so a
row with ``"meta": "x"``, ``"reasoning": 5``, ``"reasoning_tokens": Infinity`` or ``-5``, or
``"correct": "maybe"`` is one clear :class:`~mimicry.errors.InputError` naming the file, the
row and the fix — never a traceback deep in a stage, and never a silently wrong number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import InputError

TEXT = ("task", "prompt", "reasoning", "answer_text", "finish_reason", "backend")
COUNTS = ("reasoning_tokens", "answer_tokens")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_trace_row(r: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`InputError` if a row's known fields have the wrong type or range."""
    row = r.get("_row")

    def bad(col: str, want: str) -> InputError:
        v = r[col]
        return InputError(f"{col} is {v!r} ({type(v).__name__})", file=path, row=row,
                          fix=f"expected {want}")

    for col in ("item_id", "model"):
        v = r.get(col)
        if not (isinstance(v, str) or (_is_num(v) and col == "item_id" and
                                       float(v) == int(v))):
            raise bad(col, "a string")
    for col in TEXT:
        if r.get(col) is not None and not isinstance(r[col], str):
            raise bad(col, "a string (or null)")
    if r.get("parsed_answer") is not None and not isinstance(r["parsed_answer"], (str, int)):
        raise bad("parsed_answer", "a string (or null)")
    if r.get("correct") is not None and not isinstance(r["correct"], bool):
        raise bad("correct", "true, false or null")
    for col in COUNTS:
        v = r.get(col)
        if v is None:
            continue
        if not _is_num(v) or not math.isfinite(v) or v < 0 or v != int(v):
            raise bad(col, "a whole number of tokens >= 0 (or null)")
    v = r.get("seconds")
    if v is not None and (not _is_num(v) or not math.isfinite(v) or v < 0):
        raise bad("seconds", "a number of seconds >= 0 (or null)")
    if r.get("meta") is not None and not isinstance(r["meta"], dict):
        raise bad("meta", "a JSON object (or null)")
