"""Import traces made elsewhere (an API, another toolkit) from CSV or JSONL into trace JSONL.

Minimal rows: ``item_id``, ``model`` (or ``--model``), and ``reasoning_tokens`` — or
``reasoning`` text plus a tokenizer to count it. Optional: ``correct``, ``answer_text``
(scored against the suite when ``correct`` is absent), ``answer_tokens``, ``task``,
``finish_reason``, ``prompt``, ``parsed_answer``, ``seconds``. Every row is validated before
anything is written; the output is written atomically (no partial file on error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_path, json_dumps, read_table
from ..tasks.items import TaskSuite
from ..traces import Trace
from .segments import count_text_tokens

_TRUE = {"true", "1", "yes", "y", "t", "correct"}
_FALSE = {"false", "0", "no", "n", "f", "incorrect", "wrong"}
_KNOWN = {"item_id", "model", "task", "prompt", "reasoning", "answer_text", "parsed_answer",
          "correct", "reasoning_tokens", "answer_tokens", "finish_reason", "backend",
          "seconds", "meta"}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (
        isinstance(v, float) and math.isnan(v))


def _count(v: Any, col: str, file: Path, row: int) -> int:
    """Return a non-negative integer token count parsed from ``v``."""
    bad = InputError(f"{col} is {v!r}", file=file, row=row,
                     fix="expected a whole number of tokens >= 0")
    if isinstance(v, bool):
        raise bad
    try:
        f = float(str(v).strip()) if not isinstance(v, (int, float)) else float(v)
    except ValueError:
        raise bad from None
    if not math.isfinite(f) or f < 0 or f != int(f):
        raise bad
    return int(f)


def _bool(v: Any, file: Path, row: int) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise InputError(f"correct is {v!r}", file=file, row=row,
                     fix="expected true/false (or 1/0, yes/no)")


def import_traces(path: str | Path, out: str | Path | None = None, *,
                  suite: TaskSuite | None = None, tokenizer=None,
                  model: str | None = None, overwrite: bool = False) -> list[Trace]:
    """Return the validated traces of a CSV/JSONL file; write them to ``out`` (atomically).

    ``tokenizer``: a tokenizer object or a name/path; needed when rows give ``reasoning`` text
    instead of ``reasoning_tokens``. ``model`` fills rows without a ``model`` value.
    ``suite``: item ids must be in it; ``task`` comes from it; ``answer_text`` is scored when
    ``correct`` is absent.
    """
    path = Path(path)
    if out is not None and Path(out).exists() and not overwrite:
        raise InputError(f"output '{out}' already exists", fix="choose another --out or "
                         "pass --force to replace it")
    rows = read_table(path)
    if not rows:
        raise InputError("no rows", file=path, fix="expected one trace per row")
    cols = {k for r in rows for k in r if k and not k.startswith("_")}
    _check_columns(cols, path, model, tokenizer)
    tok = tokenizer
    if isinstance(tok, (str, Path)):
        from .openai_backend import load_counting_tokenizer

        tok = load_counting_tokenizer(str(tok))

    traces: list[Trace] = []
    seen: dict[tuple[str, str], int] = {}
    missing: list[tuple[int, str]] = []
    for r in rows:
        traces.append(_row_to_trace(r, path, model, tok, suite, seen, missing))
    if missing:
        ids = ", ".join(f"'{i}' (row {n})" for n, i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"{len(missing)} item_id(s) not in suite '{suite.name}': {ids}{more}",
                         file=path, fix="pass the suite these traces were made on (--tasks)")
    if out is not None:
        with atomic_path(out) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                for t in traces:
                    f.write(json_dumps(t.to_dict(), ensure_ascii=False) + "\n")
    return traces


def _check_columns(cols: set[str], path: Path, model: str | None, tokenizer) -> None:
    if "item_id" not in cols:
        raise InputError("missing column 'item_id'", file=path,
                         fix="every row needs the item_id of the suite item it answers")
    if "model" not in cols and not model:
        raise InputError("missing column 'model'", file=path,
                         fix="add a 'model' column or pass --model NAME")
    if "reasoning_tokens" not in cols:
        if "reasoning" not in cols:
            raise InputError("missing column 'reasoning_tokens' (or 'reasoning' text)",
                             file=path, fix="add reasoning_tokens, or reasoning text plus "
                                            "--tokenizer to count it")
        if tokenizer is None:
            raise InputError("rows give 'reasoning' text but no token counts", file=path,
                             fix="pass --tokenizer NAME_OR_PATH (the model's tokenizer) to "
                                 "count them, or add a reasoning_tokens column")


def _row_to_trace(r: dict, path: Path, model: str | None, tok, suite: TaskSuite | None,
                  seen: dict, missing: list) -> Trace:
    row = r["_row"]
    item_id = "" if _blank(r.get("item_id")) else str(r["item_id"]).strip()
    if not item_id:
        raise InputError("item_id is empty", file=path, row=row, fix="fill in the item_id")
    name = model if _blank(r.get("model")) else str(r["model"]).strip()
    if not name:
        raise InputError("model is empty", file=path, row=row,
                         fix="fill in the model or pass --model NAME")
    key = (name, item_id)
    if key in seen:
        raise InputError(f"duplicate trace for model '{name}', item_id '{item_id}' (first "
                         f"at row {seen[key]})", file=path, row=row,
                         fix="keep one trace per model and item")
    seen[key] = row
    reasoning = None if _blank(r.get("reasoning")) else str(r["reasoning"])
    answer = None if _blank(r.get("answer_text")) else str(r["answer_text"])
    meta: dict[str, Any] = {"imported_from": str(path), "source_row": row}
    if not _blank(r.get("reasoning_tokens")):
        r_tok = _count(r["reasoning_tokens"], "reasoning_tokens", path, row)
        meta["token_count_source"] = "imported"
    elif reasoning is not None or tok is not None:
        if tok is None:
            raise InputError("reasoning_tokens is empty and no tokenizer was given",
                             file=path, row=row, fix="pass --tokenizer or fill the count")
        r_tok = count_text_tokens(tok, reasoning or "")
        meta["token_count_source"] = "local_tokenizer"
    else:
        raise InputError("reasoning_tokens is empty", file=path, row=row,
                         fix="fill in the count (or give reasoning text and --tokenizer)")
    a_tok = None
    if not _blank(r.get("answer_tokens")):
        a_tok = _count(r["answer_tokens"], "answer_tokens", path, row)
    elif answer is not None and tok is not None:
        a_tok = count_text_tokens(tok, answer)
    task = None if _blank(r.get("task")) else str(r["task"])
    item = suite.get(item_id) if suite is not None else None
    if suite is not None and item is None:
        missing.append((row, item_id))
    if item is not None:
        task = item.task
    correct = None if _blank(r.get("correct")) else _bool(r["correct"], path, row)
    parsed = None if _blank(r.get("parsed_answer")) else str(r["parsed_answer"])
    if correct is None and item is not None and answer is not None:
        from ..tasks import scoring

        parsed, correct = scoring.score_answer(item, answer)
        meta["scored_by"] = "mimicry"
    finish = None if _blank(r.get("finish_reason")) else str(r["finish_reason"]).strip()
    seconds = None
    if not _blank(r.get("seconds")):
        try:
            seconds = float(r["seconds"])
        except (TypeError, ValueError):
            raise InputError(f"seconds is {r['seconds']!r}", file=path, row=row,
                             fix="expected a number of seconds") from None
    extra = r.get("meta") if isinstance(r.get("meta"), dict) else {}
    meta.update({k: v for k, v in r.items() if k not in _KNOWN and not k.startswith("_")})
    meta.update(extra)
    return Trace(item_id=item_id, model=name, task=task,
                 prompt=None if _blank(r.get("prompt")) else str(r["prompt"]),
                 reasoning=reasoning, answer_text=answer, parsed_answer=parsed,
                 correct=correct, reasoning_tokens=r_tok, answer_tokens=a_tok,
                 finish_reason=finish,
                 backend=None if _blank(r.get("backend")) else str(r["backend"]),
                 seconds=seconds, meta=meta)


def imported_summary(traces: Sequence[Trace]) -> str:
    """Return a one-line description of imported traces (models, items, scored)."""
    models = sorted({t.model for t in traces})
    n_correct = sum(t.correct is not None for t in traces)
    return (f"{len(traces)} traces, {len(models)} model(s) ({', '.join(models[:5])}), "
            f"{n_correct} with correctness")
