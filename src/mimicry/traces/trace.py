"""The :class:`Trace` record (one JSONL row per model × item) and its reading/writing.

Reasoning/answer split: a completion is ``reasoning </think> answer``; the opening
``<think>`` may be in the completion or already in the prompt (templates such as
DeepSeek-R1's open it for the model). A completion without ``</think>`` is either a model
that does not reason (whole text is the answer, ``reasoning = ""``) or a trace cut by the
token limit (``finish_reason = "length"``: reasoning is the whole text, answer empty).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..io import append_jsonl, read_jsonl

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass
class Trace:
    """One model's run on one item (see DESIGN.md, "Core objects")."""

    item_id: str
    model: str
    task: str | None = None
    prompt: str | None = None
    reasoning: str | None = None
    answer_text: str | None = None
    parsed_answer: str | None = None
    correct: bool | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    finish_reason: str | None = None
    backend: str | None = None
    seconds: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def cut_before_answer(self) -> bool:
        """Return whether the token limit cut the trace inside its reasoning (no answer)."""
        return self.finish_reason == "length" and not self.answer_text

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (one JSONL row)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        """Build a Trace from a JSONL row; unknown keys go to ``meta``."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names and not k.startswith("_")}
        meta = dict(kw.pop("meta", None) or {})
        meta.update(extra)
        kw["item_id"] = str(kw["item_id"])
        return cls(meta=meta, **kw)


def split_reasoning(completion: str, *, prompt_opens_think: bool = False,
                    finish_reason: str | None = None) -> tuple[str, str, bool]:
    """Return ``(reasoning, answer, closed)`` for a completion.

    ``closed`` says whether ``</think>`` was found. Without it, a length-truncated completion
    (``finish_reason == "length"``) or one that opened ``<think>`` (itself or in the prompt)
    is all reasoning; otherwise the model did not reason and the whole text is the answer.
    """
    text = completion
    opened = prompt_opens_think
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        text = stripped[len(THINK_OPEN):]
        opened = True
    idx = text.find(THINK_CLOSE)
    if idx >= 0:
        return text[:idx].strip(), text[idx + len(THINK_CLOSE):].strip(), True
    if opened or finish_reason == "length":
        return text.strip(), "", False
    return "", text.strip(), False


def read_traces(path: str | Path) -> list[Trace]:
    """Return the traces in a JSONL file (a partial last line from a crash is ignored)."""
    rows = read_jsonl(path, tolerate_partial_last=True)
    out = []
    for r in rows:
        for col in ("item_id", "model"):
            if r.get(col) in (None, ""):
                raise InputError(f"missing '{col}'", file=path, row=r["_row"],
                                 fix="every trace row needs item_id and model")
        out.append(Trace.from_dict(r))
    return out


def append_traces(path: str | Path, traces: list[Trace]) -> None:
    """Append traces to a JSONL file as whole, flushed lines."""
    append_jsonl(path, [t.to_dict() for t in traces])


def traces_frame(traces: list[Trace]) -> pd.DataFrame:
    """Return one row per trace (``meta`` left out)."""
    rows = []
    for t in traces:
        d = t.to_dict()
        d.pop("meta", None)
        rows.append(d)
    return pd.DataFrame(rows)
