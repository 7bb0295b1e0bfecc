"""The report's rendering: blocks -> Markdown (figures linked) and self-contained HTML.

A block is ``("h", level, text)``, ``("p", text)``, ``("table", DataFrame)`` or
``("fig", png path, caption)``; :mod:`experiments.report` builds them from a run folder.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

Block = tuple  # ("h", level, text) | ("p", text) | ("table", df) | ("fig", path, caption)


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
            parts.append(_md_table(b[1]) if len(b[1]) else "_(empty table)_")
        elif b[0] == "fig":
            rel = b[1].relative_to(run).as_posix()
            pdf = b[1].with_suffix(".pdf")
            extra = f" ([PDF]({pdf.relative_to(run).as_posix()}))" if pdf.exists() else ""
            parts.append(f"![{b[2]}]({rel})\n\n*{b[2]}*{extra}")
    return "\n\n".join(parts) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;font-size:13px;margin:.6em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;color:#555}h1,h2{border-bottom:1px solid #ddd}"""


def _inline(text: str) -> str:
    s = html.escape(text)
    while s.count("**") >= 2:
        s = s.replace("**", "<b>", 1).replace("**", "</b>", 1)
    return s


def render_html(blocks: list[Block], title: str) -> str:
    """Return the blocks as one self-contained HTML page (figures embedded as base64 PNG)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b[0] == "h":
            parts.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            parts.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            df = b[1]
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row)
                           + "</tr>" for row in df.itertuples(index=False))
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif b[0] == "fig":
            data = base64.b64encode(b[1].read_bytes()).decode()
            parts.append(f"<figure><img alt='{html.escape(b[2])}' "
                         f"src='data:image/png;base64,{data}'><figcaption>"
                         f"{html.escape(b[2])}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
