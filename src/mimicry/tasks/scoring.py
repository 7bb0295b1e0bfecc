"""Answer scoring per task, without ``eval``. (Placeholder; the tasks work fills it in.)"""

from __future__ import annotations

from .items import Item


def score_answer(item: Item, answer_text: str) -> tuple[str | None, bool]:
    """Return ``(parsed_answer, correct)``; ``parsed_answer`` is None when unparseable."""
    text = (answer_text or "").strip().lower()
    if not text or item.answer is None:
        return None, False
    golds = item.answer if isinstance(item.answer, tuple) else (item.answer,)
    return text, text in {g.lower() for g in golds}
