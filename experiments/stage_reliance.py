"""The reliance stage: each reasoning model answers again after its own reasoning, scrambled.

Writes ``traces/<key>__self_scrambled.jsonl`` and ``traces/<key>__after_scrambled.jsonl``
(paths from :class:`~experiments.layout.RunFolder`), read by ``probes.reliance``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mimicry.errors import InputError, ModelNotFoundError
from mimicry.io import atomic_path
from mimicry.traces import append_traces, read_traces

from . import scale
from .config import RELIANCE_ROLES, ExperimentConfig, ModelConfig
from .layout import RunFolder
from .stages import StageResult, _say, default_device
from .support import model_spec


def stage_reliance(cfg: ExperimentConfig, run: RunFolder, suite) -> StageResult:
    """Write each reasoning model's own traces scrambled, and its answers after them.

    For every teacher/student/control with reasoning in ``traces/<key>.jsonl``: the traces
    with the reasoning's content scrambled go to ``traces/<key>__self_scrambled.jsonl``
    (rewritten only when missing or made from other traces/mode/seed), then the model
    answers after them greedily into ``traces/<key>__after_scrambled.jsonl`` (resumable).
    Models without reasoning are skipped with a note; models without local weights or
    whose load fails are noted and make the stage ``partial``.
    """
    from mimicry.generate.forced import answer_after
    from mimicry.traces.scramble import scramble_traces as scramble

    run = RunFolder(run)
    loadable = {m.key for m in cfg.reliance_models()}
    cands = [m for m in cfg.models if m.role in RELIANCE_ROLES]
    notes: list[str] = []
    failed = 0
    for i, m in enumerate(cands, start=1):
        own = run.traces(m.key)
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
        scrambled, forced = run.self_scrambled(m.key), run.after_scrambled(m.key)
        given = _fresh_scrambled(cfg, m, own, traces, scrambled, forced, scramble, notes)
        _fresh_forced(cfg, m, forced, notes)
        _say(f"[{i}/{len(cands)}] {m.key}: answering after its own reasoning scrambled "
             f"({cfg.reliance.mode}) -> {forced.name}")
        try:
            # the scrambled traces are passed in memory, so a moved run folder still resumes
            # (their provenance is checked above through the own traces' hash)
            res = answer_after(model_spec(m), given, suite, forced,
                               batch_size=cfg.generation.batch_size,
                               max_answer_tokens=cfg.reliance.max_answer_tokens,
                               chat_template=m.chat_template, name=m.key,
                               device=default_device(m), **scale.reliance_kwargs(cfg))
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
