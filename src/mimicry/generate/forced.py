"""``answer_after()``: let a model answer after a GIVEN reasoning (e.g. its own, scrambled).

The behavioural half of the format-vs-content ablation (Lanham et al. 2023, "Measuring
faithfulness in chain-of-thought reasoning"): does the model's answer depend on what its
reasoning says? Each trace's prompt and reasoning are laid out exactly as capture lays them
out (chat template + ``<think>\\n`` + reasoning + ``\\n</think>``, see
:func:`mimicry.traces.prompt.build_text`); the model then decodes the answer greedily
(batched, LEFT padding, explicit attention mask) and the answer is scored against the suite.

Feed it :func:`mimicry.traces.scramble.scramble_traces` of the model's own traces and compare the
accuracy with the model's own run (``probes.reliance``): a model whose reasoning does work
loses accuracy when its reasoning's content is destroyed; a model that only copies the form
does not. Traces cut by the length limit (no ``</think>``) cannot be continued after the
reasoning: they are skipped and counted. Re-running skips items already in ``out``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..models import ModelSpec
from ..tasks import scoring
from ..tasks.items import Item, TaskSuite
from ..traces import Trace, append_traces, read_traces
from .generation import (
    GenerateResult,
    _resolve_suite,
    repair_partial_tail,
    summarize,
    template_setting,
)
from .hf import HFBackend
from .segments import decode_ids, strip_stop

# Settings that must match for a resumed run to append to an existing file. The reasoning
# itself is checked by content (each kept row's reasoning == the given one), not by file name.
RESUME_KEYS = ("max_answer_tokens", "chat_template")
AUTO_MIN = 64  # "auto" budget: max(AUTO_MIN, 2 × the longest own answer of the given traces)


def answer_budget(max_answer_tokens: int | str, traces: Sequence[Trace]) -> int:
    """Return the decoding budget per answer: an int as given, or the ``"auto"`` budget.

    ``"auto"`` = max(64, 2 × the longest ``answer_tokens`` among ``traces``): a model that
    wrote a long summary before its final answer (R1-style) gets room to write it again,
    so an answer is not cut — and scored wrong — only for lack of budget.
    """
    if max_answer_tokens == "auto":
        return max(AUTO_MIN, 2 * max((t.answer_tokens or 0 for t in traces), default=0))
    if isinstance(max_answer_tokens, bool) or not isinstance(max_answer_tokens, int) \
            or max_answer_tokens < 1:
        raise InputError(f"max_answer_tokens must be 'auto' or a whole number >= 1, got "
                         f"{max_answer_tokens!r}")
    return max_answer_tokens


def _locked_output(fn):
    """Run ``fn(model, traces, suite, out, ...)`` holding the writer lock of ``out``."""
    import functools

    from ..locking import writer_lock

    @functools.wraps(fn)
    def wrapper(model, traces, suite, out, *args, **kwargs):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with writer_lock(out, "generate"):
            return fn(model, traces, suite, out, *args, **kwargs)
    return wrapper


@_locked_output
def answer_after(model: ModelSpec | str, traces: Sequence[Trace] | str | Path,
                 suite: TaskSuite | Sequence[Item] | str, out: str | Path, *,
                 batch_size: int = 8, max_answer_tokens: int | str = "auto",
                 chat_template: str = "auto",
                 device: str | None = None, dtype: str | None = None, name: str | None = None,
                 progress: bool = True, hf_model=None, tokenizer=None, backend: str = "hf",
                 **server) -> GenerateResult:
    """Return one :class:`Trace` per usable input trace, its answer decoded after its reasoning.

    ``traces``: a traces file or list (the reasoning to answer after, e.g. scrambled own
    traces). Rows are appended to ``out`` per batch; a re-run skips items ``out`` already holds
    for ``name`` (default: the model's short name). The returned list's ``.summary`` counts
    answered, skipped-as-done and ``skipped_truncated`` items (no ``</think>`` to answer after)
    and items whose id is not in ``suite`` (``not_in_suite``). ``max_answer_tokens``: the
    decoding budget per answer, or ``"auto"`` (max(64, 2 × the longest own answer among the
    given traces), recorded as ``answer_budget``); an answer cut by it has
    ``finish_reason == "length"`` and usually scores as wrong. ``hf_model``/``tokenizer``: an
    already loaded model (else ``model`` is loaded). ``backend="openai"``: the answers come
    from an OpenAI-compatible server's ``/v1/completions`` (``server``: ``base_url``,
    ``api_key``, ``tokenizer``, ``concurrency``; see :mod:`.forced_openai`), same prompt
    text, budget and scoring.
    """
    from tqdm.auto import tqdm

    from ..traces.prompt import build_text

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    answer_budget(max_answer_tokens, [])  # validates
    src = str(traces) if isinstance(traces, (str, Path)) else "<in memory>"
    given = read_traces(traces) if isinstance(traces, (str, Path)) else list(traces)
    items = {it.item_id: it for it in _resolve_suite(suite)}
    spec = ModelSpec.coerce(model)
    if chat_template != "auto":  # as generate(): load_tokenizer sets a custom template
        spec = dataclasses.replace(spec, chat_template=chat_template)
    model_name = name or spec.short_name
    out = Path(out)
    settings = {"max_answer_tokens": max_answer_tokens,
                "chat_template": template_setting(chat_template), "reasoning_file": src}
    not_in_suite = [t.item_id for t in given if t.item_id not in items]
    truncated = [t.item_id for t in given if t.item_id in items and t.cut_before_answer]
    usable = [t for t in given if t.item_id in items and not t.cut_before_answer]
    if not usable:
        raise InputError(f"no trace in {src} can be answered after: {len(not_in_suite)} not in "
                         f"the suite, {len(truncated)} cut before </think>",
                         fix="pass traces of the suite's items that finished their reasoning")
    ids = [t.item_id for t in usable]
    if len(set(ids)) != len(ids):
        raise InputError(f"{src}: several traces for one item", fix="give one trace per item")
    for t in usable:
        if not t.prompt or t.reasoning is None:
            what = "prompt" if not t.prompt else "reasoning"
            raise InputError(f"trace {t.item_id!r} has no {what} text",
                             file=None if src == "<in memory>" else src,
                             fix="answer_after needs the prompt and reasoning text of every "
                                 "trace (not only reasoning_tokens)")
    given_by = {t.item_id: t for t in usable}
    budget = answer_budget(max_answer_tokens, usable)

    existing: dict[str, Trace] = {}
    if out.exists():
        repair_partial_tail(out)
        if out.stat().st_size > 0:
            for t in read_traces(out):
                if t.model != model_name:
                    continue
                for k in RESUME_KEYS:
                    if t.meta.get(k) != settings[k]:
                        raise InputError(
                            f"{out} already holds forced answers of '{model_name}' made with "
                            f"{k}={t.meta.get(k)!r}; this run asks for {settings[k]!r}",
                            file=out, fix="use the same settings, or another --out")
                if t.meta.get("answer_budget", budget) != budget:
                    raise InputError(
                        f"{out} already holds answers of '{model_name}' decoded with a budget "
                        f"of {t.meta['answer_budget']} tokens; max_answer_tokens="
                        f"{max_answer_tokens!r} gives {budget} for these traces", file=out,
                        fix="pass the same max_answer_tokens as a number, or use another --out")
                g = given_by.get(t.item_id)
                if g is not None and (t.reasoning or "") != (g.reasoning or ""):
                    raise InputError(
                        f"{out} already holds an answer of '{model_name}' to item "
                        f"{t.item_id!r} after another reasoning than {src} gives",
                        file=out, fix="use another --out for other reasoning (e.g. another "
                                      "scramble seed)")
                existing[t.item_id] = t
    todo = [t for t in usable if t.item_id not in existing]
    new: dict[str, Trace] = {}
    if todo:
        # the hf backend loads the model, pads left, finds the stops and builds the greedy
        # config exactly as for the model's own generation
        be = _answerer(backend, spec, device, dtype, hf_model, tokenizer, server)
        tok, stops = be.tok, be.stop_ids
        gen_cfg = be.generation_config(budget, 0.0, 1.0)
        templated = chat_template != "none" and bool(getattr(tok, "chat_template", None))
        texts = {}
        for t in todo:
            text, _, r_end, _ = build_text(tok, t, chat_template)
            texts[t.item_id] = text[:r_end]
        n_tok = {k: len(tok(v, add_special_tokens=not templated)["input_ids"])
                 for k, v in texts.items()}
        order = sorted(todo, key=lambda t: (-n_tok[t.item_id], t.item_id))
        bar = tqdm(total=len(order), desc=f"answer after reasoning ({model_name})", unit="item",
                   disable=not progress)
        try:
            for s in range(0, len(order), batch_size):
                batch = order[s:s + batch_size]
                gen, dt = be.generate_batch([texts[t.item_id] for t in batch], templated,
                                            gen_cfg)
                rows = []
                for t, g in zip(batch, gen):
                    kept, stopped = strip_stop(g, set(stops))
                    # decoded as generate() decodes a completion, so answers compare
                    answer = decode_ids(tok, kept).strip()
                    item = items[t.item_id]
                    parsed, correct = scoring.score_answer(item, answer)
                    rows.append(Trace(
                        item_id=t.item_id, model=model_name, task=item.task, prompt=t.prompt,
                        reasoning=t.reasoning, answer_text=answer, parsed_answer=parsed,
                        correct=bool(correct), reasoning_tokens=t.reasoning_tokens,
                        answer_tokens=len(kept), finish_reason="stop" if stopped else "length",
                        backend=f"{be.name}-forced", seconds=round(dt, 6),
                        meta={**settings, "answer_budget": budget,
                              "forced_reasoning": True, "think_closed": True,
                              "reasoning_from": t.model,
                              "prompt_tokens": n_tok[t.item_id],
                              "model_path": spec.name_or_path,
                              **({} if be.name == "hf" else be.describe()),
                              "mimicry_version": __version__}))
                append_traces(out, rows)
                new.update((r.item_id, r) for r in rows)
                bar.update(len(batch))
        finally:
            bar.close()
    result = GenerateResult(existing.get(i) or new[i] for i in ids)
    result.summary = {"model": model_name, "out": str(out),
                      **summarize(result, skipped=len(usable) - len(todo), generated=len(new)),
                      "answer_budget": budget,
                      "skipped_truncated": len(truncated), "not_in_suite": len(not_in_suite)}
    if progress:
        s = result.summary
        acc = "n/a" if s["accuracy"] is None else f"{100 * s['accuracy']:.1f}%"
        logging.getLogger(__name__).info(f"{model_name}: answered after {s['items']} given reasonings ({s['generated']} "
              f"new), accuracy {acc}; {s['length_finished']} answers cut at the budget of "
              f"{budget} tokens; skipped {len(truncated)} cut before </think> and "
              f"{len(not_in_suite)} not in the suite -> {out}")
    return result



def _answerer(backend: str, spec, device, dtype, hf_model, tokenizer, server: dict):
    if backend == "hf":
        if server:
            raise InputError(f"unknown option(s) {sorted(server)} for the hf backend",
                             fix="base_url/api_key/concurrency belong to backend='openai'")
        return HFBackend(spec, device=device, dtype=dtype, model=hf_model, tokenizer=tokenizer)
    if backend == "openai":
        from .forced_openai import CompletionsAnswerer

        bad = sorted(set(server) - {"base_url", "api_key", "tokenizer", "concurrency",
                                    "timeout", "max_retries", "backoff"})
        if bad:
            raise InputError(f"unknown option(s) {bad} for the openai backend",
                             fix="use base_url, api_key, tokenizer, concurrency, timeout")
        return CompletionsAnswerer(spec, **server)
    raise InputError(f"unknown answer backend {backend!r}", fix="use 'hf' or 'openai'")
