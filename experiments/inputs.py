"""What the probes get from a run folder, and the IPython entry :func:`from_run`.

:func:`run_inputs` is used by the probe stage of ``mimicry run`` and by :func:`from_run`, so a
run folder gives the same :class:`~experiments.probing.ProbeInputs` — the same caches, traces,
per-pair alignments and options — whichever way it is probed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from mimicry.errors import InputError

from .config import AlignStageConfig, ExperimentConfig, config_from_dict
from .layout import CONTROLS, RunFolder
from .probing import PROBES, ProbeInputs, probe_options, run_probes

RUN_RECORD_KEYS = ("source", "mimicry_version")  # what the runner adds to RUN/config.json


def alignment_folder(run: RunFolder, cfg_roles: dict[str, str], key: str) -> Path | None:
    """Return the alignment folder of the teacher/``key`` pair, or None when there is none.

    The first student and every control use ``alignment/`` (a control's pair is against the
    student, not the teacher, so it gets the per-model r of the main alignment); each further
    student its own ``alignment/pairs/<key>`` (written by the align stage).
    """
    first = next((k for k, r in cfg_roles.items() if r == "student"), None)
    d = run.alignment if key == first or cfg_roles.get(key) == "control" \
        else run.alignment_pair(key)
    return d if (d / "summary.json").exists() else None


def run_inputs(cfg: ExperimentConfig, run: RunFolder | str | Path, suite,
               options: dict[str, dict[str, Any]] | None = None) -> ProbeInputs:
    """Return the :class:`ProbeInputs` of a run folder under config ``cfg``."""
    run = RunFolder(run)
    roles = {m.key: m.role for m in cfg.models}
    opts = {**cfg.probes.options, **(options or {})}
    for name, o in opts.items():
        probe_options(name, o)  # unknown probes or options fail here, naming the valid ones
    reliance = {k: (run.traces(k), run.after_scrambled(k),
                    {c: run.after_control(k, c) for c in CONTROLS
                     if run.after_control(k, c).exists()})
                for k in roles if run.traces(k).exists() and run.after_scrambled(k).exists()}
    alignment = {k: alignment_folder(run, roles, k) for k, r in roles.items()
                 if r in ("student", "control")}
    return ProbeInputs(roles=roles, caches=run.cache_paths(), suite=suite, seed=cfg.seed,
                       reliance=reliance, alignment=alignment, options=opts, cfg=cfg, run=run)


def _config_of(run: RunFolder, teacher: str, base: str | None,
               students: list[str] | None, tasks: Any = None) -> ExperimentConfig:
    """Return the run's config (``config.json``), or one made from the caches found."""
    if run.config.exists():  # written by the runner: the config plus where it came from
        data = json.loads(run.config.read_text(encoding="utf-8"))
        for k in RUN_RECORD_KEYS:
            data.pop(k, None)
        return config_from_dict(data, source=str(run.config))
    own = [k for k in run.cache_paths() if "__" not in k]
    if teacher not in own:
        raise InputError(f"no cache for the teacher {teacher!r}", file=run.caches_dir,
                         fix="run the capture stage first")
    students = students or [k for k in own if k not in (teacher, base)]
    models = [{"key": teacher, "name": teacher, "role": "teacher"}]
    if base in own:
        models.append({"key": base, "name": base, "role": "base"})
    models += [{"key": s, "name": s, "role": "student"} for s in students]
    if tasks is None:
        raise InputError(f"{run.root} has no config.json, so its task suite is unknown",
                         fix="pass tasks= (a suite name, an items file or a TaskSuite)")
    suite = tasks if isinstance(tasks, str) else str(getattr(tasks, "name", None) or "tasks")
    return config_from_dict({"name": run.root.name, "models": models, "suites": [suite]},
                            source=str(run.root))


def from_run(run: str | Path, *, teacher: str = "teacher", base: str | None = "base",
             tasks: Any = None, students: list[str] | None = None,
             options: dict[str, dict[str, Any]] | None = None,
             alignment: dict[str, Any] | None = None, **common: Any):
    """Return the verdict (``probes.base.Result``) of a run folder, one row set per student.

    The same probes, defaults (:data:`~experiments.probing.PROBE_DEFAULTS`) and glue as the
    probe stage of ``mimicry run``. With ``RUN/config.json`` the config's models, seed, suites
    and ``[probes] options`` are used; without it, the own caches in ``RUN/caches`` name the
    models (``teacher``, ``base``, the rest students). Alignments come from the align stage's
    folders; where there are none (a folder not made by ``mimicry run``), each student is
    aligned with the teacher (and base) here, with the align stage's settings updated by
    ``alignment`` (e.g. ``{"n_boot": 2000}``). ``options``: ``{probe: {option: value}}``;
    ``common``: options given to every probe that takes them (``n_boot=500``); an option no
    probe takes is an :class:`InputError`. ``tasks``: the suite (name, file or TaskSuite).
    ``.arrays["results"]`` holds every probe's Results, ``.arrays["units"]`` the verdict per pair.
    """
    from mimicry.tasks.registry import load_suite
    from probes.base import Result

    folder = RunFolder(run)
    cfg = _config_of(folder, teacher, base, students, tasks)
    if tasks is not None:
        suite = load_suite(tasks)
    elif cfg.suites:
        from .support import load_suites

        suite = load_suites(cfg)
    else:
        suite = None
    names = [n for n in (cfg.probes.names or PROBES)]
    opts = {n: dict(o) for n, o in (options or {}).items()}
    for n, o in common_options(names, common).items():
        opts[n] = {**o, **opts.get(n, {})}
    inp = run_inputs(cfg, folder, suite, opts)
    if suite is not None and not any(inp.alignment.values()):
        inp.alignment, trace_names = align_pairs(cfg, folder, suite, alignment)
        if any(k != n for k, n in trace_names.items()):
            inp.model_names = trace_names
    out = run_probes(names, inp)
    units, note = out.get("verdict", ([], "the verdict is not among the config's probes"))
    if not units:
        raise InputError(f"no verdict for {folder.root}: {note}")
    import pandas as pd

    tables = [r.table for _, r in units]
    calls = [r.tables["calls"] for _, r in units]
    v = Result("verdict", pd.concat(tables, ignore_index=True),
               tables={"calls": pd.concat(calls, ignore_index=True)},
               meta={"units": {u: r.meta for u, r in units}, "notes": {
                   n: note for n, (_, note) in out.items() if note}})
    v.arrays["results"] = inp.results
    v.arrays["units"] = dict(units)
    v.meta["skipped"] = {n: note for n, (_, note) in out.items() if note}
    return v


def common_options(names: list[str], common: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return ``{probe: the common options its run takes}``; one no probe takes is an error."""
    import inspect

    from .probing import probe_functions

    if not common:
        return {}
    fns = probe_functions()
    out: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for n in names:
        params = inspect.signature(fns[n]).parameters
        mine = {k: v for k, v in common.items() if k in params and k not in _glue_keys(n)}
        used |= set(mine)
        if mine:
            probe_options(n, mine)
            out[n] = mine
    unused = sorted(set(common) - used)
    if unused:
        raise InputError(f"no probe of {names} takes the option(s) {unused}",
                         fix="use options={probe: {...}} for one probe's options")
    return out


def _glue_keys(name: str) -> set[str]:
    from .probing import _SET_BY_GLUE

    return _SET_BY_GLUE[name]


def align_pairs(cfg: ExperimentConfig, run: RunFolder, suite,
                overrides: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Return ``({student: AlignmentResult}, {key: model name in its traces})``.

    Each student is aligned with the teacher (and the base, when it has traces).

    Settings: the config's ``[alignment]`` updated by ``overrides`` (unknown keys are an
    :class:`InputError` naming the valid ones).
    """
    from mimicry.alignment import align
    from mimicry.traces import read_traces

    valid = [f.name for f in dataclasses.fields(AlignStageConfig)]
    bad = sorted(set(overrides or {}) - set(valid))
    if bad:
        raise InputError(f"alignment option(s) {bad} do not exist", fix=f"use some of {valid}")
    a = dataclasses.replace(cfg.alignment, **(overrides or {}))
    roles = cfg.roles()
    traces = {m.key: read_traces(run.traces(m.key)) for m in cfg.models
              if run.traces(m.key).exists()}
    teacher, base = roles.get("teacher"), roles.get("base")
    out: dict[str, Any] = {}
    names = {k: ts[0].model for k, ts in traces.items() if ts}
    for m in cfg.models:
        if m.role != "student" or m.key not in names or teacher not in names:
            continue
        keys = [teacher, m.key] + ([base] if base in names else [])
        pair = {"teacher": names[teacher], "student": names[m.key]}
        if base in names:
            pair["base"] = names[base]
        out[m.key] = align([t for k in keys for t in traces[k]], suite, roles=pair,
                           seed=cfg.seed, n_boot=a.n_boot, n_perm=a.n_perm,
                           min_items=a.min_items, exclude_truncated=a.exclude_truncated,
                           cooks=a.cooks, cost=a.cost, progress=False)
    return out, names
