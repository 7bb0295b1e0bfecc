"""``generate()``: run a model over a task suite and write one trace per item (resumable).

Backends (``hf``, ``openai``) produce :class:`~mimicry.generate.hf.Completion` objects; this
module scores them, turns them into :class:`~mimicry.traces.Trace` rows, appends each
finished batch to the JSONL output (whole, fsynced lines) and skips items already in the
output for the same model when re-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError
from ..fingerprint import model_identity
from ..locking import writer_lock
from ..models import ModelSpec
from ..tasks import scoring
from ..tasks.items import Item, TaskSuite
from ..traces import Trace, append_traces, read_traces
from .hf import Completion

# Settings that must match for a resumed run to append to an existing file.
RESUME_KEYS = ("backend", "max_new_tokens", "temperature", "top_p", "seed", "chat_template",
               "revision", "weights_hash", "tokenizer_files_hash")


class GenerateResult(list):
    """A ``list[Trace]`` (one per requested item, suite order) with a ``.summary`` dict."""

    summary: dict[str, Any]


log = logging.getLogger(__name__)


def _say(msg: str, progress: bool) -> None:
    if progress:
        log.info("%s", msg)


def repair_partial_tail(path: Path) -> bool:
    """Drop a partial last line (left by a crash mid-write); return True if one was dropped."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return False
        cut = data.rfind(b"\n") + 1
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    return True


def _resolve_suite(suite: TaskSuite | Sequence[Item] | str | Path) -> list[Item]:
    if isinstance(suite, (str, Path)):
        from ..tasks import registry

        suite = registry.load_suite(suite)
    return list(suite)


def template_setting(chat_template: str) -> str:
    """Return how ``chat_template`` is recorded in traces: auto, none, or custom:<sha256[:12]>."""
    if chat_template in ("auto", "none"):
        return chat_template
    return "custom:" + hashlib.sha256(chat_template.encode()).hexdigest()[:12]


def _check_settings(settings: dict[str, Any], done: list[Trace], out: Path) -> None:
    for t in done:
        for k in RESUME_KEYS:
            if k in ("weights_hash", "tokenizer_files_hash") and t.meta.get(k) and \
                    settings.get(k) and t.meta[k] != settings[k]:
                what = "weights" if k == "weights_hash" else "tokenizer files"
                raise InputError(
                    f"model '{t.model}' already has traces from other {what} ({k} "
                    f"{t.meta[k]} here, {settings[k]} now): same name, different model",
                    file=out, fix="write to another --out (or --name), or give the model "
                                  "the traces were made with")
            if k in ("weights_hash", "tokenizer_files_hash"):
                continue
            if k in t.meta and t.meta[k] != settings[k]:
                raise InputError(
                    f"model '{t.model}' already has traces made with {k}={t.meta[k]!r}, "
                    f"this run asks for {k}={settings[k]!r}", file=out,
                    fix="resume with the same settings, or write to another --out")


def build_trace(item: Item, c: Completion, *, model_name: str, backend: str,
                settings: dict[str, Any], extra_meta: dict[str, Any]) -> Trace:
    """Return the scored :class:`Trace` for one completion."""
    parsed, correct = scoring.score_answer(item, c.seg.answer)
    meta = {**settings, **extra_meta, **c.meta,
            "prompt_opened_think": c.prompt_opened_think, "think_closed": c.seg.closed,
            "raw_completion": c.seg.completion, "mimicry_version": __version__}
    return Trace(
        item_id=item.item_id, model=model_name, task=item.task, prompt=item.prompt,
        reasoning=c.seg.reasoning, answer_text=c.seg.answer, parsed_answer=parsed,
        correct=bool(correct), reasoning_tokens=int(c.seg.reasoning_tokens),
        answer_tokens=int(c.seg.answer_tokens), finish_reason=c.finish_reason,
        backend=backend, seconds=round(float(c.seconds), 6), meta=meta)


def summarize(traces: Sequence[Trace], *, skipped: int = 0, generated: int = 0) -> dict:
    """Return counts for a run: items, accuracy, truncated (length, no ``</think>``), unparsed."""
    n = len(traces)
    trunc = [t.item_id for t in traces
             if t.finish_reason == "length" and not t.meta.get("think_closed", False)]
    return {
        "items": n, "generated": generated, "skipped": skipped,
        "accuracy": (sum(bool(t.correct) for t in traces) / n) if n else None,
        "length_finished": sum(t.finish_reason == "length" for t in traces),
        "truncated_without_think_close": len(trunc),
        "truncated_ids": trunc[:20],
        "unparsed_answers": sum(t.parsed_answer is None for t in traces),
    }


def _make_backend(backend: str, spec: ModelSpec, device, dtype, backend_kwargs: dict):
    if backend == "hf":
        from .hf import HFBackend

        return HFBackend(spec, device=device, dtype=dtype, **backend_kwargs)
    if backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(spec, **backend_kwargs)
    raise InputError(f"unknown backend {backend!r}", fix="use 'hf' or 'openai'")


def generate(model: ModelSpec | str, suite: TaskSuite | Sequence[Item] | str, out: str | Path,
             *, backend: str = "hf", batch_size: int = 8, max_new_tokens: int = 4096,
             seed: int = 0, temperature: float = 0.0, top_p: float = 1.0,
             chat_template: str = "auto", device: str | None = None, dtype: str | None = None,
             progress: bool = True, limit: int | None = None, name: str | None = None,
             **backend_kwargs: Any) -> GenerateResult:
    """Return one :class:`Trace` per item (suite order), generating those not yet in ``out``.

    ``model``: ModelSpec, hub id or local folder (for ``openai``: the server's model name).
    ``suite``: TaskSuite, list of Items, or a suite name/file for ``load_suite``.
    Rows are appended to ``out`` as batches finish; re-running skips items that ``out``
    already holds for the same model name (``name``, default the model's last path part).
    Greedy when ``temperature == 0`` (the paper's setting). ``backend_kwargs`` go to the
    backend (openai: ``base_url``, ``api_key``, ``concurrency``, ``timeout``,
    ``max_retries``, ``tokenizer``).
    """
    spec = ModelSpec.coerce(model)
    if chat_template != "auto":
        spec = dataclasses.replace(spec, chat_template=chat_template)
    model_name = name or spec.short_name
    out = Path(out)
    items = _resolve_suite(suite)
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be >= 1, got {limit}")
        items = items[:limit]
    _validate(items, batch_size, max_new_tokens, temperature, top_p)
    preflight_generate(spec, out, backend, device, chat_template)
    ident = model_identity(spec.name_or_path, spec.revision) if backend == "hf" else {}
    settings = {"backend": backend, "max_new_tokens": int(max_new_tokens),
                "temperature": float(temperature), "top_p": float(top_p), "seed": int(seed),
                "chat_template": template_setting(chat_template),
                "revision": spec.revision, "model_path": spec.name_or_path,
                "batch_size": int(batch_size), **ident}
    out.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(out, "generate"):  # a second writer is refused before it reads or writes
        return _generate_locked(spec, items, out, settings, model_name, backend, batch_size,
                                max_new_tokens, temperature, top_p, seed, chat_template,
                                device, dtype, progress, backend_kwargs)


def preflight_generate(spec: ModelSpec, out: Path, backend: str, device: str | None,
                       chat_template: str) -> None:
    """Raise a one-line error now for a bad --out, model folder, device or template."""
    from ..models import check_model_source
    from ..preflight import check_chat_template, check_device, check_output_file

    check_output_file(out)
    check_chat_template(chat_template)
    if backend == "hf":
        check_device(device)
        check_model_source(spec, weights=True)


def _generate_locked(spec, items, out, settings, model_name, backend, batch_size,
                     max_new_tokens, temperature, top_p, seed, chat_template, device, dtype,
                     progress, backend_kwargs) -> GenerateResult:
    from tqdm.auto import tqdm

    existing: dict[str, Trace] = {}
    if out.exists():
        if repair_partial_tail(out):
            _say(f"{out}: dropped a partial last line left by an interrupted run", progress)
        if out.stat().st_size > 0:
            mine = [t for t in read_traces(out) if t.model == model_name]
            _check_settings(settings, mine, out)
            existing = {t.item_id: t for t in mine}
    todo = [it for it in items if it.item_id not in existing]
    skipped = len(items) - len(todo)
    if skipped:
        _say(f"resume: {skipped} of {len(items)} items already in {out} for model "
             f"'{model_name}'; generating {len(todo)}", progress)

    new: dict[str, Trace] = {}
    if todo:
        be = _make_backend(backend, spec, device, dtype, backend_kwargs)
        if backend == "hf" and not settings.get("weights_hash"):
            settings.update(model_identity(spec.name_or_path, spec.revision))  # now cached
            _check_settings(settings, list(existing.values()), out)
        extra = be.describe()
        by_id = {it.item_id: it for it in todo}
        bar = tqdm(total=len(todo), desc=f"generate {model_name}", unit="item",
                   disable=not progress)
        try:
            for batch in be.run(todo, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                temperature=temperature, top_p=top_p, seed=seed,
                                chat_template=chat_template, progress=bar):
                traces = [build_trace(by_id[c.item_id], c, model_name=model_name,
                                      backend=be.name, settings=settings, extra_meta=extra)
                          for c in batch]
                append_traces(out, traces)
                new.update((t.item_id, t) for t in traces)
        finally:
            bar.close()

    result = GenerateResult(existing.get(it.item_id) or new[it.item_id] for it in items)
    result.summary = {"model": model_name, "out": str(out),
                      **summarize(result, skipped=skipped, generated=len(new))}
    s = result.summary
    _say(f"{model_name}: {s['items']} items ({s['generated']} generated, {s['skipped']} "
         f"skipped as already done), accuracy {_pct(s['accuracy'])}, "
         f"{s['truncated_without_think_close']} truncated at max_new_tokens without "
         f"</think>, {s['unparsed_answers']} unparsed answers -> {out}", progress)
    return result


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _validate(items: list[Item], batch_size: int, max_new_tokens: int, temperature: float,
              top_p: float) -> None:
    if not items:
        raise InputError("the task suite has no items", fix="check --tasks")
    for it in items:
        if not it.prompt:
            raise InputError(f"item '{it.item_id}' has no prompt",
                             fix="generation needs a 'prompt' for every item")
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise InputError(f"temperature must be >= 0, got {temperature}",
                         fix="0 means greedy decoding")
    if not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {top_p}")
