"""The reliance stage: each reasoning model answers again after its own reasoning, altered.

Writes ``traces/<key>__self_scrambled.jsonl`` and ``traces/<key>__after_scrambled.jsonl``,
and for each ``[reliance] controls`` entry ``traces/<key>__self_{empty,filler}.jsonl`` and
``traces/<key>__after_{empty,filler}.jsonl`` (paths from
:class:`~experiments.layout.RunFolder`), read by ``probes.reliance``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
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
    """Write each reasoning model's answers after its own reasoning scrambled and controlled.

    For every teacher/student/control with reasoning in ``traces/<key>.jsonl``: the traces
    with the reasoning's content scrambled go to ``traces/<key>__self_scrambled.jsonl``
    (rewritten only when missing or made from other traces/mode/seed), then the model
    answers after them greedily into ``traces/<key>__after_scrambled.jsonl`` (resumable).
    Then the same for each control of ``[reliance] controls``: the reasoning emptied
    (``empty``) or replaced by a content-free filler of the same length in the model's own
    tokens (``filler``), given in ``__self_<c>.jsonl``, answered in ``__after_<c>.jsonl``.
    Models without reasoning are skipped with a note; models without local weights or
    whose load fails are noted and make the stage ``partial``.
    """
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
        src = _sha(own)
        sc = {"mode": cfg.reliance.mode, "seed": cfg.seed}
        jobs: list[tuple[str, Path, Path, dict, Callable[[], list]]] = [(
            f"its own reasoning scrambled ({cfg.reliance.mode})", run.self_scrambled(m.key),
            run.after_scrambled(m.key), {"scrambled_from": src, "scrambled": sc},
            partial(scramble, traces, mode=cfg.reliance.mode, seed=cfg.seed))]
        for c in cfg.reliance.controls:
            jobs.append((f"{'an' if c[0] in 'aeiou' else 'a'} {c} reasoning (control)", run.self_control(m.key, c),
                         run.after_control(m.key, c), {"control_from": src, "control": c},
                         partial(_control, m, traces, c, notes)))
        for j, (what, given_path, forced, want, make) in enumerate(jobs):
            try:
                given = _fresh_given(m, given_path, forced, want, make, notes)
            except InputError as e:
                if j == 0:
                    raise
                notes.append(f"{m.key}: no answers after {what} ({e.render()})")
                continue
            _fresh_forced(cfg, m, forced, notes)
            _say(f"[{i}/{len(cands)}] {m.key}: answering after {what} -> {forced.name}")
            outcome = _answer(cfg, m, given, given_path, forced, suite, notes, first=j == 0)
            if outcome == "failed":
                failed += 1
            if outcome != "ok":  # the next files would fail or be skipped the same way
                break
    if failed == 0:
        return StageResult("done", notes)
    return StageResult("partial" if failed < len(cands) else "unavailable", notes)


def _answer(cfg: ExperimentConfig, m: ModelConfig, given: list, given_path: Path,
            forced: Path, suite, notes: list[str], first: bool) -> str:
    """Return "ok", "failed" or "skipped" after answering after ``given`` into ``forced``."""
    from mimicry.generate.forced import answer_after

    try:
        # the given traces are passed in memory, so a moved run folder still resumes
        # (their provenance is checked in _fresh_given through the own traces' hash)
        res = answer_after(model_spec(m), given, suite, forced,
                           batch_size=cfg.generation.batch_size,
                           max_answer_tokens=cfg.reliance.max_answer_tokens,
                           chat_template=m.chat_template, name=m.key,
                           device=default_device(m), **scale.reliance_kwargs(cfg))
    except ModelNotFoundError as e:
        notes.append(f"{m.key}: could not be loaded ({e.render()})")
        return "failed"
    except InputError as e:
        if "can be answered after" not in str(e):
            raise
        notes.append(f"{m.key}: skipped, nothing in {given_path.name} to answer after "
                     f"({e.render()})")
        return "skipped"
    except OSError as e:  # weights missing or unreadable half-way
        line = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        notes.append(f"{m.key}: could not be loaded or run ({type(e).__name__}: {line})")
        return "failed"
    s = getattr(res, "summary", {})
    if first and s.get("skipped_truncated"):
        notes.append(f"{m.key}: {s['skipped_truncated']} traces cut before </think> "
                     "not answered after (counted by the probe)")
    cut = s.get("length_finished", 0)
    if cut:
        notes.append(f"{m.key}: {cut} of {len(res)} answers in {forced.name} hit the budget "
                     f"of {s.get('answer_budget', cfg.reliance.max_answer_tokens)} tokens "
                     f"([reliance] max_answer_tokens = {cfg.reliance.max_answer_tokens!r}; "
                     "an answer cut before it is given scores as wrong: raise it if this "
                     "is not rare)")
    return "ok"


def _control(m: ModelConfig, traces: list, control: str, notes: list[str]) -> list:
    """Return the ``control`` ("empty"/"filler") copies of ``traces``.

    The filler is matched in the model's own tokens; without its tokenizer (an API model
    whose tokenizer cannot be loaded here) it is one filler unit per reasoning token, noted.
    """
    from mimicry.models import load_tokenizer
    from mimicry.traces.controls import empty_traces, filler_traces

    if control == "empty":
        return empty_traces(traces)
    try:
        tok = load_tokenizer(model_spec(m))
    except (ModelNotFoundError, OSError, ValueError) as e:
        line = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        notes.append(f"{m.key}: its tokenizer could not be loaded ({line}): the filler is one "
                     "unit per reasoning token, not matched in the model's tokens")
        tok = None
    return filler_traces(traces, tokenizer=tok)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _first_meta(path: Path, model: str | None = None) -> dict[str, Any] | None:
    try:
        rows = read_traces(path)
    except InputError:
        return None
    rows = [t for t in rows if model is None or t.model == model]
    return rows[0].meta if rows else None


def _meta_matches(meta: dict, want: dict) -> bool:
    """Return whether ``meta`` holds ``want`` (a dict value: those of its keys only)."""
    for k, v in want.items():
        if isinstance(v, dict):
            got = meta.get(k) or {}
            if not isinstance(got, dict) or any(got.get(kk) != vv for kk, vv in v.items()):
                return False
        elif meta.get(k) != v:
            return False
    return True


def _fresh_given(m: ModelConfig, dst: Path, forced: Path, want: dict,
                 make: Callable[[], list], notes: list[str]) -> list:
    """Return the traces to answer after, written to ``dst`` unless it holds them already.

    ``want``: the meta the given traces must carry (the own traces' hash, the scramble
    settings or control). A ``dst`` made otherwise is rewritten from ``make()``, and the
    answers after it (``forced``) removed: they were made after another text.
    """
    if dst.exists():
        try:
            rows = read_traces(dst)
        except InputError:
            rows = []
        if rows and _meta_matches(rows[0].meta, want):
            return rows
        notes.append(f"{m.key}: {dst.name} was made from other traces or settings: "
                     f"rewritten, and {forced.name} made anew")
        forced.unlink(missing_ok=True)
    out = list(make())
    for t in out:
        t.meta.update({k: v for k, v in want.items() if not isinstance(v, dict)})
    dst.parent.mkdir(parents=True, exist_ok=True)
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
