"""Control reasonings for the reliance probe: an EMPTY reasoning and a LENGTH-MATCHED filler.

:func:`mimicry.generate.forced.answer_after` answers after whatever reasoning a trace carries.
Scrambling a model's own reasoning (:mod:`mimicry.traces.scramble`) destroys its content but leaves
text that can *distract*; these two controls tell distraction from use:

- :func:`empty_traces` — the same traces with ``reasoning = ""`` (the model answers right
  after ``<think>\\n\\n</think>``): does the answer need any reasoning at all?
- :func:`filler_traces` — the reasoning replaced by a content-free filler (``" ."`` repeated)
  of the same length in tokens (exact with a ``tokenizer``, else one unit per reasoning
  token): does length or extra compute alone help?

Both keep every other field, mark ``meta["control"]`` and write nothing; :func:`control_file`
writes one to JSONL for ``answer_after`` (``mimicry generate --after-reasoning FILE``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from .trace import Trace, append_traces, read_traces

CONTROLS = ("empty", "filler")
FILLER_UNIT = " ."


def empty_traces(traces: Iterable[Trace]) -> list[Trace]:
    """Return copies of ``traces`` whose reasoning is the empty string (0 reasoning tokens)."""
    return [dataclasses.replace(t, reasoning="", reasoning_tokens=0,
                                meta={**t.meta, "control": "empty"}) for t in traces]


def _filler(n: int, tokenizer: Any, unit: str) -> str:
    text = unit * max(0, n)
    if tokenizer is None or n <= 0:
        return text.strip() if n > 0 else ""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    while len(ids) < n:                      # a unit may merge: extend, then cut to n ids
        before = len(ids)
        text += unit * (n - len(ids))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= before:
            raise InputError(f"the tokenizer gives no tokens for the filler unit {unit!r}",
                             fix="pass another unit= that the tokenizer encodes")
    return tokenizer.decode(ids[:n])


def filler_traces(traces: Iterable[Trace], *, tokenizer: Any = None,
                  unit: str = FILLER_UNIT) -> list[Trace]:
    """Return copies of ``traces`` whose reasoning is a filler of the same length in tokens.

    Length = ``reasoning_tokens`` of each trace (required). With ``tokenizer`` the filler is
    cut to exactly that many of its tokens; without, it is ``unit`` repeated that many times.
    """
    out = []
    for t in traces:
        if t.reasoning_tokens is None:
            raise InputError(f"trace {t.item_id!r} has no reasoning_tokens",
                             fix="a length-matched filler needs each trace's reasoning length")
        out.append(dataclasses.replace(
            t, reasoning=_filler(int(t.reasoning_tokens), tokenizer, unit),
            meta={**t.meta, "control": "filler", "filler_unit": unit}))
    return out


def control_file(src: str | Path, out: str | Path, control: str, *,
                 tokenizer: Any = None) -> Path:
    """Return ``out`` after writing the ``control`` ("empty"/"filler") version of ``src``."""
    if control not in CONTROLS:
        raise InputError(f"unknown control {control!r}", fix=f"use one of {', '.join(CONTROLS)}")
    tr = read_traces(src)
    rows = empty_traces(tr) if control == "empty" else filler_traces(tr, tokenizer=tokenizer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    append_traces(tmp, rows)
    tmp.replace(out)
    return out
