"""Model names across probe results: a name that does not match is an error, never an n/a.

:func:`check_names` is called by the verdict (and any step that joins results by model name)
before it looks anything up: every model a result is keyed by must be one the caller knows
(the teacher, the students, the alignment's models, ``model_names``), and every student must
appear in at least one result. Otherwise one :class:`~mimicry.errors.InputError` lists the
names each result has and the names it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mimicry.errors import InputError


def result_models(name: str, res: Any) -> set[str]:
    """Return the model names a probe result (or ``{unit: Result}`` dict) is keyed by."""
    if res is None:
        return set()
    if isinstance(res, Mapping):
        return {str(k) for k in res}
    t = getattr(res, "table", None)
    if t is None:
        return set()
    for col in {"planning": ("role", "model")}.get(name, ("model",)):
        if col in t.columns:
            return {str(v) for v in t[col].dropna().unique()}
    return set()


def check_names(teacher: str, students: Iterable[str], sources: Mapping[str, Any], *,
                known: Iterable[str] = (), model_names: Mapping[str, str] | None = None) -> None:
    """Raise :class:`InputError` when a result names a model the caller does not know.

    ``sources``: ``{probe name: Result or {model: Result} or None}``; ``known``: further model
    names that may appear (e.g. the base, from the alignment table).
    """
    students = list(students)
    names = dict(model_names or {})
    ok = {teacher, *students, *known, *names, *names.values()}
    have = {k: result_models(k, v) for k, v in sources.items() if v is not None}
    strange = {k: sorted(v - ok) for k, v in have.items() if v - ok}
    unseen = [s for s in students if have and not any({s, names.get(s, s)} & v
                                                      for v in have.values())]
    if strange or unseen:
        listed = "; ".join(f"{k}: {sorted(v)}" for k, v in have.items())
        what = []
        if strange:
            what.append("results name models the verdict was not given: "
                        + "; ".join(f"{k} has {v}" for k, v in strange.items()))
        if unseen:
            what.append(f"student(s) {unseen} appear in no result")
        raise InputError(
            f"{' and '.join(what)} (given teacher={teacher!r}, students={students}; the "
            f"results have {listed})",
            fix="key every probe's input by the same model names as the verdict's teacher "
                "and students (e.g. planning.run({'teacher': t, 'student_mastery': s})), or "
                "pass model_names={verdict name: name in the results}")
