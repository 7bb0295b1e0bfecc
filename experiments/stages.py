"""The pipeline's stages as functions over a run folder, delegating to each step's own API.

Each ``stage_*`` function takes the config, the run folder (:class:`RunFolder`, which owns
every path; see :mod:`experiments.layout` for the layout) and the suite, does its work through
the public API of its step (``mimicry.generate.generate``, ``mimicry.alignment.align``,
``mimicry.capture.capture``, ``mimicry.generate.forced.answer_after``,
:mod:`experiments.probing`), imported by name, relies on that step's own resume (finished
items are skipped) and returns a :class:`StageResult`. Progress goes to :mod:`logging`.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicry.io import atomic_path, atomic_write_json
from mimicry.traces import append_traces, read_traces

from . import scale
from .config import ExperimentConfig, ModelConfig
from .layout import RunFolder
from .support import model_spec

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage did: ``status`` is ``done``, ``partial`` or ``unavailable``."""

    status: str
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Return whether the stage finished everything it was asked to do."""
        return self.status == "done"


def _say(msg: str) -> None:
    log.info("  %s", msg)


def default_device(m: ModelConfig) -> str | None:
    """Return ``"cuda"`` when a GPU is visible and ``m`` has no device_map, else None."""
    if m.device_map is not None:
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else None


def model_names(run: RunFolder, cfg: ExperimentConfig) -> dict[str, str]:
    """Return ``{key: model name as written in its traces}`` for the models with traces."""
    out = {}
    for m in cfg.models:
        p = RunFolder(run).traces(m.key)
        if p.exists():
            names = {t.model for t in read_traces(p)}
            if len(names) == 1:
                out[m.key] = names.pop()
    return out


# ---------------------------------------------------------------- generate


def stage_generate(cfg: ExperimentConfig, run: RunFolder, suite) -> StageResult:
    """Write ``traces/<key>.jsonl`` for every model (generated, or imported from ``traces``)."""
    from mimicry.generate import generate

    run = RunFolder(run)
    notes: list[str] = []
    done = 0
    for i, m in enumerate(cfg.models, start=1):
        out = run.traces(m.key)
        if m.traces:
            if not out.exists():
                _import_traces(m, out)
            _say(f"[{i}/{len(cfg.models)}] {m.key}: imported traces from {m.traces}")
            done += 1
            continue
        _say(f"[{i}/{len(cfg.models)}] {m.key}: generating {len(suite)} items with "
             f"{m.name} ({cfg.generation.backend})")
        g = cfg.generation
        server = {"base_url": g.base_url, "concurrency": g.concurrency} \
            if g.backend == "openai" else {"device": default_device(m)}
        spec = model_spec(m)
        if g.backend == "openai":  # the server's model name: what `vllm serve NAME` was given
            spec.name_or_path = m.name
        generate(spec, suite, out, backend=g.backend, batch_size=g.batch_size,
                 max_new_tokens=m.max_new_tokens or g.max_new_tokens, seed=g.seed,
                 temperature=g.temperature, name=m.key, **server)
        done += 1
    if done == len(cfg.models):
        return StageResult("done", notes)
    return StageResult("unavailable" if done == 0 else "partial", notes)


def _import_traces(m: ModelConfig, out: Path) -> None:
    """Copy ``m.traces`` into the run (validated by :func:`read_traces`)."""
    read_traces(m.traces)  # raises a clear InputError on bad rows
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        shutil.copyfile(m.traces, tmp)


# ---------------------------------------------------------------- align


# a pair's scatter and forest would repeat the main ones byte for byte
PAIR_FIGURES = ("delta_r", "negative_transfer", "inflation")


def _roles(roles: dict[str, str]) -> str:
    return ", ".join(f"{r} = {m}" for r, m in roles.items()) or "no roles"


def stage_align(cfg: ExperimentConfig, run: RunFolder, suite) -> StageResult:
    """Write ``alignment/`` (table, summary, figures) for all models, with their roles."""
    from mimicry.alignment import align

    run = RunFolder(run)
    names = model_names(run, cfg)
    if not names:
        return StageResult("unavailable", ["no traces to align (generate did not run)"])
    traces = []
    for m in cfg.models:
        if m.key in names:
            traces.extend(read_traces(run.traces(m.key)))
    students = [m.key for m in cfg.models if m.role == "student" and m.key in names]
    roles = {role: names[k] for role, k in cfg.roles().items() if k in names}
    _say(f"aligning {len(traces)} traces from {len(names)} models ({_roles(roles)})")
    a = cfg.alignment
    akw = dict(seed=cfg.seed, n_boot=a.n_boot, n_perm=a.n_perm, min_items=a.min_items,
               exclude_truncated=a.exclude_truncated, cooks=a.cooks, cost=a.cost)
    res = align(traces, suite, roles=roles or None, **akw)
    res.save(run.alignment)
    # One more alignment per extra student, so each teacher/student pair has its own Δr.
    for key in students[1:]:
        r2 = dict(roles, student=names[key])
        _say(f"aligning pair {_roles(r2)}")
        align(traces, suite, roles=r2, **akw).save(run.alignment_pair(key),
                                                   figures=PAIR_FIGURES)
    # A control trained after the student (e.g. RL on top of SFT: DeepScaleR after
    # R1-Distill): compare it with that student as the reference, so Δr = r(control) −
    # r(student) with a paired CI answers "does it restore the alignment SFT lost?".
    controls = [m.key for m in cfg.models if m.role == "control" and m.key in names]
    if students and controls:
        for key in controls:
            r3 = {"teacher": names[students[0]], "student": names[key]}
            if "base" in roles:
                r3["base"] = roles["base"]
            _say(f"aligning control {key} against {students[0]} ({_roles(r3)})")
            align(traces, suite, roles=r3, **akw).save(run.alignment_pair(key),
                                                       figures=PAIR_FIGURES)
    missing = [m.key for m in cfg.models if m.key not in names]
    notes = [f"no traces for {', '.join(missing)}"] if missing else []
    return StageResult("partial" if missing else "done", notes)


# ---------------------------------------------------------------- capture


def capture_jobs(cfg: ExperimentConfig, run: RunFolder) -> list[tuple[ModelConfig, Path, Path]]:
    """Return ``(model, traces file, cache file)`` for every capture the config asks for."""
    run = RunFolder(run)
    teacher = cfg.roles().get("teacher")
    jobs = []
    for m in cfg.models:
        if not m.capture:
            continue
        jobs.append((m, run.traces(m.key), run.cache(m.key)))
        if cfg.capture.cross and teacher and m.key != teacher and m.role in ("student",
                                                                             "control"):
            jobs.append((m, run.traces(teacher), run.cache(run.cross_stem(m.key, teacher))))
            jobs.append((m, run.scrambled_traces(teacher),
                         run.cache(run.scrambled_stem(m.key))))
    return jobs


def stage_capture(cfg: ExperimentConfig, run: RunFolder, suite) -> StageResult:
    """Write ``caches/*.h5``: each model on its own traces, students also on the teacher's."""
    from mimicry.capture import CaptureConfig, capture

    run = RunFolder(run)
    c = cfg.capture
    conf = CaptureConfig(sites=tuple(c.sites), entropy=c.entropy, n_sampled=c.entropy_samples,
                         dtype=c.store_dtype, batch_tokens=c.batch_tokens, backend=c.backend,
                         seed=cfg.seed)
    notes: list[str] = []
    jobs = capture_jobs(cfg, run)
    done = 0
    for i, (m, tpath, cpath) in enumerate(jobs, start=1):
        teacher = cfg.roles().get("teacher")
        if teacher and tpath == run.scrambled_traces(teacher) and not tpath.exists():
            if not _write_scrambled(run.traces(teacher), tpath, cfg.seed, notes):
                continue
        if not tpath.exists():
            notes.append(f"{cpath.name}: no traces at {tpath.name}")
            continue
        _say(f"[{i}/{len(jobs)}] capture {m.key} over {tpath.name} -> {cpath.name}")
        if scale.world(cfg) > 1:  # torchrun ranks, each a slice into its own shard
            note = scale.launch_capture(cfg, model_spec(m), tpath, cpath, conf)
            if note:
                notes.append(note)
                continue
        else:
            capture(model_spec(m), read_traces(tpath), cpath, conf, device=default_device(m),
                    gpus_per_rank=c.gpus_per_rank)
        done += 1
    if done == len(jobs):
        return StageResult("done", notes)
    return StageResult("partial" if done else "unavailable", notes)


def _write_scrambled(src: Path, dst: Path, seed: int, notes: list[str]) -> bool:
    """Write content-scrambled copies of ``src`` traces to ``dst``; False if there are none."""
    from mimicry.traces.scramble import scramble_traces

    if not src.exists():
        notes.append(f"scrambled traces: no teacher traces at {src.name}")
        return False
    out = scramble_traces(read_traces(src), seed=seed)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        append_traces(tmp, list(out))
    return True


# ---------------------------------------------------------------- probe


def stage_probe(cfg: ExperimentConfig, run: RunFolder, suite) -> StageResult:
    """Run each configured probe; write ``probes/<name>.csv``, ``<name>.json`` and figures."""
    from .console import quiet_numeric_warnings, stage_progress
    from .inputs import run_inputs
    from .probing import run_probe, save_units

    run = RunFolder(run)
    inp = run_inputs(cfg, run, suite)
    notes: list[str] = []
    done = 0
    bar = stage_progress(cfg.probes.names, "probes")
    for name in bar:
        bar.set_description(f"probes (now: {name})")
        with quiet_numeric_warnings(f"probe {name}"):
            units, note = run_probe(name, inp)
        if units:
            save_units(units, run.probes_dir, name, seed=cfg.seed,
                       extra={"config_hash": cfg.stage_hash("probe")})
            done += 1
        if note:
            notes.append(f"{name}: {note}")
    status = "done" if done == len(cfg.probes.names) else ("partial" if done else "unavailable")
    return StageResult(status, notes)


# ---------------------------------------------------------------- report


def stage_report(cfg: ExperimentConfig, run: RunFolder, suite) -> StageResult:
    """Write ``report.md`` and ``report.html`` from whatever the run folder holds."""
    from .report import write_report

    md, html = write_report(run, cfg=cfg, suite=suite)
    _say(f"wrote {md} and {html.name}")
    return StageResult("done")


def write_status(run: RunFolder, status: dict[str, Any]) -> None:
    """Record each stage's status and notes in ``RUN/status.json`` (read by the report)."""
    path = RunFolder(run).status
    old: dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
    old.update(status)
    atomic_write_json(path, old)
