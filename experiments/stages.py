"""The pipeline's stages as functions over a run folder, delegating to each step's own API.

Each ``stage_*`` function takes the config, the run folder and the suite, does its work
through the public API of its step (``mimicry.generate.generate``, ``mimicry.alignment.align``,
``mimicry.capture.capture``, ``mimicry.generate.answer_after``, the ``probes`` package),
relies on that step's own resume (finished items are skipped) and returns a :class:`StageResult`. A step that is not
installed yet makes the stage ``unavailable`` with the reason — never made-up numbers.

Run folder layout::

    RUN/traces/<key>.jsonl                    one per model (generated or imported)
    RUN/traces/<teacher>__scrambled.jsonl     content-scrambled teacher traces (ablation)
    RUN/alignment/                            alignment.csv, summary.json, figures
    RUN/traces/<key>__self_scrambled.jsonl    a model's own traces, reasoning scrambled (reliance)
    RUN/traces/<key>__after_scrambled.jsonl   its answers after them (reliance)
    RUN/caches/<key>.h5                       activations on the model's own traces
    RUN/caches/<key>__on_<teacher>.h5         a student reading the teacher's traces
    RUN/caches/<key>__scrambled.h5            ... and the scrambled teacher traces
    RUN/probes/<name>.csv (+ .png/.pdf)       one table (and figure) per probe
    RUN/report.md, RUN/report.html            the report
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicry.errors import InputError, ModelNotFoundError
from mimicry.io import atomic_path, atomic_write_json
from mimicry.traces import append_traces, read_traces

from . import scale
from .config import RELIANCE_ROLES, ExperimentConfig, ModelConfig
from .support import call, lookup, model_spec, reliance_paths, traces_path


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
    print(f"  {msg}", flush=True)


def default_device(m: ModelConfig) -> str | None:
    """Return ``"cuda"`` when a GPU is visible and ``m`` has no device_map, else None."""
    if m.device_map is not None:
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else None


def model_names(run: Path, cfg: ExperimentConfig) -> dict[str, str]:
    """Return ``{key: model name as written in its traces}`` for the models with traces."""
    out = {}
    for m in cfg.models:
        p = traces_path(run, m.key)
        if p.exists():
            names = {t.model for t in read_traces(p)}
            if len(names) == 1:
                out[m.key] = names.pop()
    return out


# ---------------------------------------------------------------- generate


def stage_generate(cfg: ExperimentConfig, run: Path, suite) -> StageResult:
    """Write ``traces/<key>.jsonl`` for every model (generated, or imported from ``traces``)."""
    gen, why = lookup("mimicry.generate", "generate")
    notes = []
    done = 0
    for i, m in enumerate(cfg.models, start=1):
        out = traces_path(run, m.key)
        if m.traces:
            if not out.exists():
                _import_traces(m, out)
            _say(f"[{i}/{len(cfg.models)}] {m.key}: imported traces from {m.traces}")
            done += 1
            continue
        if gen is None:
            notes.append(f"{m.key}: not generated ({why})")
            continue
        _say(f"[{i}/{len(cfg.models)}] {m.key}: generating {len(suite)} items with "
             f"{m.name} ({cfg.generation.backend})")
        g = cfg.generation
        server = {"base_url": g.base_url, "concurrency": g.concurrency} \
            if g.backend == "openai" else {"device": default_device(m)}
        spec = model_spec(m)
        if g.backend == "openai":  # the server's model name: what `vllm serve NAME` was given
            spec.name_or_path = m.name
        call(gen, spec, suite, out, backend=g.backend, batch_size=g.batch_size,
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


def stage_align(cfg: ExperimentConfig, run: Path, suite) -> StageResult:
    """Write ``alignment/`` (table, summary, figures) for all models, with their roles."""
    align, why = lookup("mimicry.alignment", "align")
    if align is None:
        return StageResult("unavailable", [why])
    names = model_names(run, cfg)
    if not names:
        return StageResult("unavailable", ["no traces to align (generate did not run)"])
    traces = []
    for m in cfg.models:
        if m.key in names:
            traces.extend(read_traces(traces_path(run, m.key)))
    students = [m.key for m in cfg.models if m.role == "student" and m.key in names]
    roles = {role: names[k] for role, k in cfg.roles().items() if k in names}
    _say(f"aligning {len(traces)} traces from {len(names)} models ({_roles(roles)})")
    a = cfg.alignment
    akw = dict(seed=cfg.seed, n_boot=a.n_boot, n_perm=a.n_perm, min_items=a.min_items,
               exclude_truncated=a.exclude_truncated, cooks=a.cooks, cost=a.cost)
    res = call(align, traces, suite, roles=roles or None, **akw)
    res.save(run / "alignment")
    # One more alignment per extra student, so each teacher/student pair has its own Δr.
    for key in students[1:]:
        r2 = dict(roles, student=names[key])
        _say(f"aligning pair {_roles(r2)}")
        call(align, traces, suite, roles=r2, **akw).save(run / "alignment" / "pairs" / key,
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
            call(align, traces, suite, roles=r3, **akw).save(
                run / "alignment" / "pairs" / key, figures=PAIR_FIGURES)
    missing = [m.key for m in cfg.models if m.key not in names]
    notes = [f"no traces for {', '.join(missing)}"] if missing else []
    return StageResult("partial" if missing else "done", notes)


# ---------------------------------------------------------------- capture


def capture_jobs(cfg: ExperimentConfig, run: Path) -> list[tuple[ModelConfig, Path, Path]]:
    """Return ``(model, traces file, cache file)`` for every capture the config asks for."""
    teacher = cfg.roles().get("teacher")
    jobs = []
    for m in cfg.models:
        if not m.capture:
            continue
        jobs.append((m, traces_path(run, m.key), run / "caches" / f"{m.key}.h5"))
        if cfg.capture.cross and teacher and m.key != teacher and m.role in ("student",
                                                                             "control"):
            jobs.append((m, traces_path(run, teacher),
                         run / "caches" / f"{m.key}__on_{teacher}.h5"))
            jobs.append((m, run / "traces" / f"{teacher}__scrambled.jsonl",
                         run / "caches" / f"{m.key}__scrambled.h5"))
    return jobs


def stage_capture(cfg: ExperimentConfig, run: Path, suite) -> StageResult:
    """Write ``caches/*.h5``: each model on its own traces, students also on the teacher's."""
    capture, why = lookup("mimicry.capture", "capture")
    if capture is None:
        return StageResult("unavailable", [why])
    conf_cls, why2 = lookup("mimicry.capture", "CaptureConfig")
    if conf_cls is None:
        return StageResult("unavailable", [why2])
    c = cfg.capture
    conf = call(conf_cls, sites=tuple(c.sites), entropy=c.entropy, n_sampled=c.entropy_samples,
                dtype=c.store_dtype, batch_tokens=c.batch_tokens, backend=c.backend,
                seed=cfg.seed)
    notes: list[str] = []
    jobs = capture_jobs(cfg, run)
    done = 0
    for i, (m, tpath, cpath) in enumerate(jobs, start=1):
        if tpath.name.endswith("__scrambled.jsonl") and not tpath.exists():
            teacher_traces = traces_path(run, cfg.roles()["teacher"])
            if not _write_scrambled(teacher_traces, tpath, cfg.seed, suite, notes):
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


def _write_scrambled(src: Path, dst: Path, seed: int, suite, notes: list[str]) -> bool:
    """Write content-scrambled copies of ``src`` traces to ``dst``; False if unavailable."""
    scramble, why = lookup("mimicry.traces.scramble", "scramble_traces")
    if scramble is None:
        scramble, why = lookup("mimicry.traces.scramble", "scramble")
    if scramble is None:
        notes.append(f"scrambled traces: {why}")
        return False
    if not src.exists():
        notes.append(f"scrambled traces: no teacher traces at {src.name}")
        return False
    out = call(scramble, read_traces(src), seed=seed, suite=suite)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        append_traces(tmp, list(out))
    return True


# ---------------------------------------------------------------- reliance


def stage_reliance(cfg: ExperimentConfig, run: Path, suite) -> StageResult:
    """Write each reasoning model's own traces scrambled, and its answers after them.

    For every teacher/student/control with reasoning in ``traces/<key>.jsonl``: the traces
    with the reasoning's content scrambled go to ``traces/<key>__self_scrambled.jsonl``
    (rewritten only when missing or made from other traces/mode/seed), then the model
    answers after them greedily into ``traces/<key>__after_scrambled.jsonl`` (resumable).
    Models without reasoning are skipped with a note; models without local weights or
    whose load fails are noted and make the stage ``partial``.
    """
    answer_after, why = lookup("mimicry.generate.forced", "answer_after")
    scramble, why2 = lookup("mimicry.traces.scramble", "scramble_traces")
    if answer_after is None or scramble is None:
        return StageResult("unavailable", [why or why2])
    loadable = {m.key for m in cfg.reliance_models()}
    cands = [m for m in cfg.models if m.role in RELIANCE_ROLES]
    notes: list[str] = []
    failed = 0
    for i, m in enumerate(cands, start=1):
        own = traces_path(run, m.key)
        if not own.exists():
            notes.append(f"{m.key}: no traces at {own.name} (generate did not run)")
            failed += 1
            continue
        traces = read_traces(own)
        if not any((t.reasoning or "").strip() for t in traces):
            notes.append(f"{m.key}: skipped, its traces have no reasoning to scramble")
            continue
        if m.key not in loadable:
            notes.append(f"{m.key}: no local weights to answer with (traces imported only); "
                         "set local_path to include it")
            failed += 1
            continue
        scrambled, forced = reliance_paths(run, m.key)
        given = _fresh_scrambled(cfg, m, own, traces, scrambled, forced, scramble, notes)
        _fresh_forced(cfg, m, forced, notes)
        _say(f"[{i}/{len(cands)}] {m.key}: answering after its own reasoning scrambled "
             f"({cfg.reliance.mode}) -> {forced.name}")
        try:
            # the scrambled traces are passed in memory, so a moved run folder still resumes
            # (their provenance is checked above through the own traces' hash)
            res = call(answer_after, model_spec(m), given, suite, forced,
                       batch_size=cfg.generation.batch_size,
                       max_answer_tokens=cfg.reliance.max_answer_tokens,
                       chat_template=m.chat_template, name=m.key, device=default_device(m),
                       **scale.reliance_kwargs(cfg))
        except ModelNotFoundError as e:
            notes.append(f"{m.key}: could not be loaded ({e.render()})")
            failed += 1
            continue
        except InputError as e:
            if "can be answered after" not in str(e):
                raise
            notes.append(f"{m.key}: skipped, nothing in {scrambled.name} to answer after "
                         f"({e.render()})")
            continue
        except OSError as e:  # weights missing or unreadable half-way
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            notes.append(f"{m.key}: could not be loaded or run ({type(e).__name__}: {first})")
            failed += 1
            continue
        s = getattr(res, "summary", {})
        if s.get("skipped_truncated"):
            notes.append(f"{m.key}: {s['skipped_truncated']} traces cut before </think> "
                         "not answered after (counted by the probe)")
        cut = s.get("length_finished", 0)
        if cut:
            notes.append(f"{m.key}: {cut} of {len(res)} answers hit the budget of "
                         f"{s.get('answer_budget', cfg.reliance.max_answer_tokens)} tokens "
                         f"([reliance] max_answer_tokens = {cfg.reliance.max_answer_tokens!r}; "
                         "an answer cut before it is given scores as wrong: raise it if this "
                         "is not rare)")
    if failed == 0:
        return StageResult("done", notes)
    return StageResult("partial" if failed < len(cands) else "unavailable", notes)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _first_meta(path: Path, model: str | None = None) -> dict[str, Any] | None:
    try:
        rows = read_traces(path)
    except InputError:
        return None
    rows = [t for t in rows if model is None or t.model == model]
    return rows[0].meta if rows else None


def _fresh_scrambled(cfg: ExperimentConfig, m: ModelConfig, own: Path, traces: list,
                     dst: Path, forced: Path, scramble, notes: list[str]) -> list:
    """Return the own traces scrambled, written to ``dst`` unless it holds them already.

    A scrambled file made from other own traces, mode or seed is rewritten, and the answers
    after it (``forced``) removed: they were made after another text.
    """
    src = _sha(own)
    if dst.exists():
        try:
            rows = read_traces(dst)
        except InputError:
            rows = []
        meta = rows[0].meta if rows else {}
        sc = meta.get("scrambled") or {}
        if (meta.get("scrambled_from") == src and sc.get("mode") == cfg.reliance.mode
                and sc.get("seed") == cfg.seed):
            return rows
        notes.append(f"{m.key}: {dst.name} was made from other traces or scramble settings: "
                     f"rewritten, and {forced.name} made anew")
        forced.unlink(missing_ok=True)
    out = scramble(traces, mode=cfg.reliance.mode, seed=cfg.seed)
    for t in out:
        t.meta["scrambled_from"] = src
    dst.parent.mkdir(parents=True, exist_ok=True)
    out = list(out)
    with atomic_path(dst) as tmp:
        append_traces(tmp, out)
    return out


def _fresh_forced(cfg: ExperimentConfig, m: ModelConfig, forced: Path, notes: list[str]) -> None:
    """Remove ``forced`` when its answers were made with another answer budget or template."""
    if not forced.exists():
        return
    meta = _first_meta(forced, m.key)
    if meta is None:
        return
    want = {"max_answer_tokens": cfg.reliance.max_answer_tokens,
            "chat_template": m.chat_template}
    if any(meta.get(k) != v for k, v in want.items()):
        notes.append(f"{m.key}: {forced.name} was made with other settings "
                     f"({', '.join(f'{k}={meta.get(k)!r}' for k in want)}): made anew")
        forced.unlink()


# ---------------------------------------------------------------- probe


def stage_probe(cfg: ExperimentConfig, run: Path, suite) -> StageResult:
    """Run each configured probe that is installed; write ``probes/<name>.csv`` and figures."""
    from .console import quiet_numeric_warnings, stage_progress
    from .probing import run_probe

    notes: list[str] = []
    done = 0
    results: dict[str, Any] = {}
    bar = stage_progress(cfg.probes.names, "probes")
    for name in bar:
        bar.set_description(f"probes (now: {name})")
        with quiet_numeric_warnings(f"probe {name}"):
            ok, note = run_probe(name, cfg, run, suite, results)
        if ok:
            done += 1
        if note:
            notes.append(f"{name}: {note}")
    status = "done" if done == len(cfg.probes.names) else ("partial" if done else "unavailable")
    return StageResult(status, notes)


# ---------------------------------------------------------------- report


def stage_report(cfg: ExperimentConfig, run: Path, suite) -> StageResult:
    """Write ``report.md`` and ``report.html`` from whatever the run folder holds."""
    from .report import write_report

    md, html = write_report(run, cfg=cfg, suite=suite)
    _say(f"wrote {md} and {html.name}")
    return StageResult("done")


STAGE_FUNCS = {
    "generate": stage_generate,
    "align": stage_align,
    "capture": stage_capture,
    "reliance": stage_reliance,
    "probe": stage_probe,
    "report": stage_report,
}


def write_status(run: Path, status: dict[str, Any]) -> None:
    """Record each stage's status and notes in ``RUN/status.json`` (read by the report)."""
    path = run / "status.json"
    old: dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
    old.update(status)
    atomic_write_json(path, old)
