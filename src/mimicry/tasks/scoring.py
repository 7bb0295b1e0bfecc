"""Answer scoring per task, without ``eval``: extract, normalise, compare with the gold answer.

``score_answer(item, answer_text)`` takes the *answer segment* (the text after ``</think>``,
split off by the caller; the whole completion for models that do not reason) and returns
``(parsed_answer, correct)``; ``parsed_answer`` is ``None`` when nothing parseable was found,
and then ``correct`` is ``False``.

Where to look: the last ``\\boxed{...}``, else the sentence after the last "answer is" /
"answer:" (then all the text after it), else the last ``**bold**`` span, else the whole text —
the first of these that holds a parseable answer wins, and inside it the LAST mention counts
("not north ... south" -> south).

Scorers are looked up by ``item.task``, then by ``item.meta["scorer"]`` (so a user file can say
``scorer=direction`` / ``truth`` / ``syllogism`` for its own tasks), else the generic
normalised exact match against the gold string (or any of a tuple). Add scorers with
:func:`register_scorer`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator

from .items import Item

Scorer = Callable[[Item, str], "tuple[str | None, bool]"]
_SCORERS: dict[str, Scorer] = {}

DIRECTIONS = ("north", "south", "east", "west", "north-east", "north-west", "south-east",
              "south-west")
NVC = "NVC"


# Called when a task has no scorer yet; the registry adds the loading of its plugin modules
# here (which may register scorers), so that scoring never imports the registry.
_ON_UNKNOWN_TASK: list[Callable[[], None]] = []
# Modules that register scorers when imported (by name, so that scoring imports none of them:
# the syllogisms module imports scoring's helpers); loaded the first time a task is unknown.
SCORER_MODULES = ["mimicry.tasks.syllogisms", "mimicry.organism.task"]
_scorer_modules_loaded = False


def _load_scorer_modules() -> None:
    """Import :data:`SCORER_MODULES` once; a module with ``TASK`` + ``score_answer`` registers."""
    global _scorer_modules_loaded
    if _scorer_modules_loaded:
        return
    _scorer_modules_loaded = True
    for modname in SCORER_MODULES:
        mod = import_optional(modname)
        if mod is not None:
            register_module_scorer(mod)


def import_optional(modname: str):
    """Return the imported module, or None when it (or its package) is not installed."""
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name is not None and modname.startswith(e.name):
            return None
        raise


def register_module_scorer(mod) -> None:
    """Register ``mod.score_answer`` for ``mod.TASK`` when the module defines both and the
    task has no scorer yet."""
    task, fn = getattr(mod, "TASK", None), getattr(mod, "score_answer", None)
    if isinstance(task, str) and task not in _SCORERS and callable(fn):
        register_scorer(task, fn)


def register_scorer(task: str, fn: Scorer) -> None:
    """Register ``fn(item, answer_text) -> (parsed_answer | None, correct)`` for a task name."""
    _SCORERS[task] = fn


def get_scorer(item: Item) -> Scorer:
    """Return the scorer for an item: by task, by ``meta['scorer']``, else generic exact match."""
    if item.task not in _SCORERS:
        for hook in _ON_UNKNOWN_TASK:  # plugins may register scorers for their tasks
            hook()
        _load_scorer_modules()
    fn = _SCORERS.get(item.task)
    if fn is None and isinstance(item.meta.get("scorer"), str):
        fn = _SCORERS.get(item.meta["scorer"])
    return fn or score_exact


def score_answer(item: Item, answer_text: str | None) -> tuple[str | None, bool]:
    """Return ``(parsed_answer, correct)``; ``parsed_answer`` is None when unparseable."""
    if not answer_text or not answer_text.strip():
        return None, False
    return get_scorer(item)(item, answer_text)


def golds(item: Item) -> tuple[str, ...]:
    """Return the item's acceptable answers as a tuple (empty when it has none)."""
    if item.answer is None:
        return ()
    return item.answer if isinstance(item.answer, tuple) else (item.answer,)


# --------------------------------------------------------------------------- segments
_BOXED = re.compile(r"\\boxed\s*\{")
_ANSWER_IS = re.compile(r"(?:final\s+)?answer\s*(?:is|would be|:|：)\s*:?", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n|\(")
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)


def _boxed_contents(text: str) -> list[str]:
    out = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.end(): i - 1 if depth == 0 else i])
    return out


def segments(text: str) -> Iterator[str]:
    """Yield where to look for the answer, most explicit first (see module docstring)."""
    boxed = _boxed_contents(text)
    if boxed:
        yield boxed[-1]
    marks = list(_ANSWER_IS.finditer(text))
    if marks:
        tail = text[marks[-1].end():].lstrip()
        end = _SENTENCE_END.search(tail)
        if end:
            yield tail[: end.start()]  # "Answer: X. (because ...)" -> "X"
        yield tail
    bold = _BOLD.findall(text)
    if bold:
        yield bold[-1]
    yield text


def _last_in_segments(text: str, finder: Callable[[str], list[str]]) -> str | None:
    for seg in segments(text):
        found = finder(seg)
        if found:
            return found[-1]
    return None


def normalise(s: str) -> str:
    """Return ``s`` lower-cased with markdown, LaTeX wrappers, quotes and end punctuation gone."""
    s = s.replace("\\text", "").replace("\\mathrm", "")
    s = re.sub(r"[*_`$\"'{}“”‘’]", " ", s)
    s = " ".join(s.lower().split())
    return s.strip(" .,;:!?()[]")


# --------------------------------------------------------------------------- generic
def _as_number(s: str) -> float | None:
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return None


def score_exact(item: Item, answer_text: str) -> tuple[str | None, bool]:
    """Return the generic score: normalised exact match of the extracted answer vs any gold.

    The extracted answer is the first non-empty segment's last line; numbers compare by value.
    """
    cand = None
    for seg in segments(answer_text):
        lines = [normalise(ln) for ln in seg.strip().splitlines() if normalise(ln)]
        if lines:
            cand = lines[-1]
            break
    if not cand:
        return None, False
    whole = normalise(answer_text)
    for g in golds(item):
        ng = normalise(str(g))
        if cand == ng or whole == ng:
            return ng, True
        a, b = _as_number(cand), _as_number(ng)
        if a is not None and b is not None and a == b:
            return cand, True
    return cand, False


# --------------------------------------------------------------------------- directions
_DIR = re.compile(r"\b(north|south)[\s\-‐‑–—_]*(east|west)(?:ern)?\b"
                  r"|\b(north|south|east|west)(?:ern)?\b"
                  r"|\b(NE|NW|SE|SW)\b", re.IGNORECASE)
_ABBR = {"n": "north", "s": "south", "e": "east", "w": "west", "ne": "north-east",
         "nw": "north-west", "se": "south-east", "sw": "south-west"}


def parse_directions(text: str) -> list[str]:
    """Return every compass direction named in ``text``, canonical (``north-east``), in order."""
    out = []
    whole = normalise(text)
    if whole in _ABBR:
        return [_ABBR[whole]]
    for m in _DIR.finditer(text):
        if m.group(1):
            out.append(f"{m.group(1).lower()}-{m.group(2).lower()}")
        elif m.group(3):
            out.append(m.group(3).lower())
        elif m.group(4).isupper():  # "ne" in running text is not an abbreviation
            out.append(_ABBR[m.group(4).lower()])
    return out


def score_direction(item: Item, answer_text: str) -> tuple[str | None, bool]:
    """Return the last compass direction named in the answer and whether it is the gold one."""
    got = _last_in_segments(answer_text, parse_directions)
    if got is None:
        return None, False
    return got, got in {normalise(g).replace(" ", "-") for g in golds(item)}


# --------------------------------------------------------------------------- true / false
_TRUTH = re.compile(r"\b(not\s+|in)?(true|false|yes|no|valid|invalid|correct|incorrect|"
                    r"follows|does\s+not\s+follow)\b", re.IGNORECASE)
_TRUE_WORDS = {"true", "yes", "valid", "correct", "follows"}


def parse_truth(text: str) -> list[str]:
    """Return every truth judgement in ``text`` as ``"true"``/``"false"``, in order."""
    out = []
    for m in _TRUTH.finditer(text):
        word = m.group(2).lower()
        neg = m.group(1) is not None and m.group(1).strip().lower() in ("not", "in")
        if word.startswith("does"):
            val = False
        elif word in ("invalid", "incorrect", "false", "no"):
            val = False
        else:
            val = word in _TRUE_WORDS
        out.append(str(val != neg).lower())
    return out


def score_truth(item: Item, answer_text: str) -> tuple[str | None, bool]:
    """Return the last true/false judgement in the answer and whether it matches the gold."""
    got = _last_in_segments(answer_text, parse_truth)
    if got is None:
        return None, False
    gold = {parse_truth(str(g))[-1] if parse_truth(str(g)) else normalise(str(g))
            for g in golds(item)}
    return got, got in gold


register_scorer("direction", score_direction)
register_scorer("truth", score_truth)
register_scorer("exact", score_exact)

# built-in tasks (the syllogisms register theirs in mimicry.tasks.syllogisms)
register_scorer("spatial", score_direction)
register_scorer("relational_3ps", score_truth)
register_scorer("relational_4ps", score_truth)
