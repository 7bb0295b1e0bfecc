"""The experiment-config schema: types, ranges and allowed characters, one line per error.

:func:`validate_config` checks TOML-shaped data against the dataclasses of
:mod:`experiments.config` (field types read from their annotations) plus the ranges in
``RANGES``, and raises one :class:`ConfigError` listing *every* problem, one line each.
Model keys and the experiment name become file and folder names, so they must be plain
identifiers (no ``/``, no ``..``); :func:`inside_run` resolves every output path of a run and
refuses one that would land outside the run folder.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

from mimicry.errors import InputError

KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
DTYPES = ("auto", "float32", "fp32", "float", "float16", "fp16", "half", "bfloat16", "bf16")


class ConfigError(InputError):
    """Several problems in one config, rendered one per line (``FILE: problem; fix``)."""

    def __init__(self, errors: list[str], *, file: str | Path | None = None) -> None:
        self.errors = errors
        super().__init__(errors[0] if len(errors) == 1 else f"{len(errors)} errors",
                         file=file)

    def render(self) -> str:
        """Return one line per error, each naming the file."""
        where = f"{self.file}: " if self.file else ""
        return "\n".join(where + " ".join(e.split("\n")) for e in self.errors)


def _pos(v) -> bool:
    return v > 0


def _nonneg(v) -> bool:
    return v >= 0


# (section, key) -> (test, what is expected); section "" = top level, "models" = each model
RANGES: dict[tuple[str, str], tuple[typing.Callable[[Any], bool], str]] = {
    ("", "seed"): (_nonneg, "a whole number >= 0"),
    ("", "gpus"): (_pos, "a whole number >= 1"),
    ("", "max_items_per_task"): (_nonneg, "a whole number >= 1 (or leave it out)"),
    ("", "name"): (lambda v: bool(NAME_RE.match(v)) and ".." not in v,
                   "letters, digits, '_', '-', '.' (it names the output folder; no '/' or '..')"),
    ("", "suites"): (lambda v: len(v) > 0, "a non-empty list of suite names"),
    ("models", "key"): (lambda v: bool(KEY_RE.match(v)),
                        "a plain identifier: a letter, then letters, digits, '_' or '-' (it "
                        "names files in the run folder)"),
    ("models", "name"): (lambda v: bool(v.strip()), "a hub id, local folder or organism:ROLE"),
    ("models", "role"): (lambda v: v in ("teacher", "student", "base", "control"),
                         "teacher, student, base or control"),
    ("models", "dtype"): (lambda v: v.lower() in DTYPES, "float32, bfloat16, float16 or auto"),
    ("models", "max_new_tokens"): (_pos, "a whole number >= 1"),
    ("generation", "backend"): (lambda v: v in ("hf", "openai"), "hf or openai"),
    ("generation", "max_new_tokens"): (_pos, "a whole number >= 1"),
    ("generation", "batch_size"): (_pos, "a whole number >= 1"),
    ("generation", "temperature"): (lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
    ("generation", "seed"): (_nonneg, "a whole number >= 0"),
    ("generation", "concurrency"): (_pos, "a whole number >= 1"),
    ("alignment", "n_boot"): (_pos, "a whole number >= 1"),
    ("alignment", "n_perm"): (_nonneg, "a whole number >= 0"),
    ("alignment", "min_items"): (_pos, "a whole number >= 1"),
    ("alignment", "cost"): (lambda v: v in ("reasoning_tokens", "total_tokens"),
                            "reasoning_tokens or total_tokens"),
    ("capture", "entropy"): (lambda v: v in ("exact", "sampled", "off"), "exact, sampled or off"),
    ("capture", "entropy_samples"): (_pos, "a whole number >= 1"),
    ("capture", "store_dtype"): (lambda v: v in ("float16", "float32"), "float16 or float32"),
    ("capture", "batch_tokens"): (_pos, "a whole number >= 1"),
    ("intervene", "token_rows"): (_pos, "a whole number >= 1"),
}


def _type_ok(v: Any, tp: Any) -> bool:
    """Return whether TOML value ``v`` fits annotation ``tp`` (bool is not a number here)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(v, a) for a in typing.get_args(tp))
    if tp is type(None):
        return v is None
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    if origin is list:
        (a,) = typing.get_args(tp) or (Any,)
        return isinstance(v, list) and all(_type_ok(x, a) for x in v)
    if origin is dict:
        k, a = typing.get_args(tp) or (Any, Any)
        return isinstance(v, dict) and all(_type_ok(x, k) and _type_ok(y, a)
                                           for x, y in v.items())
    if dataclasses.is_dataclass(tp):
        return isinstance(v, dict)
    return True


def _describe(tp: Any) -> str:
    """Return the annotation ``tp`` in words (``int | None`` -> "a whole number or none")."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('a ')}s"
    if origin is dict:
        return "a table"
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false",
            type(None): "none (leave it out)"}.get(tp, str(tp))


def _check(cls, data: dict, section: str, where: str, errors: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    for k, v in data.items():
        if k not in hints or k == "source" or dataclasses.is_dataclass(hints[k]):
            continue  # unknown keys are reported by config_from_dict, sections below
        if k == "models" and section == "":
            continue
        if not _type_ok(v, hints[k]):
            errors.append(f"{where}{k} is {v!r} ({type(v).__name__}); expected "
                          f"{_describe(hints[k])}")
            continue
        rule = RANGES.get((section, k))
        if rule is not None and v is not None and not rule[0](v):
            errors.append(f"{where}{k} is {v!r}; expected {rule[1]}")


def validate_config(data: dict[str, Any], source: str, classes: dict[str, type]) -> None:
    """Raise :class:`ConfigError` listing every type/range/character error in ``data``.

    ``classes``: the config's dataclasses, ``{"experiment": ..., "models": ..., section: ...}``
    (passed in by :mod:`experiments.config`, so this module does not import it back).
    """
    errors: list[str] = []
    _check(classes["experiment"], data, "", "", errors)
    sections = {k: v for k, v in classes.items() if k not in ("experiment", "models")}
    for sec, cls in sections.items():
        if sec in data:
            if not isinstance(data[sec], dict):
                errors.append(f"[{sec}] must be a table, got {data[sec]!r}")
            else:
                _check(cls, data[sec], sec, f"[{sec}] ", errors)
    models = data.get("models")
    if models is not None and not isinstance(models, list):
        errors.append("models must be [[models]] tables")
        models = []
    for i, m in enumerate(models or [], start=1):
        if not isinstance(m, dict):
            errors.append(f"[[models]] #{i} must be a table")
            continue
        label = f"[[models]] #{i}" + (f" ({m['key']})" if isinstance(m.get("key"), str) else "")
        _check(classes["models"], {"key": m.get("key", m.get("role")), **m}, "models",
               f"{label} ", errors)
    if errors:
        raise ConfigError(errors, file=source)


def inside_run(run: str | Path, *parts: str) -> Path:
    """Return ``run/parts...``, refusing a path that resolves outside the run folder."""
    base = Path(run).resolve()
    p = base.joinpath(*parts).resolve()
    if p != base and base not in p.parents:
        raise InputError(f"output path {'/'.join(parts)!r} would be written outside the run "
                         f"folder {run}", fix="model keys must be plain identifiers")
    return Path(run).joinpath(*parts)
