"""Organism v2 task families: three ways that difficulty sets the computation, one prompt length.

Every family has a difficulty ``k`` in 1..6 (the number of steps a correct computation needs)
and, within the family, **every prompt has the same number of tokens at every k**: the
difficulty lives in the order of the tokens or in their values, never in which tokens appear or
how many (the bag of tokens is independent of k by construction; measured in
:mod:`mimicry.organism.v2.leakage`).

- ``chain`` (``org2_chain``) — additions up to an explicit stop bar. ``add 3 s1 +4 s2 +7 | s3
  +2 s4 +5 s5 +1 s6 +8 =``: add the operations before ``|`` to the start, mod 10 (answer 4).
  k = the bar's position; each step one addition (``s2 +7 14 4``: sum, last digit).
- ``lookup`` (``org2_lookup``) — pointer chasing. Twelve keys ``A``..``L``, each written with
  its value as one token ``KEY:value`` (always in the order A..L), the value a letter ``a``..``l``
  (the next key, lower case) or an exit digit; two chains of six end in two exits. ``ptr c A:e
  B:7 C:h ... L:d =``: from the start letter, find the token of its key (upper case) and read its
  value, until a digit (the answer). k = the hops from the start to its exit: the distance in
  the graph, not a position in the prompt. A step copies the prompt token it looked up (``c
  C:h H:j``: c → C:h → h → H:j), so each hop is one match of a letter to a key and one copy.
- ``search`` (``org2_search``) — comparisons with a value-set stop. ``find 5 s1 3 s2 1 s3 7 s4 2
  s5 4 s6 0 =``: add the elements up to and including the first one above the threshold, mod 10
  (3+1+7 = 11 → 1). Exactly one element is above it, so k = its position is set by the values.
  A step adds the element and ends with the comparison that decides whether to stop (``s3 7 11
  1 hi``), so the cue to stop is the last word written, as ``|`` is in chain and the exit
  digit in lookup.

Reasoning is written as steps; ``reasoning(p, T)`` writes ``T`` steps, whatever ``k`` is: the
efficient trace is ``T = k``, the RL warm start writes a ``T`` unrelated to ``k``. Steps past k
keep going (chain and search keep adding past the stop and mark it, lookup starts over from the
start letter to check), and the conclusion is read off the trace by :func:`conclude` — the
stop's value if the trace reached it, else its last value (then the answer is wrong).

Norms are SYNTHETIC (``rt_ms = 300 + 500 k``), flagged on the suite and every item.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from ...tasks.items import HumanNorms, Item, TaskSuite
from ..task import score_answer  # every family's answer is one digit, scored as in v1

SUITE = "organism_v2"
# 2: recipe 2's trace formats (lookup pair tokens ``KEY:value``, search steps ending with the
# comparison); recipe 1 (keys and values apart, comparison mid-step) had no number
FORMAT = 2
FAMILIES = ("chain", "lookup", "search")
TASKS = {f: f"org2_{f}" for f in FAMILIES}
FAMILY_OF_TASK = {t: f for f, t in TASKS.items()}
K_MAX = 6
LETTERS = tuple(string.ascii_lowercase[:12])
KEYS = tuple(string.ascii_uppercase[:12])  # lookup keys: KEYS[i] is the key of LETTERS[i]
DIGITS = tuple(str(d) for d in range(10))
PAIRS = tuple(f"{key}:{v}" for key in KEYS for v in LETTERS + DIGITS)  # lookup prompt tokens
SYNTH_RT_BASE_MS = 300.0
SYNTH_RT_PER_STEP_MS = 500.0
SUITE_SEED = 20261129
ITEMS_PER_LEVEL = 16
HEAD = {"chain": "add", "lookup": "ptr", "search": "find"}


@dataclass(frozen=True)
class Problem:
    """One v2 problem: ``family``, difficulty ``k`` and the family's values ``vals``.

    chain: ``(start, o1..o6)``; lookup: ``(start_letter, chain1 (6 letters), chain2, exit1,
    exit2)`` flattened as a tuple of strings; search: ``(t, x1..x6)``.
    """

    family: str
    k: int
    vals: tuple

    def prompt(self) -> str:
        """Return the prompt text (the same number of tokens for every k of the family)."""
        return " ".join([HEAD[self.family], *_PROMPT[self.family](self)]) + " ="

    def reasoning(self, T: int | None = None) -> str:
        """Return the reasoning text of ``T`` steps (default ``k``: the efficient trace)."""
        T = self.k if T is None else T
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        return " ".join(_STEPS[self.family](self, T))

    @property
    def answer(self) -> str:
        """Return the gold answer (what the efficient trace concludes)."""
        return conclude(self.family, self.reasoning())

    @property
    def task(self) -> str:
        """Return the task name of the family (``org2_chain`` ...)."""
        return TASKS[self.family]


# ------------------------------------------------------------------------------------ chain
def _chain_prompt(p: Problem) -> list[str]:
    start, ops = p.vals[0], p.vals[1:]
    out = [str(start)]
    for j, o in enumerate(ops, 1):
        out += [f"s{j}", f"+{o}"]
        if j == p.k:
            out.append("|")
    return out


def _chain_steps(p: Problem, T: int) -> list[str]:
    v, ops = p.vals[0], p.vals[1:]
    out = [str(v)]
    for j, o in enumerate(ops[:T], 1):
        out += [f"s{j}", f"+{o}", str(v + o), str((v + o) % 10)]
        v = (v + o) % 10
        if j == p.k:
            out.append("|")
    return out


# ----------------------------------------------------------------------------------- lookup
def _lookup_table(p: Problem) -> dict[str, str]:
    c1, c2 = p.vals[1:7], p.vals[7:13]
    e1, e2 = p.vals[13], p.vals[14]
    table = {}
    for chain, exit_ in ((c1, e1), (c2, e2)):
        for a, b in zip(chain, chain[1:] + (exit_,)):
            table[a] = b
    return table


def pair(key: str, value: str) -> str:
    """Return the lookup token of ``key`` mapped to ``value`` (``"C:h"``)."""
    return f"{key}:{value}"


def unpair(token: str) -> tuple[str, str] | None:
    """Return ``(key, value)`` of a lookup pair token, or None for any other word."""
    key, sep, value = token.partition(":")
    return (key, value) if sep else None


def _lookup_prompt(p: Problem) -> list[str]:
    table = _lookup_table(p)
    return [p.vals[0]] + [pair(key, table[letter]) for key, letter in zip(KEYS, LETTERS)]


def _lookup_steps(p: Problem, T: int) -> list[str]:
    table, start = _lookup_table(p), p.vals[0]
    out, cur = [start], start
    for _ in range(T):
        cur = start if cur.isdigit() else cur  # after the exit: start over (a check)
        key = KEYS[LETTERS.index(cur)]
        cur = table[cur]
        out.append(pair(key, cur))  # the prompt token looked up: its key and value
    return out


# ----------------------------------------------------------------------------------- search
def _search_prompt(p: Problem) -> list[str]:
    out = [str(p.vals[0])]
    for j, x in enumerate(p.vals[1:], 1):
        out += [f"s{j}", str(x)]
    return out


def _search_steps(p: Problem, T: int) -> list[str]:
    t, xs = p.vals[0], p.vals[1:]
    out, v = [str(t)], 0
    for j, x in enumerate(xs[:T], 1):
        # the comparison ends the step, right before the decision to stop (as ``|`` in chain)
        out += [f"s{j}", str(x), str(v + x), str((v + x) % 10), "hi" if x > t else "lo"]
        v = (v + x) % 10
    return out


_PROMPT = {"chain": _chain_prompt, "lookup": _lookup_prompt, "search": _search_prompt}
_STEPS = {"chain": _chain_steps, "lookup": _lookup_steps, "search": _search_steps}
STEP_TOKENS = {"chain": 4, "lookup": 1, "search": 5}


def conclude(family: str, reasoning: str) -> str:
    """Return the answer a reasoning text implies (the rule every trained trace follows).

    chain: the value before the first ``|``, else the last value; lookup: the value of the
    first pair token whose value is a digit (the exit reached), else the last value (a letter:
    not an answer, scored wrong);
    search: the running value of the first ``hi`` step, else the last value. Works on any
    text of the family's format, also on scrambled traces.
    """
    toks = reasoning.split()
    if not toks:
        return ""
    if family == "chain":
        if "|" in toks and toks.index("|") > 0:
            return toks[toks.index("|") - 1]
        return toks[-1]
    if family == "lookup":
        vals = [kv[1] for kv in map(unpair, toks[1:]) if kv is not None] or toks[-1:]
        return next((v for v in vals if v.isdigit()), vals[-1])
    if family == "search":
        i = toks.index("hi") if "hi" in toks else 0
        if i > 0:
            return toks[i - 1]
        return next((w for w in reversed(toks) if w not in ("lo", "hi")), toks[-1])
    raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")


def direct_completion(p: Problem) -> str:
    """Return the base's completion: no reasoning, the final step's result only.

    chain and search: the last addition before the stop as ``sum digit`` (right only if the
    running value before it was computed internally, as in v1); lookup: the exit digit.
    """
    if p.family == "lookup":
        return p.answer
    toks = p.reasoning().split()
    if p.family == "chain":
        i = toks.index("|")
        return f"{toks[i - 2]} {toks[i - 1]}"
    return f"{toks[-3]} {toks[-2]}"


def random_problem(rng: random.Random, family: str, k: int) -> Problem:
    """Return a random problem of ``family`` with difficulty ``k`` drawn with ``rng``.

    The bag of prompt tokens has the same distribution for every k: chain draws uniform
    operations and only moves the bar; lookup relabels two random six-letter chains and puts
    the start 7 − k letters before the exit; search draws a threshold, one element above it
    and five at or below it, and only moves the element above it to position k.
    """
    if not 1 <= k <= K_MAX:
        raise ValueError(f"k must be in 1..{K_MAX}, got {k}")
    if family == "chain":
        return Problem(family, k, (rng.randint(0, 9),) + tuple(rng.randint(0, 9)
                                                              for _ in range(K_MAX)))
    if family == "lookup":
        letters = list(LETTERS)
        rng.shuffle(letters)
        c1, c2 = tuple(letters[:6]), tuple(letters[6:])
        e1, e2 = rng.sample([str(d) for d in range(10)], 2)
        start = (c1 if rng.random() < 0.5 else c2)[6 - k]  # k hops from here to its exit
        return Problem(family, k, (start,) + c1 + c2 + (e1, e2))
    if family == "search":
        t = rng.randint(1, 8)
        low = [rng.randint(0, t) for _ in range(K_MAX - 1)]
        xs = low[:k - 1] + [rng.randint(t + 1, 9)] + low[k - 1:]
        return Problem(family, k, (t,) + tuple(xs))
    raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")


def synthetic_rt_ms(k: int) -> float:
    """Return the SYNTHETIC reaction time (ms) of difficulty ``k`` (not human data)."""
    return SYNTH_RT_BASE_MS + SYNTH_RT_PER_STEP_MS * k


def make_problems(family: str, *, per_level: int = ITEMS_PER_LEVEL,
                  seed: int = SUITE_SEED) -> list[Problem]:
    """Return ``per_level`` distinct problems of ``family`` for each k in 1..6 (seeded)."""
    rng = random.Random(f"{seed}-{family}")
    out: list[Problem] = []
    for k in range(1, K_MAX + 1):
        seen: set[str] = set()
        while len(seen) < per_level:
            p = random_problem(rng, family, k)
            if p.prompt() not in seen:
                seen.add(p.prompt())
                out.append(p)
    return out


def make_items(*, per_level: int = ITEMS_PER_LEVEL, seed: int = SUITE_SEED) -> list[Item]:
    """Return the evaluation items of every family (``per_level`` per k, SYNTHETIC norms)."""
    items = []
    for fam in FAMILIES:
        counts: dict[int, int] = {}
        for p in make_problems(fam, per_level=per_level, seed=seed):
            counts[p.k] = counts.get(p.k, 0) + 1
            items.append(Item(
                item_id=f"o2-{fam}-k{p.k}-{counts[p.k]:02d}", task=p.task, prompt=p.prompt(),
                answer=p.answer, human=HumanNorms(rt_ms=synthetic_rt_ms(p.k)),
                meta={"difficulty": p.k, "family": fam, "synthetic_norm": True,
                      "norm_formula": f"rt_ms = {SYNTH_RT_BASE_MS:g} + "
                                      f"{SYNTH_RT_PER_STEP_MS:g} * difficulty"}))
    return items


def organism_v2_suite(**kw) -> TaskSuite:
    """Return the ``organism_v2`` suite: 3 tasks × 6 difficulties × 16 items, SYNTHETIC norms."""
    return TaskSuite(SUITE, make_items(**kw), synthetic=True,
                     source="mimicry.organism.v2 (three synthetic task families; rt_ms is a "
                            "deterministic function of difficulty, NOT human data)")


def parse_problem(prompt: str) -> Problem:
    """Return the :class:`Problem` a v2 prompt encodes; raise ValueError if malformed."""
    toks = prompt.split()
    fam = {v: f for f, v in HEAD.items()}.get(toks[0] if toks else "")
    if fam is None or toks[-1] != "=":
        raise ValueError(f"not an organism v2 prompt: {prompt!r}")
    body = toks[1:-1]
    if fam == "chain" and len(body) == 14 and body.count("|") == 1:
        k = (body.index("|") - 1) // 2
        ops = tuple(int(w[1:]) for w in body if w.startswith("+"))
        return Problem(fam, k, (int(body[0]),) + ops)
    if fam == "search" and len(body) == 13:
        t, xs = int(body[0]), tuple(int(w) for w in body[2::2])
        k = next(j for j, x in enumerate(xs, 1) if x > t)
        return Problem(fam, k, (t,) + xs)
    if fam == "lookup" and len(body) == 13:
        kvs = [unpair(w) for w in body[1:]]
        if any(kv is None for kv in kvs) or tuple(kv[0] for kv in kvs) != KEYS:
            raise ValueError(f"not an organism v2 lookup prompt: {prompt!r}")
        table = dict(zip(LETTERS, (kv[1] for kv in kvs)))
        start, hops, cur = body[0], 0, body[0]
        while not cur.isdigit() and hops <= len(LETTERS):
            cur, hops = table[cur], hops + 1
        heads = [x for x in LETTERS if x not in table.values()]
        chains = []
        for h in heads:
            c = [h]
            while not table[c[-1]].isdigit():
                c.append(table[c[-1]])
            chains.append((tuple(c), table[c[-1]]))
        if len(chains) != 2 or any(len(c) != 6 for c, _ in chains):
            raise ValueError(f"not an organism v2 lookup prompt: {prompt!r}")
        (c1, e1), (c2, e2) = chains
        return Problem(fam, hops, (start,) + c1 + c2 + (e1, e2))
    raise ValueError(f"not an organism v2 prompt: {prompt!r}")


def _register() -> None:
    from ...tasks.scoring import register_scorer

    for task in TASKS.values():
        register_scorer(task, score_answer)


_register()
