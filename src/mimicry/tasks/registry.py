"""Finding suites by name or file: ``load_suite("spatial")``, ``load_suite("items.csv")``.

(Placeholder signatures; the tasks work fills these in.)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MimicryError
from .items import TaskSuite


def list_suites() -> list[str]:
    """Return the names of the built-in suites."""
    return []


def load_suite(name_or_path: str | Path) -> TaskSuite:
    """Return a built-in suite by name, or a user CSV/JSONL items file as a suite."""
    raise MimicryError(f"unknown suite '{name_or_path}'", fix=f"use one of {list_suites()} "
                       "or a path to a .csv/.jsonl items file")
