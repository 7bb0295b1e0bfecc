"""File helpers shared by every stage: atomic writes, JSONL, and table reading with clear errors.

Nothing half-written is ever left behind: outputs are written to a temporary sibling and
renamed into place only when complete (``atomic_path``). Appends to JSONL files write whole
lines and flush, so a crash leaves at most one partial last line, which readers skip with a
warning count (``read_jsonl(..., tolerate_partial_last=True)``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=str(path.parent)
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8); return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented strict JSON to ``path`` atomically; return the path."""
    return atomic_write_text(path, json_dumps(obj, indent=2) + "\n")


def json_ready(obj: Any) -> Any:
    """Return ``obj`` as plain JSON values: the one JSON sanitiser of the package.

    NaN/inf -> None, numpy scalars and arrays -> Python numbers and lists, tuples -> lists,
    mapping keys -> str, paths and any other object -> str.
    """
    import numpy as np

    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def json_dumps(obj: Any, **kw: Any) -> str:
    """Return strict JSON text of ``obj`` (through :func:`json_ready`; keyword args as json.dumps)."""
    return json.dumps(json_ready(obj), allow_nan=False, **kw)


def read_text_checked(path: str | Path) -> str:
    """Return the file's text; raise :class:`InputError` if missing, empty or not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=path, fix="check the path")
    if path.is_dir():
        raise InputError("is a directory, expected a file", file=path)
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError("file is empty", file=path, fix="expected a header or JSON rows")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 at byte {e.start}", file=path, row=line,
            fix="re-save the file as UTF-8",
        ) from None


def read_jsonl(path: str | Path, *, tolerate_partial_last: bool = False) -> list[dict]:
    """Return the rows of a JSON-lines file as dicts, 1-based row numbers in errors.

    With ``tolerate_partial_last`` a truncated final line (left by a crash mid-append) is
    dropped instead of raising.
    """
    text = read_text_checked(path)
    lines = text.splitlines()
    rows: list[dict] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if tolerate_partial_last and i == len(lines) and not text.endswith("\n"):
                break
            raise InputError(f"not valid JSON ({e.msg})", file=path, row=i,
                             fix="one JSON object per line") from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", file=path,
                             row=i, fix="one JSON object per line")
        obj["_row"] = i
        rows.append(obj)
    return rows


def read_csv_rows(path: str | Path) -> list[dict]:
    """Return the rows of a CSV file as dicts (``_row`` = 1-based line number incl. header)."""
    text = read_text_checked(path)
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames:
        raise InputError("no header row", file=path, fix="first line must name the columns")
    names = [(n or "").strip() for n in reader.fieldnames]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"column(s) {dup} appear twice in the header", file=path, row=1,
                         fix="give every column a distinct name")
    rows = []
    for i, row in enumerate(reader, start=2):
        if None in row:  # more fields than header columns
            raise InputError(f"{len(names) + len(row[None])} fields but the header has "
                             f"{len(names)} columns", file=path, row=i,
                             fix="quote values that contain commas, or add the column")
        row = {k.strip() if k else k: v for k, v in row.items()}
        row["_row"] = i
        rows.append(row)
    return rows


def read_table(path: str | Path) -> list[dict]:
    """Return rows of a ``.csv``/``.tsv`` or ``.jsonl``/``.json`` file as dicts with ``_row``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv_rows(path)
    raise InputError(f"unknown file type '{suffix}'", file=path, fix="use .csv or .jsonl")


def append_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Append rows as whole JSON lines, flushed and fsynced (crash leaves whole lines only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json_dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with open(path, "a", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_csv_if_exists(path: str | Path):
    """Return the CSV at ``path`` as a DataFrame, an empty one if it has no rows, None if absent."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
