"""One helper for packages whose public names are imported on first use (PEP 562).

A package ``__init__`` maps each public name to the submodule defining it and calls
:func:`lazy`; ``mimicry --help`` then lists every command without loading pandas, scipy or
torch, and ``from mimicry.tasks import load_suite`` works as before.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list]]:
    """Return ``(__getattr__, __dir__)`` for ``package``: ``{name: ".submodule"}``."""

    def __getattr__(name: str) -> Any:
        if name in names:
            mod = importlib.import_module(names[name], package)
            value = getattr(mod, name)
            importlib.import_module(package).__dict__[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(names))

    return __getattr__, __dir__
