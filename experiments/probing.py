"""Probes on a run: ONE set of probe defaults and one way to run them, for every entry point.

``mimicry run`` (the probe stage), ``mimicry probe ...`` and the IPython entry
:func:`from_run` all build :class:`ProbeInputs` (which caches, traces and alignments there are)
and call :func:`run_probes`, which calls ``probes.<name>.run(...)`` once per model or per
teacher/student pair with :data:`PROBE_DEFAULTS` updated by the user's options — so the same
caches give the same numbers whichever way they are probed. Options a probe does not take are
an :class:`InputError` naming them and the valid ones (:func:`probe_options`).

Results are written by :func:`save_units` (= :func:`probes.results.save_results`, the one
format that ``Result.save`` writes and ``load_run`` reads): ``<name>.csv`` (all units stacked,
``unit`` column), ``<name>_<table>.csv``, one figure per unit ``<name>__<unit>.png/.pdf`` and
``<name>.json`` (probe, units, seed, each unit's meta).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicry.errors import InputError, MimicryError
from probes.results import save_results

from .layout import RunFolder

log = logging.getLogger(__name__)

save_units = save_results  # the one format of probes.results, under the entry points' name

Units = list[tuple[str, Any]]  # (unit label, probe Result)

# The one set of defaults (resamples, folds) for every entry point; [probes] options in a
# config, or the flags of `mimicry probe`, override them per probe.
PROBE_DEFAULTS: dict[str, dict[str, Any]] = {
    "difficulty": {"n_folds": 5, "n_perm": 100, "n_boot": 1000},
    "entropy": {"n_perm": 1000, "n_boot": 1000},
    "similarity": {"n_perm": 100, "n_boot": 100},
    "planning": {"n_folds": 5, "n_perm": 100, "n_boot": 1000},
    "ablation": {"n_folds": 5, "n_boot": 1000},
    "reliance": {"n_boot": 2000},
    # the causal and computation probes (experiments.mechanistic); steer and patch also take
    # max_new_tokens, which defaults to the run's generation budget of the model
    "compute": {"target": "answer", "n_folds": 5, "n_perm": 100, "n_boot": 1000},
    "steer": {"alphas": (-1.0, -0.5, 0.5, 1.0), "n_random": 20, "train_frac": 0.5,
              "n_boot": 1000},
    "patch": {"n_pairs": 24, "n_boot": 1000},
    "verdict": {},
}
PROBES = tuple(PROBE_DEFAULTS)
# What the glue passes itself (from the run), so it is not an option.
_SET_BY_GLUE = {
    "difficulty": {"cache", "tasks", "seed", "name"},
    "entropy": {"caches", "tasks", "seed"},
    "similarity": {"teacher", "student", "site", "seed", "names"},
    "planning": {"caches", "tasks", "teacher", "transfer", "seed"},
    "ablation": {"conditions", "tasks", "reference", "seed"},
    "reliance": {"own", "forced", "tasks", "seed", "empty", "filler"},
    "compute": {"cache", "tasks", "seed", "name"},
    "steer": {"model", "cache", "tasks", "teacher_cache", "seed", "name"},
    "patch": {"model", "tasks", "seed", "name"},
    "verdict": {"teacher", "students", "alignment", "planning", "difficulty", "similarity",
                "entropy", "ablation", "reliance", "compute", "steer", "patch",
                "known_models"},
}


def probe_functions() -> dict[str, Callable]:
    """Return ``{probe name: probes.<name>.run}``."""
    from probes import (
        ablation,
        compute,
        difficulty,
        entropy,
        patch,
        planning,
        reliance,
        similarity,
        steer,
        verdict,
    )

    return {"difficulty": difficulty.run, "entropy": entropy.run, "similarity": similarity.run,
            "planning": planning.run, "ablation": ablation.run, "reliance": reliance.run,
            "compute": compute.run, "steer": steer.run, "patch": patch.run,
            "verdict": verdict.run}


def probe_options(name: str, overrides: dict[str, Any] | None = None,
                  where: str = "[probes] options") -> dict[str, Any]:
    """Return :data:`PROBE_DEFAULTS` of ``name`` updated by ``overrides`` (checked).

    An unknown probe, or an option its ``run`` does not take, is an :class:`InputError`
    naming it and the valid ones.
    """
    if name not in PROBE_DEFAULTS:
        raise InputError(f"{where}: unknown probe {name!r}", fix=f"use one of {list(PROBES)}")
    overrides = dict(overrides or {})
    if overrides:
        params = inspect.signature(probe_functions()[name]).parameters
        valid = sorted(k for k, p in params.items() if p.kind is p.KEYWORD_ONLY
                       and k not in _SET_BY_GLUE[name])
        bad = sorted(k for k in overrides if k not in valid)
        if bad:
            raise InputError(f"{where}: probe {name!r} has no option(s) {bad}",
                             fix=f"valid options of {name}: {', '.join(valid)}")
    return {**PROBE_DEFAULTS[name], **overrides}


@dataclass
class ProbeInputs:
    """What the probes can read: caches by stem, traces, alignments, the suite, the options.

    Cache stems follow :class:`RunFolder`: ``key`` (own traces), ``key__on_<teacher>`` and
    ``key__scrambled``. ``roles``: ``{key: role}`` in order; ``reliance``: ``{key: (own traces,
    answers after them scrambled[, {"empty"|"filler": answers after that control}])}``;
    ``alignment``: ``{student key: folder or result}``.
    """

    roles: dict[str, str]
    caches: dict[str, Any]
    suite: Any = None
    seed: int = 0
    reliance: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    alignment: dict[str, Any] = field(default_factory=dict)
    model_names: dict[str, str] | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    cfg: Any = None  # the ExperimentConfig, when probing a run (compute, steer, patch need it)
    run: RunFolder | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    _open: dict[str, Any] = field(default_factory=dict)

    @property
    def teacher(self) -> str | None:
        """Return the teacher's key, or None."""
        return next((k for k, r in self.roles.items() if r == "teacher"), None)

    def cache(self, stem: str):
        """Return the cache ``stem``, opened on first use (paths) or as given (objects)."""
        if stem not in self._open:
            c = self.caches[stem]
            if isinstance(c, (str, Path)):
                from mimicry.store import open_cache

                c = open_cache(c)
            self._open[stem] = c
        return self._open[stem]

    def own(self) -> list[str]:
        """Return the model keys (in order) that have a cache over their own traces."""
        return [k for k in self.roles if k in self.caches]

    def pairs(self) -> list[str]:
        """Return the students/controls that can be compared with the teacher."""
        t = self.teacher
        if not t or t not in self.caches:
            return []
        return [k for k, r in self.roles.items() if r in ("student", "control") and k in self.caches]

    def opts(self, name: str) -> dict[str, Any]:
        """Return the options of probe ``name`` (defaults + overrides)."""
        return probe_options(name, self.options.get(name))


def _unit(inp: ProbeInputs, unit: str, fn: Callable, *args: Any, **kw: Any) -> Units:
    """Return ``[(unit, fn(...))]``, or ``[]`` with the reason noted if the data do not allow it.

    A user-level problem with one model (e.g. no usable labels) must not hide the others; a
    bug (any other exception) still fails the whole probe.
    """
    try:
        return [(unit, fn(*args, **kw))]
    except MimicryError as e:
        inp.skipped.append(f"{unit} not computed ({e.render()})")
        return []


def _difficulty(fn: Callable, inp: ProbeInputs) -> Units:
    return [u for k in inp.own() for u in _unit(inp, k, fn, inp.cache(k), tasks=inp.suite,
                                                 seed=inp.seed, name=k, **inp.opts("difficulty"))]


def _similarity(fn: Callable, inp: ProbeInputs) -> Units:
    out = []
    for k in inp.pairs():
        # Same inputs for both: the student reading the teacher's traces when captured,
        # else the prompts' last state (identical prompts) from each model's own cache.
        cross = RunFolder.cross_stem(k, inp.teacher)
        student, site = (cross, "mean_reasoning") if cross in inp.caches else (k, "last_prompt")
        out += _unit(inp, k, fn, inp.cache(inp.teacher), inp.cache(student), site=site,
                     seed=inp.seed, names=(inp.teacher, k), **inp.opts("similarity"))
    return out


def _all_models(inp: ProbeInputs, fn: Callable, **kw: Any) -> Units:
    """Return ``[("all", fn({key: cache}, ...))]`` over every model the data allow.

    If the joint call is refused (a user-level problem with some model), each model is tried
    alone and the ones that fail are left out, with their reason noted.
    """
    caches = {k: inp.cache(k) for k in inp.own()}
    try:
        return [("all", fn(caches, **kw))]
    except MimicryError:
        pass
    alone = {**kw, "transfer": False} if "transfer" in kw else kw  # no teacher when alone
    good = {k: c for k, c in caches.items() if _unit(inp, k, fn, {k: c}, **alone)}
    return [("all", fn(good, **kw))] if good else []


def _entropy(fn: Callable, inp: ProbeInputs) -> Units:
    return _all_models(inp, fn, tasks=inp.suite, seed=inp.seed, **inp.opts("entropy"))


def _planning(fn: Callable, inp: ProbeInputs) -> Units:
    teacher = inp.teacher if inp.teacher in inp.own() else None
    who = {"teacher": teacher} if teacher is not None else {}
    return _all_models(inp, fn, tasks=inp.suite, transfer=teacher is not None, seed=inp.seed,
                       **who, **inp.opts("planning"))


def _ablation(fn: Callable, inp: ProbeInputs) -> Units:
    out = []
    for k in inp.pairs():
        conds = {"own": k, "teacher": RunFolder.cross_stem(k, inp.teacher),
                 "scrambled": RunFolder.scrambled_stem(k)}
        conds = {c: inp.cache(stem) for c, stem in conds.items() if stem in inp.caches}
        if len(conds) >= 2:
            out += _unit(inp, k, fn, conds, tasks=inp.suite, reference="own", seed=inp.seed,
                         **inp.opts("ablation"))
    return out


def _reliance(fn: Callable, inp: ProbeInputs) -> Units:
    """Return ``[("all", reliance over every model with own traces and answers after them)]``.

    Rows are relabelled with the model keys (imported traces may carry another model name).
    If the joint call is refused (e.g. one model has too few items), each model is tried alone
    and the ones that fail are left out, with their reason noted.
    """
    from dataclasses import replace

    from mimicry.traces import read_traces

    def rows(x, key):
        return [replace(t, model=key) for t in (read_traces(x) if isinstance(x, (str, Path))
                                                  else x)]

    pairs = {k: (rows(v[0], k), rows(v[1], k),
                 {c: rows(f, k) for c, f in (v[2] if len(v) > 2 else {}).items()})
             for k, v in inp.reliance.items()}
    if not pairs:
        inp.skipped.append("no answers after scrambled reasoning (the reliance stage did not "
                           "run or skipped every model)")
        return []
    kw = dict(tasks=inp.suite, seed=inp.seed, **inp.opts("reliance"))

    def joint(keys: list[str]) -> tuple[tuple, dict]:
        """Own and forced rows of ``keys``, and the empty/filler controls some of them have."""
        ctrl = {c: [t for k in keys for t in pairs[k][2].get(c, [])] for c in ("empty", "filler")}
        return (([t for k in keys for t in pairs[k][0]], [t for k in keys for t in pairs[k][1]]),
                {c: v for c, v in ctrl.items() if v})

    try:
        args, ctrl = joint(list(pairs))
        return [("all", fn(*args, **ctrl, **kw))]
    except MimicryError:
        pass
    def one(k: str):
        args, ctrl = joint([k])
        return _unit(inp, k, fn, *args, **ctrl, **kw)

    good = [k for k in pairs if one(k)]
    if not good:
        return []
    args, ctrl = joint(good)
    return [("all", fn(*args, **ctrl, **kw))]


def _verdict(fn: Callable, inp: ProbeInputs) -> Units:
    """One verdict per student/control, with that pair's alignment and the probes run so far."""
    if not inp.teacher:
        return []
    r = inp.results
    per = {name: dict(r[name]) for name in ("difficulty", "similarity", "ablation", "compute",
                                            "steer", "patch") if name in r}
    one = {name: r[name].get("all") for name in ("planning", "entropy", "reliance") if name in r}
    opts = inp.opts("verdict")
    if inp.model_names is not None:
        opts.setdefault("model_names", inp.model_names)
    out = []
    for k in inp.pairs():
        out += _unit(inp, k, fn, teacher=inp.teacher, students=[k],
                     alignment=inp.alignment.get(k), known_models=list(inp.roles), **per,
                     **one, **opts)
    return out


def _mech(name: str) -> Callable[[Callable, ProbeInputs], Units]:
    def adapter(fn: Callable, inp: ProbeInputs) -> Units:
        from . import mechanistic

        return getattr(mechanistic, f"{name}_units")(fn, inp, _unit)
    return adapter


ADAPTERS: dict[str, Callable[[Callable, ProbeInputs], Units]] = {
    "difficulty": _difficulty, "entropy": _entropy, "similarity": _similarity,
    "planning": _planning, "ablation": _ablation, "reliance": _reliance,
    "compute": _mech("compute"), "steer": _mech("steer"), "patch": _mech("patch"),
    "verdict": _verdict,
}
TRACE_PROBES = ("reliance",)  # probes that read traces, not caches


def run_probe(name: str, inp: ProbeInputs) -> tuple[Units, str]:
    """Return ``(units, note)`` of probe ``name`` over ``inp`` (``[]`` and why when none).

    The Results are also kept in ``inp.results[name]``, so the verdict can use the probes
    run before it.
    """
    fn = probe_functions()[name]
    inp.skipped = []
    if not inp.caches and name not in TRACE_PROBES:
        return [], "no caches (capture did not run)"
    try:
        units = ADAPTERS[name](fn, inp)
    except MimicryError as e:  # e.g. too few usable items: say so, keep the other probes
        return [], f"failed: {e.render()}"
    except Exception as e:  # a bug in a probe must not lose the rest of the run: show it
        log.exception("probe %s failed", name)
        first = (str(e).splitlines() or [""])[0][:200]
        return [], f"failed with {type(e).__name__}: {first} (traceback above; a bug)"
    if not units:
        why = "; ".join(inp.skipped) or "nothing to compare (needs a teacher and a student " \
            "with caches)"
        return [], f"failed: {why}" if inp.skipped else why
    inp.results[name] = dict(units)
    return units, "; ".join(inp.skipped)


def run_probes(names: list[str], inp: ProbeInputs) -> dict[str, tuple[Units, str]]:
    """Return ``{name: (units, note)}`` for the probes ``names``, run in order."""
    return {name: run_probe(name, inp) for name in names}


def save_figure(fig, stem: Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` (150 dpi) and ``stem.pdf``, cropped; return the paths."""
    from mimicry.plots import save_figure as _save

    return _save(fig, stem, png_dpi=150, tight=True)
