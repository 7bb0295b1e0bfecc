"""Glue between the run folder and the ``probes`` package (looked up at call time).

``run_probe(name, cfg, run, suite)`` opens what probe ``name`` needs from the run folder,
calls ``probes.<name>.run(...)`` once per model or per teacher/student pair (``reliance``:
once over every model's own traces and its answers after them scrambled), and writes
``RUN/probes/<name>.csv`` (all units stacked, with a ``unit`` column), the extra tables as
``<name>_<table>.csv``, and one figure per unit ``<name>__<unit>.png/.pdf``. The verdict
is given the Results of the probes run before it in the same stage. ``mimicry``
does not import ``probes`` at import time; a probe that is not installed (or whose glue is
not written) is reported as not available, never faked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mimicry.errors import MimicryError
from mimicry.io import atomic_path, atomic_write_json

from .config import ExperimentConfig
from .support import call, lookup, reliance_paths, traces_path

if TYPE_CHECKING:
    import probes.base

Units = list[tuple[str, Any]]  # (unit label, probe Result)
TRACE_PROBES = ("reliance",)  # probes that read traces, not caches


def cache_paths(run: Path) -> dict[str, Path]:
    """Return ``{cache stem: path}`` for every ``RUN/caches/*.h5``."""
    d = run / "caches"
    return {p.stem: p for p in sorted(d.glob("*.h5"))} if d.exists() else {}


class _Ctx:
    """What adapters need: config, run folder, suite, and caches opened on demand."""

    def __init__(self, cfg: ExperimentConfig, run: Path, suite) -> None:
        self.cfg, self.run, self.suite = cfg, run, suite
        self.paths = cache_paths(run)
        self._open: dict[str, Any] = {}
        self.teacher = cfg.roles().get("teacher")
        self.opts: dict[str, Any] = {}
        self.results: dict[str, dict[str, Any]] = {}  # probe -> {unit: Result}, this stage
        self.skipped: list[str] = []  # units the data did not allow, with the reason

    def cache(self, stem: str):
        if stem not in self._open:
            from mimicry.store import open_cache

            self._open[stem] = open_cache(self.paths[stem])
        return self._open[stem]

    def own(self) -> list[str]:
        """Return the model keys (config order) that have a cache over their own traces."""
        return [m.key for m in self.cfg.models if m.key in self.paths]

    def pairs(self) -> list[str]:
        """Return the students/controls that can be compared with the teacher."""
        if not self.teacher or self.teacher not in self.paths:
            return []
        return [m.key for m in self.cfg.models
                if m.role in ("student", "control") and m.key in self.paths]


def _unit(ctx: _Ctx, unit: str, fn: Callable, *args: Any, **kw: Any) -> list[tuple[str, Any]]:
    """Return ``[(unit, fn(...))]``, or ``[]`` with the reason noted if the data do not allow it.

    A user-level problem with one model (e.g. no usable labels) must not hide the others; a
    bug (any other exception) still fails the whole probe.
    """
    try:
        return [(unit, call(fn, *args, **kw))]
    except MimicryError as e:
        ctx.skipped.append(f"{unit} not computed ({e.render()})")
        return []


def _difficulty(fn: Callable, ctx: _Ctx) -> Units:
    return [u for k in ctx.own() for u in _unit(ctx, k, fn, ctx.cache(k), tasks=ctx.suite,
                                                 seed=ctx.cfg.seed, name=k, **ctx.opts)]


def _similarity(fn: Callable, ctx: _Ctx) -> Units:
    out = []
    for k in ctx.pairs():
        # Same inputs for both: the student reading the teacher's traces when captured,
        # else the prompts' last state (identical prompts) from each model's own cache.
        cross = f"{k}__on_{ctx.teacher}"
        student, site = (cross, "mean_reasoning") if cross in ctx.paths else (k, "last_prompt")
        out += _unit(ctx, k, fn, ctx.cache(ctx.teacher), ctx.cache(student), site=site,
                     seed=ctx.cfg.seed, names=(ctx.teacher, k), **ctx.opts)
    return out


def _all_models(ctx: _Ctx, fn: Callable, **kw: Any) -> Units:
    """Return ``[("all", fn({key: cache}, ...))]`` over every model the data allow.

    If the joint call is refused (a user-level problem with some model), each model is tried
    alone and the ones that fail are left out, with their reason noted.
    """
    caches = {k: ctx.cache(k) for k in ctx.own()}
    try:
        return [("all", call(fn, caches, **kw))]
    except MimicryError:
        pass
    alone = {**kw, "transfer": False} if "transfer" in kw else kw  # no teacher when alone
    good = {}
    for k, c in caches.items():
        if _unit(ctx, k, fn, {k: c}, **alone):
            good[k] = c
    return [("all", call(fn, good, **kw))] if good else []


def _entropy(fn: Callable, ctx: _Ctx) -> Units:
    return _all_models(ctx, fn, tasks=ctx.suite, seed=ctx.cfg.seed, **ctx.opts)


def _planning(fn: Callable, ctx: _Ctx) -> Units:
    teacher = ctx.teacher if ctx.teacher in ctx.own() else None
    return _all_models(ctx, fn, tasks=ctx.suite, teacher=teacher, transfer=teacher is not None,
                       seed=ctx.cfg.seed, **ctx.opts)


def _ablation(fn: Callable, ctx: _Ctx) -> Units:
    out = []
    for k in ctx.pairs():
        conds = {"own": k, "teacher": f"{k}__on_{ctx.teacher}", "scrambled": f"{k}__scrambled"}
        conds = {c: ctx.cache(stem) for c, stem in conds.items() if stem in ctx.paths}
        if len(conds) >= 2:
            out += _unit(ctx, k, fn, conds, tasks=ctx.suite, reference="own",
                         seed=ctx.cfg.seed, **ctx.opts)
    return out


def _reliance(fn: Callable, ctx: _Ctx) -> Units:
    """Return ``[("all", reliance over every model with own traces and answers after them)]``.

    Rows are relabelled with the model keys (imported traces may carry another model name).
    If the joint call is refused (e.g. one model has too few items), each model is tried alone
    and the ones that fail are left out, with their reason noted.
    """
    from dataclasses import replace

    from mimicry.traces import read_traces

    pairs = {}
    for m in ctx.cfg.models:
        own, forced = traces_path(ctx.run, m.key), reliance_paths(ctx.run, m.key)[1]
        if own.exists() and forced.exists():
            pairs[m.key] = tuple([replace(t, model=m.key) for t in read_traces(p)]
                                 for p in (own, forced))
    if not pairs:
        ctx.skipped.append("no answers after scrambled reasoning (the reliance stage did not "
                           "run or skipped every model)")
        return []
    kw = dict(tasks=ctx.suite, seed=ctx.cfg.seed, **ctx.opts)

    def joint(keys: list[str]):
        return ([t for k in keys for t in pairs[k][0]], [t for k in keys for t in pairs[k][1]])

    try:
        return [("all", call(fn, *joint(list(pairs)), **kw))]
    except MimicryError:
        pass
    good = [k for k in pairs if _unit(ctx, k, fn, *joint([k]), **kw)]
    return [("all", call(fn, *joint(good), **kw))] if good else []


def _verdict(fn: Callable, ctx: _Ctx) -> Units:
    """One verdict per student/control, with that pair's alignment and the probes run so far."""
    if not ctx.teacher:
        return []
    r = ctx.results
    per = {name: dict(r[name]) for name in ("difficulty", "similarity", "ablation", "compute",
                                            "steer", "patch") if name in r}
    one = {name: r[name].get("all") for name in ("planning", "entropy", "reliance")
           if name in r}
    first = ctx.cfg.roles().get("student")
    out = []
    for k in ctx.pairs():
        # a student's own pair alignment; a control's pair is against the student, not the
        # teacher, so it gets the main alignment (per-model r; no teacher→control Δr)
        role = ctx.cfg.model(k).role
        align_dir = ctx.run / "alignment" if k == first or role == "control" \
            else ctx.run / "alignment" / "pairs" / k
        out += _unit(ctx, k, fn, teacher=ctx.teacher, students=[k],
                     alignment=align_dir if (align_dir / "summary.json").exists() else None,
                     known_models=[m.key for m in ctx.cfg.models], **per, **one, **ctx.opts)
    return out


def _mech(name: str) -> Callable[[Callable, _Ctx], Units]:
    def adapter(fn: Callable, ctx: _Ctx) -> Units:
        from . import mechanistic

        return getattr(mechanistic, f"{name}_units")(fn, ctx)
    return adapter


ADAPTERS: dict[str, Callable[[Callable, _Ctx], Units]] = {
    "compute": _mech("compute"),
    "steer": _mech("steer"),
    "patch": _mech("patch"),
    "ablation": _ablation,
    "reliance": _reliance,
    "verdict": _verdict,
    "planning": _planning,
    "difficulty": _difficulty,
    "entropy": _entropy,
    "similarity": _similarity,
}


def run_probe(name: str, cfg: ExperimentConfig, run: Path, suite,
              results: dict[str, dict[str, Any]] | None = None) -> tuple[bool, str]:
    """Run probe ``name`` over the run folder; return ``(finished, note)``.

    ``results`` collects ``{probe: {unit: Result}}`` across calls of one probe stage, so that
    the verdict can use the Results of the probes before it.
    """
    results = {} if results is None else results
    fn, why = lookup(f"probes.{name}", "run")
    if fn is None:
        return False, why
    adapter = ADAPTERS.get(name)
    if adapter is None:
        return False, f"probes.{name} exists but the runner's glue for it is not written yet"
    ctx = _Ctx(cfg, run, suite)
    ctx.opts = dict(cfg.probes.options.get(name, {}))
    ctx.results = results
    if not ctx.paths and name not in TRACE_PROBES:
        return False, "no caches (capture did not run)"
    try:
        units = adapter(fn, ctx)
    except MimicryError as e:  # e.g. too few usable items: say so, keep the other probes
        return False, f"failed: {e.render()}"
    except Exception as e:  # a bug in a probe must not lose the rest of the run: show it
        import traceback

        traceback.print_exc()
        first = (str(e).splitlines() or [""])[0][:200]
        return False, f"failed with {type(e).__name__}: {first} (traceback above; a bug)"
    if not units:
        why = "; ".join(ctx.skipped) or "nothing to compare (needs a teacher and a student " \
            "with caches)"
        return False, f"failed: {why}" if ctx.skipped else why
    save_units(units, run / "probes", name, cfg)
    results[name] = dict(units)
    return True, "; ".join(ctx.skipped)


def save_units(units: Units, out: Path, name: str, cfg: ExperimentConfig) -> None:
    """Write the stacked table, extra tables and one figure per unit; then the done-marker."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / f"{name}.csv", _stack([(u, r.table) for u, r in units]))
    extra_names = sorted({k for _, r in units for k in (getattr(r, "tables", None) or {})})
    for t in extra_names:
        _write_csv(out / f"{name}_{t}.csv",
                   _stack([(u, r.tables[t]) for u, r in units if t in r.tables]))
    for u, r in units:
        try:
            fig = r.plot()
        except ValueError:  # the probe draws no figure for this result
            continue
        save_figure(fig, out / f"{name}__{u}")
        plt.close(fig)
    meta = {u: getattr(r, "meta", {}) for u, r in units}
    atomic_write_json(out / f"{name}.run.json", {
        "probe": name, "units": [u for u, _ in units], "seed": cfg.seed,
        "config_hash": cfg.stage_hash("probe"), "meta": json.loads(json.dumps(meta,
                                                                               default=str))})


def _stack(parts: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    frames = []
    for u, df in parts:
        df = df.copy()
        if "unit" not in df.columns:
            df.insert(0, "unit", u)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)


def save_figure(fig, stem: Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` (150 dpi) and ``stem.pdf``, cropped; return the paths."""
    from mimicry.plots import save_figure as _save

    return _save(fig, stem, png_dpi=150, tight=True)

# ---------------------------------------------------------------- a run folder -> verdict


def from_run(run: str | Path, *, teacher: str = "teacher", base: str | None = "base",
             tasks: Any = None, students: list[str] | None = None, align_n_boot: int = 2000,
             **kw: Any) -> probes.base.Result:
    """Return the verdict for a run folder (``mimicry run``/``demo`` layout), aligning per student.

    Reads ``RUN/caches/<key>.h5`` (own traces), ``<key>__on_<teacher>.h5`` (student over the
    teacher's traces: similarity and the ablation's "teacher" condition) and
    ``<key>__scrambled.h5`` (over scrambled teacher traces), and ``RUN/traces/<key>.jsonl``,
    which it aligns once per student with roles teacher/student/base (so Δr and negative
    transfer exist for every student), and ``RUN/traces/<key>__after_scrambled.jsonl``
    (answers after the model's own reasoning scrambled: ``probes.reliance``) when present, with
    its controls ``<key>__after_empty.jsonl`` / ``<key>__after_filler.jsonl`` (answers after an
    empty / a length-matched filler reasoning) when present. ``tasks``: the suite.
    """
    from mimicry import open_cache
    from mimicry.alignment import align
    from mimicry.errors import InputError
    from mimicry.tasks.registry import load_suite
    from mimicry.traces import read_traces
    from probes.suite import run_all

    run = Path(run)
    paths = {p.stem: p for p in sorted((run / "caches").glob("*.h5"))}
    own = {k: open_cache(p) for k, p in paths.items() if "__" not in k}
    if teacher not in own:
        raise InputError(f"no cache for the teacher {teacher!r}", file=run / "caches",
                         fix="run the capture stage first")
    suite = load_suite(tasks) if tasks is not None else None
    students = students or [k for k in own if k not in (teacher, base)]
    cross = {s: open_cache(paths[f"{s}__on_{teacher}"]) for s in students
             if f"{s}__on_{teacher}" in paths}
    abl = {}
    for s in students:
        conds = {"own": own[s]}
        if s in cross:
            conds["teacher"] = cross[s]
        if f"{s}__scrambled" in paths:
            conds["scrambled"] = open_cache(paths[f"{s}__scrambled"])
        if len(conds) > 1:
            abl[s] = conds
    alignment, names = None, {}
    tr = run / "traces"
    traces = {k: read_traces(tr / f"{k}.jsonl") for k in (teacher, base, *students)
              if k and (tr / f"{k}.jsonl").exists()}
    own_t, forced_t, ctrl = [], [], {"empty": [], "filler": []}
    for k in (teacher, *students):
        forced = reliance_paths(run, k)[1]
        if forced.exists() and k in traces:
            own_t += traces[k]
            forced_t += read_traces(forced)
            for c in ctrl:   # reliance controls (mimicry.generate.controls), when answered
                f = forced.with_name(f"{k}__after_{c}.jsonl")
                if f.exists():
                    ctrl[c] += read_traces(f)
    ctrl = {c: v for c, v in ctrl.items() if v}
    if suite is not None and teacher in traces:
        names = {k: t[0].model for k, t in traces.items() if t}
        alignment = {}
        for s in students:
            if s not in traces:
                continue
            roles = {"teacher": names[teacher], "student": names[s]}
            if base in traces:
                roles["base"] = names[base]
            alignment[s] = align([t for k in roles.values() for t in _by_name(traces, k)],
                                 suite, roles=roles, n_boot=align_n_boot, n_perm=align_n_boot,
                                 progress=False)
    return run_all(own, teacher=teacher, students=students, tasks=suite, alignment=alignment,
                   ablation=abl or None, similarity_caches=cross, model_names=names,
                   reliance=(own_t, forced_t, ctrl) if forced_t else None, **kw)


def _by_name(traces: dict[str, list], name: str) -> list:
    return [t for ts in traces.values() for t in ts if t.model == name]
