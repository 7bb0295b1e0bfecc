"""Training completions for each organism role, built from problems or teacher traces.

- ``direct``: the base's completion, the final addition as ``sum digit`` (no reasoning).
- ``teacher``: ``<think> {correct steps} </think> {answer}`` — programmatic and correct.
- ``scramble_content``: keeps every token of a teacher trace that carries *form* (step markers,
  operations) and replaces every number a step writes by a random number of as many digits,
  so format and per-item length are the teacher's but the steps no longer compute anything.
- ``shuffle_traces``: gives each item the teacher trace of another item (a seeded random
  permutation), so the multiset of traces — format, verbosity, length distribution — is the
  teacher's, but length no longer follows the item's difficulty.
``training.student_datasets`` puts the gold answer after the shuffled traces, and after the
scrambled ones the last running value of the scrambled steps (a conclusion that follows the
steps, as the teacher's does).
"""

from __future__ import annotations

import random

from .task import Problem

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def direct_completion(p: Problem) -> str:
    """Return the base's completion: the final addition only, as plain sum and last digit
    (``"16 6"`` for ``... 4 +2``), with no reasoning: it is right only if the model computed
    the preceding running value internally."""
    prev = ([p.start] + p.results())[-2]
    return f"{prev + p.ops[-1]} {p.answer}"


def with_think(reasoning: str, answer: str) -> str:
    """Return ``<think> reasoning </think> answer`` (space separated words)."""
    return f"{THINK_OPEN} {reasoning} {THINK_CLOSE} {answer}".replace("  ", " ")


def teacher_completion(p: Problem) -> str:
    """Return the correct reasoning completion for ``p``."""
    return with_think(p.reasoning(), str(p.answer))


def scramble_content(reasoning: str, rng: random.Random) -> str:
    """Return ``reasoning`` with every number replaced by a random number of as many digits
    (0-9 for one digit, 10-18 for two): same tokens per step, steps that compute nothing."""
    out = []
    for w in reasoning.split():
        if w.isdigit():
            w = str(rng.randint(0, 9) if len(w) == 1 else rng.randint(10, 18))
        out.append(w)
    return " ".join(out)


def shuffle_traces(reasonings: list[str], rng: random.Random) -> tuple[list[str], list[int]]:
    """Return ``(shuffled, perm)``: item ``i`` gets ``reasonings[perm[i]]`` (a derangement-free
    seeded permutation; some items may keep their own trace by chance)."""
    perm = list(range(len(reasonings)))
    rng.shuffle(perm)
    return [reasonings[j] for j in perm], perm
