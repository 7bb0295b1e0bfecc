"""The report's rendering: blocks -> Markdown (figures linked) and self-contained HTML.

A block is ``("h", level, text)``, ``("p", text)``, ``("table", DataFrame[, csv path])`` or
``("fig", png path, caption)``; :mod:`experiments.report` builds them from a run folder.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

Block = tuple  # ("h", level, text) | ("p", text) | ("table", df[, csv]) | ("fig", path, caption)
MAX_ROWS = 40


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.3f}"
    return str(v)


_COUNT = re.compile(r"^(n|k|n_.*|.*_n|.*_only|.*layer.*|head|bin|items|.*tokens.*|.*count.*|"
                    r"forced_cut|total|row|rows)$")


def _ints(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with count-like float columns holding whole numbers as integers."""
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if col.dtype.kind == "f" and _COUNT.match(str(c)):
            v = col.dropna()
            if len(v) and (v == v.round()).all():
                out[c] = col.astype("Int64")
    return out


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [_fmt(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(blocks: list[Block], run: Path) -> str:
    """Return the blocks as Markdown (figures as relative PNG links, PDF beside)."""
    parts = []
    for b in blocks:
        if b[0] == "h":
            parts.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            parts.append(b[1])
        elif b[0] == "table":
            df, csv = _ints(b[1]), (b[2] if len(b) > 2 else None)
            link = f"[{csv.relative_to(run).as_posix()}]({csv.relative_to(run).as_posix()})" \
                if csv is not None and csv.exists() else None
            if len(df) > MAX_ROWS and link:
                parts.append(_md_table(df.head(MAX_ROWS)) + f"\n\nFirst {MAX_ROWS} of {len(df)} "
                             f"rows; the full table: {link}.")
            else:
                parts.append(_md_table(df) if len(df) else "_(empty table)_")
        elif b[0] == "fig":
            rel = b[1].relative_to(run).as_posix()
            pdf = b[1].with_suffix(".pdf")
            extra = f" ([PDF]({pdf.relative_to(run).as_posix()}))" if pdf.exists() else ""
            parts.append(f"![{b[2]}]({rel})\n\n*{b[2]}*{extra}")
    return "\n\n".join(parts) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:min(96vw,1600px);margin:2em auto;
padding:0 1em;color:#222}p{max-width:75em;line-height:1.45}
.tw{overflow-x:auto;max-width:100%;margin:.6em 0}.tw.long{max-height:32em;overflow-y:auto}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0}
td:first-child,th:first-child{text-align:left}
td.wrap{white-space:normal;min-width:28em;text-align:left}.csv{font-size:12px;color:#555}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee;cursor:zoom-in}
figcaption{font-size:13px;color:#555}h1,h2{border-bottom:1px solid #ddd}"""


def _inline(text: str) -> str:
    s = html.escape(text)
    while s.count("**") >= 2:
        s = s.replace("**", "<b>", 1).replace("**", "</b>", 1)
    return s


def render_html(blocks: list[Block], title: str, run: Path | None = None) -> str:
    """Return the blocks as one self-contained HTML page (figures embedded as base64 PNG).

    Wide tables scroll sideways, long ones scroll inside a box and link their CSV; a click on
    a figure opens the PNG beside the report at full size (``run``: the report's folder).
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b[0] == "h":
            parts.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            parts.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            df = _ints(b[1])
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
            body = "".join("<tr>" + "".join(_td(_fmt(v)) for v in row)
                           + "</tr>" for row in df.itertuples(index=False))
            long = " long" if len(df) > MAX_ROWS else ""
            parts.append(f"<div class='tw{long}'><table><thead><tr>{head}</tr></thead>"
                         f"<tbody>{body}</tbody></table></div>")
            csv = b[2] if len(b) > 2 else None
            if csv is not None and csv.exists():
                rel = _rel(csv, run)
                parts.append(f"<p class='csv'>{len(df)} rows; as CSV: <a href='{rel}'>"
                             f"{html.escape(rel)}</a></p>")
        elif b[0] == "fig":
            data = base64.b64encode(b[1].read_bytes()).decode()
            img = f"<img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'>"
            parts.append(f"<figure><a href='{_rel(b[1], run)}' target='_blank' "
                         f"title='open full size'>{img}</a><figcaption>{html.escape(b[2])} "
                         f"(click to open full size)</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _td(text: str) -> str:
    wrap = " class='wrap'" if len(text) > 60 else ""  # long prose wraps; numbers never do
    return f"<td{wrap}>{html.escape(text)}</td>"


def _rel(path: Path, run: Path | None) -> str:
    return html.escape(Path(os.path.relpath(path, run)).as_posix() if run else path.as_posix())
