"""Run every probe a verdict needs over a set of caches, then the verdict (one call).

``run_all(caches, teacher="teacher", students=[...], tasks=suite, alignment=align_dir,
ablation={"student": {"own": c1, "scrambled": c2}}, reliance=(own_traces, forced_traces))``
returns the verdict :class:`Result` whose ``.arrays["results"]`` holds every component result
(planning, difficulty per model, similarity per student, entropy, ablation per student,
reliance).
"""

from __future__ import annotations

from typing import Any

from mimicry.errors import InputError

from . import ablation as _ablation
from . import difficulty as _difficulty
from . import entropy as _entropy
from . import planning as _planning
from . import reliance as _reliance
from . import similarity as _similarity
from . import verdict as _verdict
from .base import Result


def run_all(caches: dict[str, Any], *, teacher: str, students: list[str] | None = None,
            tasks: Any = None, alignment: Any = None,
            ablation: dict[str, dict[str, Any]] | None = None,
            reliance: tuple | None = None,
            model_names: dict[str, str] | None = None,
            similarity_caches: dict[str, Any] | None = None, difficulty_site: str | None = None,
            n_perm: int | None = None, n_boot: int | None = None, seed: int = 0,
            progress_bar: bool = True) -> Result:
    """Return the verdict :class:`Result` after running planning, difficulty, similarity, entropy, ablation.

    ``caches``: ``{name: cache over its own traces}`` (teacher, students, base...).
    ``similarity_caches``: ``{student: cache of the student over the teacher's traces}``
    (compared at ``mean_reasoning``); without it, ``last_prompt`` of the own caches is used.
    ``reliance``: ``(own traces, answers after scrambled reasoning[, {"empty": answers after an
    empty reasoning, "filler": after a length-matched filler}])`` for ``probes.reliance``, or
    its :class:`Result` when already computed.
    ``n_perm``/``n_boot``: given to every probe that takes them; None keeps each probe's own
    default (the defaults ``mimicry run`` uses too, ``experiments.probing.PROBE_DEFAULTS``).
    """
    students = students or [k for k in caches if k != teacher]
    kw: dict[str, Any] = dict(seed=seed)
    if n_boot is not None:
        kw["n_boot"] = n_boot
    perm = {"n_perm": n_perm} if n_perm is not None else {}
    res: dict[str, Any] = {}
    skipped: dict[str, str] = {}

    def attempt(label, fn, *a, **k):
        # a probe the data refuses (e.g. a base model without reasoning) is noted, not fatal
        try:
            return fn(*a, **k)
        except InputError as e:
            skipped[label] = e.problem
            return None

    res["planning"] = attempt("planning", _planning.run, caches, tasks=tasks, teacher=teacher,
                              progress_bar=progress_bar, **perm, **kw)
    if tasks is not None:
        sites = [difficulty_site] if difficulty_site else None
        res["difficulty"] = {k: r for k, c in caches.items() if (r := attempt(
            f"difficulty:{k}", _difficulty.run, c, tasks=tasks, sites=sites, name=k,
            progress_bar=progress_bar, **perm, **kw)) is not None}
        with_entropy = {k: c for k, c in caches.items() if getattr(c, "segments", None)}
        if with_entropy:
            res["entropy"] = attempt("entropy", _entropy.run, with_entropy, tasks=tasks,
                                     **perm, **kw)
    res["similarity"] = {}
    for s in students:
        cross = (similarity_caches or {}).get(s)
        other, site = (cross, "mean_reasoning") if cross is not None else (caches[s], "last_prompt")
        r = attempt(f"similarity:{s}", _similarity.run, caches[teacher], other, site=site,
                    names=(teacher, s), progress_bar=progress_bar, **perm, **kw)
        if r is not None:
            res["similarity"][s] = r
    if ablation and tasks is not None:
        res["ablation"] = {s: r for s, conds in ablation.items() if (r := attempt(
            f"ablation:{s}", _ablation.run, conds, tasks=tasks, progress_bar=progress_bar,
            **kw)) is not None}
    if isinstance(reliance, Result):  # already computed (e.g. `mimicry probe reliance`)
        res["reliance"] = reliance
    elif reliance is not None:
        res["reliance"] = attempt("reliance", _reliance.run, *reliance[:2], tasks=tasks, **kw,
                                  **(reliance[2] if len(reliance) > 2 else {}))
    res = {k: v for k, v in res.items() if v is not None}
    v = _verdict.run(teacher=teacher, students=students, alignment=alignment,
                     planning=res.get("planning"), difficulty=res.get("difficulty"),
                     similarity=res.get("similarity"), entropy=res.get("entropy"),
                     ablation=res.get("ablation"), reliance=res.get("reliance"),
                     model_names=model_names, known_models=list(caches))
    v.arrays["results"] = res
    v.meta["skipped"] = skipped
    return v

