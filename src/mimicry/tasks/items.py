"""Core task objects: :class:`HumanNorms`, :class:`Item` and :class:`TaskSuite`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class HumanNorms:
    """Human difficulty norms for one item.

    ``rt_ms``: median reaction time of correct trials (ms); ``accuracy``: proportion correct
    (for syllogisms: proportion of logically valid responses); ``n``: trials behind the norm;
    ``reliability``: split-half (Spearman–Brown) reliability of the item-level norm across the
    item's task, where trial data exist (the same value on every item of a task).
    """

    rt_ms: float | None = None
    accuracy: float | None = None
    n: int | None = None
    reliability: float | None = None

    @property
    def measure(self) -> str:
        """Return the norm alignment uses: ``"rt_ms"`` when present, else ``"error_rate"``."""
        return "rt_ms" if self.rt_ms is not None else "error_rate"

    @property
    def difficulty(self) -> float | None:
        """Return the difficulty value alignment correlates with (RT in ms, else 1 − accuracy)."""
        if self.rt_ms is not None:
            return float(self.rt_ms)
        if self.accuracy is not None:
            return 1.0 - float(self.accuracy)
        return None


@dataclass(frozen=True)
class Item:
    """One problem with its human norms.

    ``answer`` is the gold answer as a normalised string, or a tuple of strings when several
    answers are correct (e.g. the valid conclusions of a syllogism; a response is correct if it
    names any of them). ``meta`` holds task-specific fields (premises, number of steps...).
    """

    item_id: str
    task: str
    prompt: str | None = None
    answer: str | tuple[str, ...] | None = None
    human: HumanNorms = field(default_factory=HumanNorms)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a flat JSON-ready dict (the export/import schema, see README)."""
        d = {
            "item_id": self.item_id,
            "task": self.task,
            "prompt": self.prompt,
            "answer": list(self.answer) if isinstance(self.answer, tuple) else self.answer,
        }
        for k, v in asdict(self.human).items():
            d[f"human_{k}"] = v
        d["meta"] = dict(self.meta)
        return d


class TaskSuite:
    """A named, validated collection of :class:`Item` (unique ids).

    Iterating yields items; ``suite["id"]`` looks one up; ``suite.to_frame()`` gives a
    DataFrame with one row per item. ``info`` records how the suite was built (norm
    definitions, reliability seed and number of splits, excluded problems with reasons).
    """

    def __init__(self, name: str, items: Iterable[Item], *, source: str = "",
                 reliability: dict[str, float | None] | None = None,
                 synthetic: bool = False, info: dict[str, Any] | None = None) -> None:
        self.name = name
        self.info: dict[str, Any] = dict(info or {})
        self.items: list[Item] = list(items)
        self.source = source
        self.synthetic = synthetic
        self._by_id = {}
        for it in self.items:
            if it.item_id in self._by_id:
                raise ValueError(f"suite {name!r}: duplicate item_id {it.item_id!r}")
            self._by_id[it.item_id] = it
        self.reliability: dict[str, float | None] = dict(reliability or {})

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item_id: str) -> Item:
        return self._by_id[item_id]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def get(self, item_id: str, default: Item | None = None) -> Item | None:
        """Return the item with this id, or ``default``."""
        return self._by_id.get(item_id, default)

    @property
    def tasks(self) -> list[str]:
        """Return the task names in first-seen order."""
        return list(dict.fromkeys(it.task for it in self.items))

    def to_frame(self) -> pd.DataFrame:
        """Return one row per item: ids, task, prompt, answer, human norms (flattened)."""
        rows = []
        for it in self.items:
            d = it.to_dict()
            d.pop("meta")
            rows.append(d)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        rel = {k: (None if v is None or math.isnan(v) else round(v, 3))
               for k, v in self.reliability.items()}
        return (f"TaskSuite({self.name!r}, {len(self)} items, tasks={self.tasks}, "
                f"reliability={rel})")
