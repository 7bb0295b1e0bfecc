"""Finding suites by name or file: ``load_suite("spatial")``, ``load_suite("items.csv")``.

Built-in suites (built from the bundled CCOBRA data on first use, then cached in-process):
``spatial``, ``relational``, ``syllogisms``. Other packages add suites with
:func:`register_suite`; modules named in ``PLUGIN_MODULES`` (the model organism's task) are
imported lazily the first time the registry is asked, so they can register themselves without
an import cycle. A plugin module that does not call :func:`register_suite` itself but defines
``SUITE`` (name) and ``build_suite()`` or ``<SUITE>_suite()`` is registered automatically;
likewise ``TASK`` + ``score_answer`` registers its scorer.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputError
from . import scoring, syllogisms  # noqa: F401  (syllogisms registers its scorer)
from .items import TaskSuite
from .userfile import export_suite, load_items_file

__all__ = ["list_suites", "load_suite", "register_suite", "suite_summary", "export_suite"]

PLUGIN_MODULES = ["mimicry.organism.task", "mimicry.organism.v2.families"]
FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".ndjson", ".txt")


@dataclass(frozen=True)
class SuiteEntry:
    """A registered suite: how to build it and where its norms come from."""

    name: str
    loader: Callable[[], TaskSuite]
    description: str
    norm_source: str


_REGISTRY: dict[str, SuiteEntry] = {}
_CACHE: dict[str, TaskSuite] = {}
_plugins_loaded = False


def register_suite(name: str, loader: Callable[[], TaskSuite], description: str = "",
                   norm_source: str = "") -> None:
    """Register (or replace) a named suite; ``loader()`` is called once, on first use."""
    if not name or any(c in name for c in "/\\."):
        raise ValueError(f"suite name {name!r} must be non-empty without '/', '\\' or '.'")
    _REGISTRY[name] = SuiteEntry(name, loader, description, norm_source)
    _CACHE.pop(name, None)


def _build(name: str) -> TaskSuite:
    """Return the built suite ``name``, building it on first use (in-process cache)."""
    if name not in _CACHE:
        suite = _REGISTRY[name].loader()
        if not isinstance(suite, TaskSuite):
            raise TypeError(f"loader of suite {name!r} returned {type(suite).__name__}")
        _CACHE[name] = suite
    return _CACHE[name]


def clear_cache() -> None:
    """Forget every built suite (the next ``load_suite`` rebuilds it)."""
    _CACHE.clear()


def _builtin_loader(module: str, func: str) -> Callable[[], TaskSuite]:
    def load() -> TaskSuite:
        return getattr(importlib.import_module(module, __package__), func)()

    return load


register_suite("spatial", _builtin_loader(".spatial", "build_spatial_suite"),
               "cardinal-direction spatial reasoning, 2 premises, 8-way choice",
               "CCOBRA Ragni2018_carddir (49 participants, RT + accuracy)")
register_suite("relational", _builtin_loader(".relational", "build_relational_suite"),
               "left/right relational verification, 3 and 4 terms, true/false",
               "CCOBRA 3ps.csv + 4ps.csv (RT + accuracy)")
register_suite("syllogisms", _builtin_loader(".syllogisms", "build_syllogisms_suite"),
               "the 64 categorical syllogisms, conclusion or 'no valid conclusion'",
               "CCOBRA Ragni2016 (139 participants, accuracy only)")


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for modname in PLUGIN_MODULES:
        mod = scoring.import_optional(modname)
        if mod is None:
            continue  # plugin not installed / not built yet
        suite = getattr(mod, "SUITE", None)
        if isinstance(suite, str) and suite not in _REGISTRY:
            fn = getattr(mod, "build_suite", None) or getattr(mod, f"{suite}_suite", None)
            if callable(fn):
                register_suite(suite, fn, (mod.__doc__ or "").strip().splitlines()[0]
                               if mod.__doc__ else "", "synthetic")
        scoring.register_module_scorer(mod)


scoring._ON_UNKNOWN_TASK.append(_load_plugins)


def list_suites() -> list[str]:
    """Return the names of the registered suites (built-ins first, then plugins)."""
    _load_plugins()
    return list(_REGISTRY)


def _looks_like_path(s: str) -> bool:
    return any(sep in s for sep in ("/", "\\")) or s.lower().endswith(FILE_SUFFIXES)


def load_suite(name_or_path: str | Path) -> TaskSuite:
    """Return a registered suite by name, or a user CSV/JSONL items file as a suite.

    Built suites are cached in-process: treat them as read-only.
    """
    if isinstance(name_or_path, TaskSuite):
        return name_or_path
    s = str(name_or_path)
    if not isinstance(name_or_path, Path):
        _load_plugins()
        if s in _REGISTRY:
            return _build(s)
    p = Path(s)
    if isinstance(name_or_path, Path) or _looks_like_path(s) or p.exists():
        return load_items_file(p)
    raise InputError(f"unknown suite '{s}'",
                     fix=f"use one of {', '.join(list_suites())}, or a path to a .csv/.jsonl "
                         "items file")


def suite_info(name: str) -> SuiteEntry:
    """Return the registry entry (loader, description, norm source) of a named suite."""
    _load_plugins()
    if name not in _REGISTRY:
        raise InputError(f"unknown suite '{name}'", fix=f"use one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def summary_rows(suite: TaskSuite, norm_source: str = "") -> list[dict]:
    """Return one summary dict per task of ``suite`` (the rows of :func:`suite_summary`)."""
    rows = []
    for task in suite.tasks:
        items = [it for it in suite if it.task == task]
        measures = sorted({it.human.measure for it in items})
        rel = suite.reliability.get(task)
        rows.append({"suite": suite.name, "task": task, "items": len(items),
                     "norm_source": norm_source or suite.info.get("norm_source", suite.source),
                     "measure": "/".join(measures),
                     "reliability": None if rel is None or math.isnan(rel)
                     else round(float(rel), 3)})
    return rows


def suite_summary(names: list[str] | None = None) -> pd.DataFrame:
    """Return one row per (suite, task): suite, task, items, norm_source, measure, reliability."""
    rows = []
    for name in names or list_suites():
        entry = suite_info(name)
        rows.extend(summary_rows(load_suite(name), entry.norm_source))
    return pd.DataFrame(rows, columns=["suite", "task", "items", "norm_source", "measure",
                                       "reliability"])
