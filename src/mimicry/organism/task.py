"""The organism's synthetic task family: chains of k digit additions mod 10.

An item of difficulty ``k`` (1..6) is a start digit followed by ``k`` operations, each a
step marker and an added digit, then ``=``: ``3 s1 +4 s2 +7 s3 +2 =`` (answer ``6``: 3+4=7,
7+7=4, 4+2=6, all mod 10). Difficulty is the number of steps a correct computation needs.

Reasoning format (as in real reasoning models): ``<think> 3 s1 +4 7 7 s2 +7 14 4 s3 +2 6 6
</think> 6`` — the trace restates the start value, then writes one step per operation: the
marker, the operation, the plain sum and its last digit (the running value), so its length is
``1 + 4k`` tokens. (The plain sum is what makes the step learnable in minutes: a mod-10 sum of
two digits carries no first-order signal from either digit alone, a plain sum does.)

The norm is SYNTHETIC, not human: ``rt_ms = SYNTH_RT_BASE_MS + SYNTH_RT_PER_STEP_MS * k``,
flagged by ``TaskSuite(synthetic=True)`` and ``item.meta["synthetic_norm"] = True``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ..tasks.items import HumanNorms, Item, TaskSuite

TASK = "organism_chain"
SUITE = "organism"
MAX_STEPS = 6
SYNTH_RT_BASE_MS = 300.0
SYNTH_RT_PER_STEP_MS = 500.0
SUITE_SEED = 20260127
ITEMS_PER_LEVEL = 16


@dataclass(frozen=True)
class Problem:
    """One chain: ``start`` digit and ``ops`` as digits added in turn (e.g. ``(4, 7, 2)``)."""

    start: int
    ops: tuple[int, ...]

    @property
    def k(self) -> int:
        """Return the difficulty: the number of operations."""
        return len(self.ops)

    def results(self) -> list[int]:
        """Return the running value after each operation (mod 10), length ``k``."""
        out, v = [], self.start
        for o in self.ops:
            v = (v + o) % 10
            out.append(v)
        return out

    @property
    def answer(self) -> int:
        """Return the final value mod 10."""
        return self.results()[-1]

    def prompt(self) -> str:
        """Return the prompt text, e.g. ``"3 s1 +4 s2 +7 ="``."""
        parts = [str(self.start)]
        for j, o in enumerate(self.ops, 1):
            parts += [f"s{j}", op_token(o)]
        return " ".join(parts + ["="])

    def steps(self) -> list[str]:
        """Return the teacher's steps, one per operation (``"s2 +7 14 4"``: sum, last digit)."""
        prev = [self.start] + self.results()[:-1]
        return [f"s{j} {op_token(o)} {a + o} {r}"
                for j, (o, a, r) in enumerate(zip(self.ops, prev, self.results()), 1)]

    def reasoning(self) -> str:
        """Return the correct reasoning text (inside the think tags)."""
        return " ".join([str(self.start)] + self.steps())


def op_token(o: int) -> str:
    """Return the token of an operation (``+4``)."""
    return f"+{o}"


def parse_op(tok: str) -> int:
    """Return the digit an operation token adds (``"+7"`` -> 7)."""
    return int(tok[1:])


def random_problem(rng: random.Random, k: int) -> Problem:
    """Return a random chain of ``k`` additions drawn with ``rng``."""
    start = rng.randint(0, 9)
    return Problem(start=start, ops=tuple(rng.randint(0, 9) for _ in range(k)))


def parse_prompt(prompt: str) -> Problem:
    """Return the :class:`Problem` a prompt encodes; raise ValueError if malformed."""
    toks = prompt.split()
    if toks and toks[-1] == "=":
        toks = toks[:-1]
    if not toks or not toks[0].isdigit() or len(toks) % 2 != 1:
        raise ValueError(f"not an organism prompt: {prompt!r}")
    ops = []
    for j in range(1, len(toks), 2):
        if toks[j] != f"s{(j + 1) // 2}" or not re.fullmatch(r"\+\d", toks[j + 1]):
            raise ValueError(f"not an organism prompt: {prompt!r}")
        ops.append(parse_op(toks[j + 1]))
    return Problem(int(toks[0]), tuple(ops))


def synthetic_rt_ms(k: int) -> float:
    """Return the SYNTHETIC reaction time (ms) assigned to difficulty ``k`` (not human data)."""
    return SYNTH_RT_BASE_MS + SYNTH_RT_PER_STEP_MS * k


def make_items(*, per_level: int = ITEMS_PER_LEVEL, max_steps: int = MAX_STEPS,
               seed: int = SUITE_SEED) -> list[Item]:
    """Return the evaluation items: ``per_level`` distinct chains for each k in 1..max_steps."""
    rng = random.Random(seed)
    items: list[Item] = []
    for k in range(1, max_steps + 1):
        seen: set[str] = set()
        while len(seen) < per_level:
            p = random_problem(rng, k)
            text = p.prompt()
            if text in seen:
                continue
            seen.add(text)
            items.append(Item(
                item_id=f"org-k{k}-{len(seen):02d}", task=TASK, prompt=text,
                answer=str(p.answer),
                human=HumanNorms(rt_ms=synthetic_rt_ms(k)),
                meta={"difficulty": k, "synthetic_norm": True,
                      "norm_formula": f"rt_ms = {SYNTH_RT_BASE_MS:g} + "
                                      f"{SYNTH_RT_PER_STEP_MS:g} * difficulty"}))
    return items


def organism_suite(**kw) -> TaskSuite:
    """Return the ``organism`` suite (96 items, difficulty 1..6, SYNTHETIC norms)."""
    return TaskSuite(SUITE, make_items(**kw), synthetic=True,
                     source="mimicry.organism (synthetic chain arithmetic; rt_ms is a "
                            "deterministic function of difficulty, NOT human data)")


_DIGIT = re.compile(r"(?<![\w+-])(\d)(?![\w])")


def parse_answer(answer_text: str) -> str | None:
    """Return the last standalone single digit of an answer text (``"16 6"`` -> ``"6"``)."""
    found = _DIGIT.findall(answer_text or "")
    return found[-1] if found else None


def score_answer(item: Item, answer_text: str) -> tuple[str | None, bool]:
    """Return ``(parsed_answer, correct)`` for an organism item."""
    parsed = parse_answer(answer_text)
    return parsed, parsed is not None and parsed == str(item.answer)
