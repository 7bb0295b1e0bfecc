"""Training completions for each organism role, built from problems or teacher traces.

- ``direct``: the base's completion, just the answer (no reasoning).
- ``teacher``: ``<think> {correct steps} </think> {answer}`` — programmatic and correct.
- ``scramble_content``: keeps every token of a teacher trace that carries *form* (step markers,
  operations, ``=``) and replaces every value (the digits a step writes) by a random digit,
  so format and per-item length are the teacher's but the steps no longer compute anything.
- ``shuffle_traces``: gives each item the teacher trace of another item (a seeded random
  permutation), so the multiset of traces — format, verbosity, length distribution — is the
  teacher's, but length no longer follows the item's difficulty.
In every case the final answer is the item's gold answer.
"""

from __future__ import annotations

import random

from .task import Problem

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def direct_completion(p: Problem) -> str:
    """Return the base's completion: the answer digit only."""
    return str(p.answer)


def with_think(reasoning: str, answer: str) -> str:
    """Return ``<think> reasoning </think> answer`` (space separated words)."""
    return f"{THINK_OPEN} {reasoning} {THINK_CLOSE} {answer}".replace("  ", " ")


def teacher_completion(p: Problem) -> str:
    """Return the correct reasoning completion for ``p``."""
    return with_think(p.reasoning(), str(p.answer))


def scramble_content(reasoning: str, rng: random.Random) -> str:
    """Return ``reasoning`` with every value digit replaced by a random digit (same length)."""
    out = []
    for w in reasoning.split():
        out.append(str(rng.randint(0, 9)) if w.isdigit() else w)
    return " ".join(out)


def shuffle_traces(reasonings: list[str], rng: random.Random) -> tuple[list[str], list[int]]:
    """Return ``(shuffled, perm)``: item ``i`` gets ``reasonings[perm[i]]`` (a derangement-free
    seeded permutation; some items may keep their own trace by chance)."""
    perm = list(range(len(reasonings)))
    rng.shuffle(perm)
    return [reasonings[j] for j in perm], perm
