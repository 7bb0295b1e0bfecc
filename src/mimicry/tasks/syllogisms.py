"""The ``syllogisms`` suite (CCOBRA Ragni2016): the 64 categorical syllogisms.

Logic engine (:func:`valid_conclusions`): the three terms a (end term of premise 1), b (middle)
and c (end term of premise 2) split the universe into 8 Venn regions; a *model* says which
regions are non-empty (256 models). With existential import, as CCOBRA assumes, every term is
non-empty. A conclusion (``All/Some/No/Some not`` x ``a-c``/``c-a``) is valid iff it is true in
every model where both premises are true; "NVC" (no valid conclusion) when none is.

Syllogism ids follow CCOBRA: mood letters (A = All, I = Some, E = No, O = Some not) of the two
premises, then the figure: 1 = a-b/b-c, 2 = b-a/c-b, 3 = a-b/c-b, 4 = b-a/b-c (e.g. ``AA1``).
Item ids are ``syl-AA1``...; gold answers are canonical CCOBRA strings with the item's terms
(``"Some;managers;clerks"``), a tuple of all valid ones, or ``("NVC",)``.

Norm: ``accuracy`` = proportion of the 139 participants whose response is logically valid
(NVC counts as valid only when nothing follows); difficulty = 1 - accuracy; no RT was recorded.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from .items import HumanNorms, Item, TaskSuite
from .norms import RELIABILITY_SEED, RELIABILITY_SPLITS, split_half_reliability
from .scoring import _last_in_segments, golds, register_scorer

DATA = Path(__file__).parent / "data" / "ccobra" / "benchmarks" / "syllogistic" / "data"
RAGNI2016_CSV = DATA / "Ragni2016.csv"
TASK = "syllogisms"
NVC = "NVC"

MOOD = {"All": "A", "Some": "I", "No": "E", "Some not": "O"}
QUANT = {v: k for k, v in MOOD.items()}
_TERM_INDEX = {"a": 0, "b": 1, "c": 2}
# premise term order (subject, predicate) of each figure
FIGURES = {1: (("a", "b"), ("b", "c")), 2: (("b", "a"), ("c", "b")),
           3: (("a", "b"), ("c", "b")), 4: (("b", "a"), ("b", "c"))}
CONCLUSIONS = tuple(f"{m}{o}" for m in "AIEO" for o in ("ac", "ca"))
SYLLOGISMS = tuple(f"{m1}{m2}{f}" for m1 in "AIEO" for m2 in "AIEO" for f in (1, 2, 3, 4))


def _holds(q: str, x: int, y: int, model: tuple[tuple[int, int, int], ...]) -> bool:
    if q == "A":
        return not any(r[x] and not r[y] for r in model)
    if q == "I":
        return any(r[x] and r[y] for r in model)
    if q == "E":
        return not any(r[x] and r[y] for r in model)
    return any(r[x] and not r[y] for r in model)  # O


@cache
def _models(existential_import: bool) -> list[tuple[tuple[int, int, int], ...]]:
    regions = list(itertools.product((0, 1), repeat=3))
    out = []
    for mask in range(1 << 8):
        model = tuple(r for i, r in enumerate(regions) if mask >> i & 1)
        if existential_import and not all(any(r[t] for r in model) for t in range(3)):
            continue
        out.append(model)
    return out


def valid_conclusions(syllogism: str, *, existential_import: bool = True) -> tuple[str, ...]:
    """Return the valid conclusions of e.g. ``"AA1"`` as ``("Aac", "Iac", "Ica")``, or ``()``."""
    m1, m2, fig = syllogism[0], syllogism[1], int(syllogism[2])
    (s1, p1), (s2, p2) = FIGURES[fig]
    models = [m for m in _models(existential_import)
              if _holds(m1, _TERM_INDEX[s1], _TERM_INDEX[p1], m)
              and _holds(m2, _TERM_INDEX[s2], _TERM_INDEX[p2], m)]
    if not models:
        raise ValueError(f"{syllogism}: premises are contradictory")
    out = []
    for concl in CONCLUSIONS:
        q, x, y = concl[0], _TERM_INDEX[concl[1]], _TERM_INDEX[concl[2]]
        if all(_holds(q, x, y, m) for m in models):
            out.append(concl)
    return tuple(out)


def encode_task(task: str) -> tuple[str, dict[str, str]]:
    """Return the syllogism id and its terms from CCOBRA ``"Some;x;y/All;x;z"``.

    ``("IA4", {"a": "y", "b": "x", "c": "z"})``.
    """
    (q1, s1, p1), (q2, s2, p2) = (tuple(x.strip() for x in p.split(";")) for p in task.split("/"))
    if s1 == s2:
        fig, b = 4, s1
    elif p1 == s2:
        fig, b = 1, p1
    elif p1 == p2:
        fig, b = 3, p1
    elif s1 == p2:
        fig, b = 2, s1
    else:
        raise ValueError(f"premises of {task!r} share no middle term")
    a = p1 if s1 == b else s1
    c = p2 if s2 == b else s2
    return f"{MOOD[q1]}{MOOD[q2]}{fig}", {"a": a, "b": b, "c": c}


def to_abstract(response: str, terms: dict[str, str]) -> str:
    """Return ``"Iac"``/``"Oca"``/``"NVC"`` from a CCOBRA response in the item's terms."""
    if response.strip() == NVC:
        return NVC
    q, x, y = (s.strip() for s in response.split(";"))
    inv = {v: k for k, v in terms.items()}
    return f"{MOOD[q]}{inv[x]}{inv[y]}"


def to_canonical(abstract: str, terms: dict[str, str]) -> str:
    """Return CCOBRA form ``"Some not;managers;clerks"`` from ``"Oac"`` and the item's terms."""
    if abstract == NVC:
        return NVC
    return f"{QUANT[abstract[0]]};{terms[abstract[1]]};{terms[abstract[2]]}"


def sentence(q: str, x: str, y: str) -> str:
    """Return the English sentence of a quantified statement (``q`` in All/Some/No/Some not)."""
    if q == "Some not":
        return f"Some {x} are not {y}"
    return f"{q} {x} are {y}"


def render_prompt(task: str, terms: dict[str, str]) -> str:
    """Return the problem in words, listing the nine allowed answers."""
    prem = [tuple(x.strip() for x in p.split(";")) for p in task.split("/")]
    a, c = terms["a"], terms["c"]
    options = [sentence(QUANT[m], *((a, c) if o == "ac" else (c, a)))
               for m in "AIEO" for o in ("ac", "ca")]
    opts = ", ".join(f'"{o}"' for o in options)
    return (f"Premise 1: {sentence(*prem[0])}. Premise 2: {sentence(*prem[1])}. "
            f"What, if anything, follows necessarily about {a} and {c}? Answer with exactly "
            f'one of: {opts}, or "No valid conclusion".')


def build_syllogisms_suite(path: Path = RAGNI2016_CSV, *, seed: int = RELIABILITY_SEED,
                           n_splits: int = RELIABILITY_SPLITS) -> TaskSuite:
    """Return the ``syllogisms`` suite: 64 items, accuracy norms, engine-computed gold."""
    df = pd.read_csv(path)
    enc = [encode_task(t) for t in df["task"]]
    df["syllogism"] = [e[0] for e in enc]
    df["abstract"] = [to_abstract(r, e[1]) for r, e in zip(df["response"], enc)]
    valid = {s: valid_conclusions(s) for s in SYLLOGISMS}
    df["correct"] = [(a in valid[s]) if valid[s] else (a == NVC)
                     for s, a in zip(df["syllogism"], df["abstract"])]
    df["item"] = "syl-" + df["syllogism"]
    rel = split_half_reliability(df, measure="accuracy", participant="id", item="item",
                                 correct="correct", n_splits=n_splits, seed=seed)
    rel_value = None if np.isnan(rel.value) else rel.value
    items = []
    for syl in SYLLOGISMS:
        g = df[df["syllogism"] == syl]
        if g.empty:
            raise ValueError(f"{path}: no trials for syllogism {syl}")
        counts = Counter(g["task"])
        top = max(counts.values())
        wording = next(t for t in g["task"] if counts[t] == top)
        _, terms = encode_task(wording)
        gold = tuple(to_canonical(v, terms) for v in valid[syl]) or (NVC,)
        resp = g["abstract"].value_counts()
        items.append(Item(
            item_id=f"syl-{syl}", task=TASK, prompt=render_prompt(wording, terms), answer=gold,
            human=HumanNorms(rt_ms=None, accuracy=float(g["correct"].mean()), n=int(len(g)),
                             reliability=rel_value),
            meta={"syllogism": syl, "mood": syl[:2], "figure": int(syl[2]),
                  "premises": wording.split("/"), "n_premises": 2, "terms": terms,
                  "valid": list(valid[syl]) or [NVC],
                  "responses": {k: int(v) for k, v in resp.items()},
                  "scorer": "syllogism", "reliability_seed": seed}))
    info = {
        "norm_source": "CCOBRA Ragni2016",
        "accuracy_definition": "proportion of responses that are logically valid "
                               "(existential import); NVC valid only when nothing follows",
        "reliability_measure": "proportion valid, Pearson over items",
        "reliability_seed": seed, "reliability_splits": rel.n_splits,
        "split_half_r": rel.split_half_r, "split_half_r_sd": rel.sd_r,
        "n_participants": rel.n_participants, "excluded": [],
    }
    return TaskSuite("syllogisms", items, source=str(path), reliability={TASK: rel_value},
                     info=info)


# --------------------------------------------------------------------------- scoring
_NVC_RE = re.compile(r"\bno\s+valid\s+conclusion\b|\bnothing\s+(?:valid\s+)?follows\b|"
                     r"\bno\s+(?:valid\s+|definite\s+|logical\s+)?conclusion\s+"
                     r"(?:follows|can\s+be\s+drawn)\b|\bNVC\b", re.IGNORECASE)
_CANON_RE = re.compile(r"\b(All|Some not|Some|No);\s*([A-Za-z][\w-]*);\s*([A-Za-z][\w-]*)")


def _term_pattern(term: str) -> str:
    stem = term[:-1] if term.endswith("s") else term
    return re.escape(stem) + r"s?"


def parse_conclusions(text: str, terms: dict[str, str]) -> list[str]:
    """Return every conclusion mentioned in ``text`` in CCOBRA form, in order of position."""
    names = list(terms.values())
    # two copies of the term alternation with distinct group names (subject x, predicate y)
    x_alt = "|".join(f"(?P<x{i}>{_term_pattern(t)})" for i, t in enumerate(names))
    y_alt = "|".join(f"(?P<y{i}>{_term_pattern(t)})" for i, t in enumerate(names))
    pat = re.compile(rf"\b(?P<q>all|some|no)\s+(?:of\s+the\s+|the\s+)?(?:{x_alt})\s+"
                     rf"(?:(?P<neg>are\s+not|is\s+not|aren['’]t|isn['’]t)|are|is)\s+"
                     rf"(?:an?\s+)?(?:{y_alt})\b", re.IGNORECASE)
    found: list[tuple[int, str]] = []
    for m in pat.finditer(text):
        q = m.group("q").lower()
        x = next(names[i] for i in range(len(names)) if m.group(f"x{i}"))
        y = next(names[i] for i in range(len(names)) if m.group(f"y{i}"))
        if m.group("neg"):
            if q != "some":
                continue  # "All x are not y" / "No x are not y": ambiguous English
            quant = "Some not"
        else:
            quant = {"all": "All", "some": "Some", "no": "No"}[q]
        found.append((m.start(), f"{quant};{x};{y}"))
    for m in _CANON_RE.finditer(text):
        if m.group(2) in names and m.group(3) in names:
            found.append((m.start(), f"{m.group(1)};{m.group(2)};{m.group(3)}"))
    for m in _NVC_RE.finditer(text):
        found.append((m.start(), NVC))
    return [s for _, s in sorted(found, key=lambda t: t[0])]


def score_syllogism(item: Item, answer_text: str) -> tuple[str | None, bool]:
    """Return the last conclusion in the answer (CCOBRA form) and whether it is valid."""
    terms = item.meta.get("terms")
    if not isinstance(terms, dict):
        return None, False
    got = _last_in_segments(answer_text, lambda s: parse_conclusions(s, terms))
    if got is None:
        return None, False
    return got, got in set(golds(item))


register_scorer("syllogism", score_syllogism)
register_scorer("syllogisms", score_syllogism)
