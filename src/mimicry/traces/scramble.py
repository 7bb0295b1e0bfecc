"""Format-preserving content scrambler for reasoning traces (the ablation's third condition).

``scramble_traces(traces, mode="within"|"across", seed=0)`` returns copies of the traces whose
reasoning keeps its form — ``<think>``/``</think>`` and other ``<tags>``, line breaks and
indentation, step markers (``Step 3:``, ``2.``, ``-``), the number of words per line, which
positions hold numbers — while its content no longer computes anything:

- ``within``: the trace's own tokens are shuffled among positions of the same *shape*
  (letters -> ``a``, digit runs -> ``9``: words with words, ``12,`` with ``40,``, signed
  operations ``+4`` with ``-7``), so the bag of tokens is kept and the count barely moves;
- ``across``: every token is replaced by one of the same shape and character length drawn
  from the pooled traces of *all* items (item-specific content is gone; the length in
  characters is kept exactly and the token count approximately).

Inline step markers (``s1``, ``q2:``, ``#3``) stay in place, like line-initial ones.

Randomness is per item: ``default_rng([seed, crc32(item_id)])``, so results do not depend on
file order. Answers are left alone unless ``fields`` includes ``"answer_text"``.
Capture reads any traces file, so: scramble, then ``mimicry capture --traces scrambled.jsonl``.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .trace import Trace

MARKER = re.compile(r"^(\s*(?:(?:step|Step|STEP)\s*\d+\s*[:.)]?|\d+\s*[.):]|[-*•>]|#+)\s+)")
TAG = re.compile(r"^</?[A-Za-z_][\w-]*>$")
INLINE_MARKER = re.compile(r"^(?:[A-Za-z]{1,4}\d+[:.)]?|#\d+[:.)]?)$")   # s1, q2:, Step3, #4
PIECE = re.compile(r"(\s+)")


def _kind(tok: str) -> str:
    """Return the token's shape: letters -> a, digits -> 9, runs collapsed (``+4`` -> ``+9``)."""
    shape = re.sub(r"[^\W\d_]+", "a", re.sub(r"\d+", "9", tok))
    return re.sub(r"a+", "a", shape)


def _slots(text: str) -> tuple[list[list[str]], list[tuple[int, int]]]:
    """Split text into per-line pieces; return (pieces per line, [(line, piece)] content slots)."""
    lines, slots = [], []
    for li, line in enumerate(text.split("\n")):
        m = MARKER.match(line)
        head = m.group(1) if m else ""
        pieces = [head] + [p for p in PIECE.split(line[len(head):]) if p != ""]
        for pi, p in enumerate(pieces):
            if pi > 0 and not p.isspace() and not TAG.match(p) and not INLINE_MARKER.match(p):
                slots.append((li, pi))
        lines.append(pieces)
    return lines, slots


def _join(lines: list[list[str]]) -> str:
    return "\n".join("".join(p) for p in lines)


def content_tokens(text: str) -> list[str]:
    """Return the content tokens (what the scrambler moves) of a text, in order."""
    lines, slots = _slots(text)
    return [lines[li][pi] for li, pi in slots]


def scramble_text(text: str, rng: np.random.Generator, *, mode: str = "within",
                  pool: dict[tuple[str, int], list[str]] | None = None) -> str:
    """Return ``text`` with its content scrambled and its format kept (see module docstring)."""
    if not text:
        return text
    if "</think>" in text:  # a whole completion: the answer after </think> is left alone
        head, sep, tail = text.partition("</think>")
        return scramble_text(head, rng, mode=mode, pool=pool) + sep + tail
    lines, slots = _slots(text)
    if mode == "within":
        by_kind: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for s in slots:
            by_kind[_kind(lines[s[0]][s[1]])].append(s)
        for group in by_kind.values():
            toks = [lines[li][pi] for li, pi in group]
            for (li, pi), j in zip(group, rng.permutation(len(toks))):
                lines[li][pi] = toks[j]
    elif mode == "across":
        if pool is None:
            raise ValueError("mode='across' needs the pooled tokens of all traces")
        lengths = defaultdict(list)
        for k in pool:
            lengths[k[0]].append(k[1])
        for li, pi in slots:
            tok = lines[li][pi]
            kind = _kind(tok)
            avail = lengths.get(kind)
            if not avail:
                continue
            L = min(avail, key=lambda x: (abs(x - len(tok)), x))
            cands = pool[(kind, L)]
            lines[li][pi] = cands[int(rng.integers(len(cands)))]
    else:
        raise InputError(f"unknown scramble mode {mode!r}", fix="use 'within' or 'across'")
    return _join(lines)


def build_pool(texts: list[str]) -> dict[tuple[str, int], list[str]]:
    """Return the pooled content tokens of ``texts`` keyed by (kind, character length)."""
    pool: dict[tuple[str, int], list[str]] = defaultdict(list)
    for t in texts:
        for tok in content_tokens(t or ""):
            pool[(_kind(tok), len(tok))].append(tok)
    return dict(pool)


def scramble_traces(traces: list[Trace], *, mode: str = "within", seed: int = 0,
                    fields: tuple[str, ...] = ("reasoning",), tokenizer: Any = None
                    ) -> list[Trace]:
    """Return scrambled copies of ``traces`` (``meta["scrambled"]`` records mode and seed).

    With a ``tokenizer``, ``reasoning_tokens``/``answer_tokens`` are recounted on the new
    text; otherwise they keep the original counts (the source length).
    """
    pools = {f: build_pool([getattr(t, f) or "" for t in traces]) for f in fields} \
        if mode == "across" else {}
    out = []
    for t in traces:
        rng = np.random.default_rng([seed, zlib.crc32(str(t.item_id).encode())])
        new = {f: scramble_text(getattr(t, f) or "", rng, mode=mode, pool=pools.get(f))
               if getattr(t, f) else getattr(t, f) for f in fields}
        if tokenizer is not None:
            for f, count in (("reasoning", "reasoning_tokens"), ("answer_text", "answer_tokens")):
                if f in new and new[f] is not None:
                    new[count] = len(tokenizer(new[f], add_special_tokens=False)["input_ids"])
        meta = dict(t.meta)
        meta["scrambled"] = {"mode": mode, "seed": seed, "fields": list(fields)}
        out.append(replace(t, parsed_answer=None if "answer_text" in fields else t.parsed_answer,
                           meta=meta, **new))
    return out


def scramble_file(src: str | Path, out: str | Path, *, mode: str = "within", seed: int = 0,
                  fields: tuple[str, ...] = ("reasoning",), tokenizer: Any = None) -> int:
    """Scramble a traces JSONL file into ``out`` (written atomically); return the row count."""
    import json

    from ..io import atomic_path
    from .trace import read_traces

    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise InputError("output would overwrite the input", file=out,
                         fix="choose another --out path")
    traces = read_traces(src)
    if not any(t.reasoning for t in traces):
        raise InputError("no trace has reasoning text to scramble", file=src,
                         fix="scramble traces that contain the reasoning text, not only counts")
    new = scramble_traces(traces, mode=mode, seed=seed, fields=fields, tokenizer=tokenizer)
    with atomic_path(out, suffix=".jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for t in new:
                fh.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")
    return len(new)
