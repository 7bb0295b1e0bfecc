"""The intervene stage: the model runs of the causal and computation probes, resumable.

Steering and patching generate with hooks in the model, and the computation probe needs
per-token residuals along the reasoning: this stage does that work, between reliance and
probe, for the mechanistic probes named in ``[probes] names``. The probe stage then only reads
what it wrote (:func:`experiments.intervene_runs.load_runs`, used by
:mod:`experiments.mechanistic`). Paths come from
:class:`~experiments.layout.RunFolder`:

- ``compute``: ``caches/<key>__tokens.h5`` per teacher/student/control with traces (a capture
  at a stride that keeps about ``[intervene] token_rows`` rows of the longest reasoning);
  the capture itself resumes item by item from its shards;
- ``steer``: ``intervene/steer__<key>.json`` (the plan: layer, directions' norm, held-out
  items, the settings it was made with) and ``intervene/steer__<key>.jsonl`` (one row per
  held-out item × run, a run = the unsteered one or one direction at one α), per
  student/control (``[intervene] models``: a subset);
- ``patch``: ``intervene/patch__<key>.json`` and ``.jsonl`` (one row per pair × layer, for
  each direction hard → easy and easy → hard).

Resuming: rows are appended run by run (steering) or layer by layer (patching), each run's
rows in one write, so a crash loses at most the run in progress; the next run skips every
run already in the file. A plan made with other settings (options, seed, capture settings,
other own or teacher traces) is removed with its rows and made anew, with a note.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from mimicry.errors import InputError, MimicryError, ModelNotFoundError
from mimicry.io import atomic_write_json, json_ready
from mimicry.store import parts_dir

from .config import ExperimentConfig, ModelConfig
from .intervene_runs import (
    append_rows,
    finished_rows,
    job_of,
    models_for,
    run_options,
    settings,
    wanted,
)
from .layout import RunFolder
from .stages import StageResult, _say, default_device
from .support import model_source, model_spec

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- plans


def _fresh_plan(run: RunFolder, name: str, m: ModelConfig, want: dict,
                notes: list[str]) -> dict | None:
    """Return the stored plan of ``name`` on ``m`` if made with ``want``; else remove it."""
    plan_path, rows_path = run.intervene_plan(name, m.key), run.intervene_rows(name, m.key)
    if plan_path.exists():
        try:
            plan = json.loads(plan_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            plan = {}
        if plan.get("settings") == want:
            return plan
        notes.append(f"{name} {m.key}: {plan_path.name} was made with other settings or "
                     "traces: its runs are made anew")
    plan_path.unlink(missing_ok=True)
    rows_path.unlink(missing_ok=True)
    return None


# ---------------------------------------------------------------- the stage


def stage_intervene(cfg: ExperimentConfig, run: RunFolder, suite) -> StageResult:
    """Write the token caches, steering and patching runs that ``[probes] names`` ask for."""
    from .console import stage_progress

    run = RunFolder(run)
    names = wanted(cfg)
    if not names:
        return StageResult("done", ["no mechanistic probe (compute, steer, patch) in "
                                    "[probes] names: nothing to run"])
    notes: list[str] = []
    # compute first; then model by model, so each model is loaded once for steer and patch
    jobs = [("compute", m) for m in models_for(cfg, run, "compute") if "compute" in names]
    gen = [n for n in names if n != "compute"]
    on = {n: {m.key for m in models_for(cfg, run, n)} for n in gen}
    jobs += [(n, m) for m in cfg.models for n in gen if m.key in on[n]]
    for n in names:
        if not any(j[0] == n for j in jobs):
            notes.append(f"{n}: no model to run it on (needs traces; steer and patch need a "
                         "student or control)")
    plans = {}
    for n, m in jobs:  # planning reads caches only: the total for the progress bar
        plans[(n, m.key)] = _plan(cfg, run, suite, n, m, notes)
    total = sum(len(p["todo"]) for p in plans.values() if p)
    bar = stage_progress(None, "intervene", total=total)
    failed = 0
    backends: dict[str, Any] = {}
    try:
        for n, m in jobs:
            p = plans[(n, m.key)]
            if p is None:
                failed += 1
                continue
            if not p["todo"]:
                continue
            bar.set_description_str(f"intervene (now: {n} {m.key})")
            try:
                if n == "compute":
                    _compute(cfg, run, m, p)
                    bar.update(1)
                else:
                    be = backends.get(m.key) or _backend(m)
                    backends = {m.key: be}  # one model in memory at a time
                    (_steer if n == "steer" else _patch)(cfg, run, suite, m, p, be, bar)
            except (ModelNotFoundError, OSError) as e:
                line = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                notes.append(f"{n} {m.key}: could not be loaded or run ({line})")
                failed += 1
            except InputError as e:
                notes.append(f"{n} {m.key}: not run ({e.render()})")
                failed += 1
    finally:
        bar.close()
    if failed == 0:
        return StageResult("done", notes)
    return StageResult("partial" if failed < len(jobs) else "unavailable", notes)


def _options(cfg: ExperimentConfig, name: str) -> dict[str, Any]:
    """Return probe ``name``'s options as every entry point resolves them."""
    from .probing import probe_options

    return probe_options(name, cfg.probes.options.get(name))


def _backend(m: ModelConfig):
    from mimicry.generate.hf import HFBackend

    return HFBackend(model_spec(m), device=default_device(m))


def _plan(cfg: ExperimentConfig, run: RunFolder, suite, name: str, m: ModelConfig,
          notes: list[str]) -> dict | None:
    """Return what is left to run of ``name`` on ``m`` (``todo``), or None (noted) if nothing can."""
    from mimicry.traces import read_traces

    if name == "compute":
        from probes.mechanistic import token_stride

        stride = token_stride(read_traces(run.traces(m.key)), cfg.intervene.token_rows)
        path = run.cache(RunFolder.tokens_stem(m.key))
        if path.exists() and _stride_of(path) != stride:
            notes.append(f"compute {m.key}: {path.name} was captured at stride "
                         f"{_stride_of(path)}, not {stride}: captured anew")
            path.unlink()
            shutil.rmtree(parts_dir(path), ignore_errors=True)  # the shards it reads
        return {"stride": stride, "todo": [] if path.exists() else ["capture"]}
    want = settings(cfg, run, name, m, _options(cfg, name))
    try:
        plan = _fresh_plan(run, name, m, want, notes) or _new_plan(cfg, run, suite, name, m,
                                                                   want)
    except MimicryError as e:
        notes.append(f"{name} {m.key}: not run ({e.render()})")
        return None
    if plan is None:
        notes.append(f"{name} {m.key}: not run (needs its own cache {run.cache(m.key).name}: "
                     "run the capture stage)")
        return None
    _, done = finished_rows(run.intervene_rows(name, m.key), name, plan)
    plan["todo"] = [j for j in map(tuple, plan["jobs"])
                    if job_of(name, {"direction": j[0], "alpha": j[1], "layer": j[1]})
                    not in done]
    return plan


def _stride_of(path: Path) -> int | None:
    from mimicry import open_cache

    try:
        return int(open_cache(path).config.get("per_token_stride", 0))
    except (MimicryError, OSError, ValueError):
        return None


def _new_plan(cfg: ExperimentConfig, run: RunFolder, suite, name: str, m: ModelConfig,
              want: dict) -> dict | None:
    """Return a new plan of ``name`` on ``m`` (written to its ``.json``), or None without caches."""
    from probes import patch, steer

    opts = run_options(cfg, name, m, _options(cfg, name))
    if name == "steer":
        from mimicry import open_cache

        teacher = cfg.roles().get("teacher")
        own = run.cache(m.key)
        tcache = run.cache(teacher) if teacher else None
        if not own.exists():
            return None
        gen = {k: opts[k] for k in ("alphas", "n_random", "train_frac", "positions",
                                    "max_new_tokens", "layer", "teacher_layer") if k in opts}
        dirs, items, meta = steer.plan(
            open_cache(own), tasks=suite, seed=cfg.seed, name=m.key,
            teacher_cache=open_cache(tcache) if tcache and tcache.exists() else None, **gen)
        jobs = [("none", 0.0)] + [(d, float(a)) for d in dirs for a in opts["alphas"]
                                  if float(a) != 0.0]
        plan = {"settings": want, "meta": meta, "jobs": jobs,
                "items": [str(it.item_id) for it in items]}
    else:
        from .shapes import shape_for

        pairs = patch.make_pairs(list(suite), suite, int(opts["n_pairs"]), cfg.seed)
        layers = opts.get("layers")
        if layers is None:  # every layer and the embeddings, as patch.run does
            layers = list(range(shape_for(m.name, model_source(m)).layers + 1))
        layers = [int(x) for x in layers]
        plan = {"settings": want, "pairs": {d: [[str(r.item_id) for r in rec],
                                                [str(x.item_id) for x in don]]
                                            for d, (rec, don) in pairs.items()},
                "meta": patch.plan_meta(m.key, layers, pairs, opts["max_new_tokens"])}
        plan["jobs"] = [(d, la) for d, (rec, _) in plan["pairs"].items() if rec
                        for la in layers]
    run.intervene_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.intervene_plan(name, m.key), json_ready(plan))
    return json.loads(run.intervene_plan(name, m.key).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the runs


def _compute(cfg: ExperimentConfig, run: RunFolder, m: ModelConfig, plan: dict) -> None:
    """Capture ``m``'s per-token residuals along its own reasoning (resumes from shards)."""
    from probes.mechanistic import token_cache

    path = run.cache(RunFolder.tokens_stem(m.key))
    _say(f"compute {m.key}: per-token residuals every {plan['stride']} reasoning tokens "
         f"-> {path.name}")
    token_cache(model_spec(m), run.traces(m.key), path, stride=plan["stride"],
                device=default_device(m))


def _items(suite, ids: list[str]) -> list:
    by_id = {str(it.item_id): it for it in suite}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InputError(f"{len(missing)} planned items are not in the suite "
                         f"(e.g. {missing[0]!r})", fix="rerun with the suites the plan was "
                         "made with, or delete the run folder's intervene/ files")
    return [by_id[i] for i in ids]


def _steer(cfg: ExperimentConfig, run: RunFolder, suite, m: ModelConfig, plan: dict, be,
           bar) -> None:
    """Make the steering runs left in ``plan`` (rows appended run by run)."""
    import numpy as np

    from mimicry import open_cache
    from mimicry.intervene import generation
    from probes import steer

    opts = run_options(cfg, "steer", m, _options(cfg, "steer"))
    teacher = cfg.roles().get("teacher")
    tcache = run.cache(teacher) if teacher else None
    gen = {k: opts[k] for k in ("alphas", "n_random", "train_frac", "positions",
                                "max_new_tokens", "layer", "teacher_layer") if k in opts}
    dirs, items, _ = steer.plan(  # the same vectors as when planned (caches, labels, seed)
        open_cache(run.cache(m.key)), tasks=suite, seed=cfg.seed, name=m.key,
        teacher_cache=open_cache(tcache) if tcache and tcache.exists() else None, **gen)
    if [str(it.item_id) for it in items] != plan["items"]:
        raise InputError("the held-out items differ from the plan's",
                         fix=f"delete {run.intervene_plan('steer', m.key)} and rerun")
    done = [j for j in map(tuple, plan["jobs"]) if j not in set(plan["todo"])]
    _say(f"steer {m.key}: {len(plan['todo'])} runs of {len(items)} held-out items at layer "
         f"{plan['meta']['layer']}" + (f" ({len(done)} already made)" if done else ""))
    rows_path = run.intervene_rows("steer", m.key)

    def on_rows(df):
        append_rows(rows_path, df)
        bar.update(1)

    generation.dose_response(be, items, {k: np.asarray(v) for k, v in dirs.items()},
                             opts["alphas"], plan["meta"]["layer"],
                             positions=opts["positions"], max_new_tokens=opts["max_new_tokens"],
                             batch_size=opts["batch_size"], skip=done, on_rows=on_rows)


def _patch(cfg: ExperimentConfig, run: RunFolder, suite, m: ModelConfig, plan: dict, be,
           bar) -> None:
    """Make the patching runs left in ``plan`` (rows appended layer by layer)."""
    from mimicry.intervene import generation

    opts = run_options(cfg, "patch", m, _options(cfg, "patch"))
    rows_path = run.intervene_rows("patch", m.key)
    todo = set(map(tuple, plan["todo"]))
    _say(f"patch {m.key}: {len(todo)} runs (direction × layer) of "
         f"{max(plan['meta']['n_pairs'].values())} pairs")
    layers = plan["meta"]["layers"]
    for d, (rec, don) in plan["pairs"].items():
        skip = [la for la in layers if (d, la) not in todo]
        if not rec or len(skip) == len(layers):
            continue

        def on_rows(df, d=d):
            append_rows(rows_path, df.assign(direction=d))
            bar.update(1)

        generation.patch_sweep(be, _items(suite, rec), _items(suite, don), layers,
                               max_new_tokens=opts["max_new_tokens"],
                               batch_size=opts["batch_size"], skip_layers=skip,
                               on_rows=on_rows)
