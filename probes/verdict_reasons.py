"""The rule letters in a verdict's ``decided_by`` text: the rows that decided, and those open.

:func:`probes.verdict_rule.decide` writes its reasons as ``"LETTER: why"`` joined by ``"; "``:
first the rows that decided the call (support, or for surface mimicry the against-tests that
held: ``C``, ``N``, ``W-``, ``M-``, ``X``), then, for an inconclusive call, ``"open: LETTER:
why"`` for each open row and power notes about those rows, and for surface mimicry a note
``"(against-tests: ...)"``. The headline's ``rules`` column and the verdict figure's bold
rows read the letters here, so neither drops one (``W-`` has a minus sign).
"""

from __future__ import annotations

import re

_LETTER = re.compile(r"([A-Z]-?)(?=\s*(?::|\(|$))")


def rule_letters(decided_by: object) -> tuple[list[str], list[str]]:
    """Return (letters of the rows that decided the call, letters of the open rows), in order.

    ``"A: …; W: …; open: P: …; A: Δr CI … ~90 items needed"`` → ``(["A", "W"], ["P"])``;
    ``"N: …; W-: …; M: …; (against-tests: C, N, W-, …)"`` → ``(["N", "W-", "M"], [])``.
    """
    decided: list[str] = []
    open_: list[str] = []
    after_open = False
    text = "" if decided_by is None or decided_by != decided_by else str(decided_by)
    for part in text.split(";"):
        part = part.strip()
        if part.startswith("open:"):
            after_open = True
            m = _LETTER.match(part[len("open:"):].strip())
            if m and m.group(1) not in open_:
                open_.append(m.group(1))
            continue
        m = _LETTER.match(part)
        if m and not after_open and m.group(1) not in decided:   # after "open": power notes
            decided.append(m.group(1))
    return decided, open_


def short(decided_by: object) -> str:
    """Return the letters as the headline shows them: ``"A, W, M; open: P"``."""
    decided, open_ = rule_letters(decided_by)
    out = ", ".join(decided)
    if open_:
        out += ("; " if out else "") + "open: " + ", ".join(open_)
    return out
