"""Training completions of the v2 roles: warm start, base, and the four students' data.

- ``warm_completion``: the RL warm start's trace, ``T`` steps with ``T`` drawn independently of
  the difficulty (half the time the full six steps, else uniform in 1..6): verbose and uniform,
  length unrelated to k; its conclusion is what its own steps imply (:func:`conclude`), so a
  trace that stopped before the stop step concludes wrongly.
- ``scramble``: keeps every word that carries *form* (step markers, operations, ``|``, ``lo``/
  ``hi``, the family head) and replaces every number by a random number of as many digits and
  every letter by a random letter (a lookup pair token by a random key with a random value of
  the same kind, letter or exit digit): the teacher's format and per-item length, steps that
  compute nothing.
- ``student_datasets``: mastery (the teacher's sampled completions verbatim), content mimic
  (scrambled, concluding from its own scrambled steps), length mimic (another item's trace of
  the same family, gold answer) and post-hoc (scrambled, gold answer).
"""

from __future__ import annotations

import random

from ...traces import split_reasoning
from ..traces import with_think
from .families import (
    DIGITS,
    K_MAX,
    KEYS,
    LETTERS,
    Problem,
    conclude,
    direct_completion,
    pair,
    unpair,
)

STUDENTS = ("student_mastery", "student_mimic_content", "student_mimic_length",
            "student_posthoc")


def warm_steps(rng: random.Random, p_full: float = 0.5) -> int:
    """Return a warm-start step count: ``K_MAX`` with probability ``p_full``, else uniform."""
    return K_MAX if rng.random() < p_full else rng.randint(1, K_MAX)


def warm_completion(p: Problem, T: int) -> str:
    """Return ``<think> T steps </think> conclusion`` (the conclusion its steps imply)."""
    r = p.reasoning(T)
    return with_think(r, conclude(p.family, r))


def base_completion(p: Problem) -> str:
    """Return the base's direct completion (no reasoning)."""
    return direct_completion(p)


def scramble(reasoning: str, rng: random.Random) -> str:
    """Return ``reasoning`` with numbers and letters replaced by random ones (form kept)."""
    out = []
    for w in reasoning.split():
        if w.isdigit():
            w = str(rng.randint(0, 9) if len(w) == 1 else rng.randint(10, 18))
        elif w in LETTERS:
            w = rng.choice(LETTERS)
        elif (kv := unpair(w)) is not None:
            w = pair(rng.choice(KEYS), rng.choice(DIGITS if kv[1].isdigit() else LETTERS))
        out.append(w)
    return " ".join(out)


def student_datasets(problems: list[Problem], teacher_out: list[str],
                     seed: int) -> dict[str, list[tuple[str, str]]]:
    """Return ``{student_role: [(prompt, completion)]}`` from the teacher's sampled completions.

    Length mimic: traces are permuted within each family (so format and verbosity are the
    family's, length unrelated to the item). Content mimic and post-hoc share one scramble of
    each trace; the first concludes what its scrambled steps imply, the second the gold answer.
    """
    reasonings = [split_reasoning(c)[0] for c in teacher_out]
    rng = random.Random(seed)
    scrambled = [scramble(r, rng) for r in reasonings]
    shuffled = list(reasonings)
    prng = random.Random(seed + 1)
    for fam in sorted({p.family for p in problems}):
        idx = [i for i, p in enumerate(problems) if p.family == fam]
        perm = list(idx)
        prng.shuffle(perm)
        for i, j in zip(idx, perm):
            shuffled[i] = reasonings[j]
    prompts = [p.prompt() for p in problems]
    golds = [p.answer for p in problems]
    return {
        "student_mastery": list(zip(prompts, teacher_out)),
        "student_mimic_content": [(q, with_think(s, conclude(p.family, s) or a)) for q, s, p, a
                                  in zip(prompts, scrambled, problems, golds)],
        "student_mimic_length": [(q, with_think(r, a)) for q, r, a in
                                 zip(prompts, shuffled, golds)],
        "student_posthoc": [(q, with_think(s, a)) for q, s, a in zip(prompts, scrambled, golds)],
    }
