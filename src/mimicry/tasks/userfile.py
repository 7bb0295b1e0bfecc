"""User items files (CSV or JSONL) -> :class:`TaskSuite`, and suites -> JSONL.

Schema (one row per item; see docs/tasks.md):

=====================  ========  ===========================================================
column                 required  meaning
=====================  ========  ===========================================================
``item_id``            yes       unique id (string)
``task``               yes       task name; alignment correlates within a task
``human_rt_ms``        one of    median RT of correct trials, milliseconds > 0
``human_accuracy``     one of    proportion correct in [0, 1]
``prompt``             no        the problem text (needed only to generate)
``answer``             no        gold answer; several: ``a|b`` in CSV, a JSON list in JSONL
``human_n``            no        trials behind the norm (integer >= 0)
``human_reliability``  no        split-half reliability of the task's norm, in [-1, 1]
``meta``               no        JSONL only: an object merged into ``Item.meta``
anything else          no        copied into ``Item.meta``
=====================  ========  ===========================================================
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_path, json_dumps, read_table
from .items import HumanNorms, Item, TaskSuite

REQUIRED = ("item_id", "task")
NORM_COLUMNS = ("human_rt_ms", "human_accuracy")
KNOWN = {"item_id", "task", "prompt", "answer", "human_rt_ms", "human_accuracy", "human_n",
         "human_reliability", "meta", "_row"}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (
        isinstance(v, float) and math.isnan(v))


def _number(v: Any, col: str, path: Path, row: int, fix: str) -> float:
    if isinstance(v, bool):
        raise InputError(f"{col} is {v!r}", file=path, row=row, fix=fix)
    try:
        x = float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        raise InputError(f"{col} is {v!r}", file=path, row=row, fix=fix) from None
    if not math.isfinite(x):
        raise InputError(f"{col} is {v!r}", file=path, row=row, fix=fix)
    return x


def _answer(v: Any, is_csv: bool, path: Path, row: int) -> str | tuple[str, ...] | None:
    if _blank(v):
        return None
    if isinstance(v, list):
        if not all(isinstance(a, str | int | float) and not isinstance(a, bool) for a in v):
            raise InputError("answer list holds non-strings", file=path, row=row,
                             fix='use a list of strings, e.g. ["north", "north-east"]')
        return tuple(str(a) for a in v)
    if isinstance(v, dict | bool):
        raise InputError(f"answer is {v!r}", file=path, row=row,
                         fix="use a string or a list of strings")
    s = str(v)
    if is_csv and "|" in s:
        return tuple(a.strip() for a in s.split("|") if a.strip())
    return s.strip() if is_csv else s


def _check_columns(rows: list[dict], path: Path, is_csv: bool) -> None:
    if is_csv:
        cols = set(rows[0]) if rows else set()
        for c in REQUIRED:
            if c not in cols:
                raise InputError(f"missing column '{c}'", file=path, row=1,
                                 fix=f"add a '{c}' column (required: item_id, task, and "
                                     "human_rt_ms or human_accuracy)")
        if not cols & set(NORM_COLUMNS):
            raise InputError("missing column 'human_rt_ms' or 'human_accuracy'", file=path,
                             row=1, fix="add human norms: median RT of correct trials in ms, "
                                        "or proportion correct in [0, 1]")


def item_from_row(r: dict, path: Path, is_csv: bool) -> Item:
    """Return one :class:`Item` from a raw row dict (``_row`` = its line number)."""
    row = r.get("_row")
    for c in REQUIRED:
        if c not in r:
            raise InputError(f"missing column '{c}'", file=path, row=row,
                             fix=f"every row needs '{c}'")
        if _blank(r[c]):
            raise InputError(f"{c} is empty", file=path, row=row, fix=f"give every row a {c}")
    rt = acc = n = rel = None
    if not _blank(r.get("human_rt_ms")):
        rt = _number(r["human_rt_ms"], "human_rt_ms", path, row, "expected milliseconds > 0")
        if rt <= 0:
            raise InputError(f"human_rt_ms is {r['human_rt_ms']!r}", file=path, row=row,
                             fix="expected milliseconds > 0")
    if not _blank(r.get("human_accuracy")):
        acc = _number(r["human_accuracy"], "human_accuracy", path, row,
                      "expected a proportion in [0, 1]")
        if not 0.0 <= acc <= 1.0:
            raise InputError(f"human_accuracy is {r['human_accuracy']!r}", file=path, row=row,
                             fix="expected a proportion in [0, 1] (not a percentage)")
    if rt is None and acc is None:
        raise InputError("no human norm (human_rt_ms and human_accuracy both empty)", file=path,
                         row=row, fix="give human_rt_ms (ms > 0) or human_accuracy in [0, 1]")
    if not _blank(r.get("human_n")):
        x = _number(r["human_n"], "human_n", path, row, "expected a whole number >= 0")
        if x < 0 or x != int(x):
            raise InputError(f"human_n is {r['human_n']!r}", file=path, row=row,
                             fix="expected a whole number >= 0")
        n = int(x)
    if not _blank(r.get("human_reliability")):
        rel = _number(r["human_reliability"], "human_reliability", path, row,
                      "expected a number in [-1, 1]")
        if not -1.0 <= rel <= 1.0:
            raise InputError(f"human_reliability is {r['human_reliability']!r}", file=path,
                             row=row, fix="expected a number in [-1, 1]")
    meta: dict[str, Any] = {}
    if "meta" in r and not _blank(r["meta"]):
        m = r["meta"]
        if is_csv:
            try:
                m = json.loads(m)
            except json.JSONDecodeError:
                m = None
        if not isinstance(m, dict):
            raise InputError("meta is not a JSON object", file=path, row=row,
                             fix='write meta as {"key": value} or use plain extra columns')
        meta.update(m)
    for k, v in r.items():
        if k not in KNOWN and k and not (is_csv and _blank(v)):
            meta[k] = v
    prompt = r.get("prompt")
    return Item(item_id=str(r["item_id"]).strip() if is_csv else str(r["item_id"]),
                task=str(r["task"]).strip() if is_csv else str(r["task"]),
                prompt=None if _blank(prompt) else str(prompt),
                answer=_answer(r.get("answer"), is_csv, path, row),
                human=HumanNorms(rt_ms=rt, accuracy=acc, n=n, reliability=rel), meta=meta)


def load_items_file(path: str | Path) -> TaskSuite:
    """Return the suite in a user CSV/JSONL items file (name = file stem); errors are one line."""
    path = Path(path)
    rows = read_table(path)  # file missing / empty / non-UTF-8 / bad JSON -> InputError
    is_csv = path.suffix.lower() not in (".jsonl", ".json", ".ndjson")
    if not rows:
        raise InputError("no item rows", file=path, fix="add one row per item below the header")
    _check_columns(rows, path, is_csv)
    items: list[Item] = []
    seen: dict[str, int] = {}
    for r in rows:
        it = item_from_row(r, path, is_csv)
        if it.item_id in seen:
            raise InputError(f"duplicate item_id {it.item_id!r} (rows {seen[it.item_id]} and "
                             f"{r['_row']})", file=path, row=r["_row"],
                             fix="item ids must be unique; rename or remove one")
        seen[it.item_id] = r["_row"]
        items.append(it)
    reliability: dict[str, float | None] = {}
    for it in items:
        if reliability.get(it.task) is None:
            reliability[it.task] = it.human.reliability
    return TaskSuite(path.stem, items, source=str(path), reliability=reliability,
                     info={"norm_source": f"user file {path.name}"})


def suite_to_jsonl(suite: TaskSuite) -> str:
    """Return the suite as JSON lines in the items-file schema (one item per line)."""
    return "".join(json_dumps(it.to_dict(), ensure_ascii=False) + "\n"
                   for it in suite)


def export_suite(suite: TaskSuite, path: str | Path) -> Path:
    """Write ``suite`` to ``path`` as JSONL in the items-file schema (atomically); return it."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        raise InputError(f"cannot export to '{path.suffix}'", file=path,
                         fix="export writes JSON lines: use a .jsonl file name")
    with atomic_path(path) as tmp:
        tmp.write_text(suite_to_jsonl(suite), encoding="utf-8")
    return path
