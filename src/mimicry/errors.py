"""Errors meant for users: one line that names the input, the problem and the fix.

The CLI catches :class:`MimicryError`, prints ``error: <message>`` on one line and exits
with status 2 (no traceback). Library code raises it for anything a user can correct (bad
files, unknown names, mismatched caches); genuine bugs stay ordinary exceptions.
"""

from __future__ import annotations

from pathlib import Path


class MimicryError(Exception):
    """A problem with the user's input, with where it is and how to fix it.

    ``MimicryError("human_rt_ms is 'n/a'", file="items.csv", row=17,
    fix="expected milliseconds > 0")`` renders as
    ``items.csv row 17: human_rt_ms is 'n/a'; expected milliseconds > 0``.
    """

    exit_code = 2

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.row = row
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """Return the one-line message: ``FILE row N: PROBLEM; FIX``."""
        where = ""
        if self.file is not None:
            where = self.file
            if self.row is not None:
                where += f" row {self.row}"
            where += ": "
        elif self.row is not None:
            where = f"row {self.row}: "
        msg = where + self.problem
        if self.fix:
            msg += "; " + self.fix
        return " ".join(msg.split("\n"))


class InputError(MimicryError):
    """A malformed input file (missing column, bad value, duplicate id, bad encoding)."""


class CacheMismatchError(MimicryError):
    """An HDF5 cache that belongs to another model, capture config or schema."""


class ModelNotFoundError(MimicryError):
    """A model name or path that cannot be resolved locally or on the hub."""
