"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM, SGLang, TGI,
``transformers serve``).

The server applies the model's chat template. Reasoning comes from the message's
``reasoning_content`` (or ``reasoning``) field when the server runs a reasoning parser, else
from ``<think>…</think>`` inside ``content``. Token counts, in order of preference (the one
used is recorded in ``meta["token_count_source"]``):

1. ``server_reasoning_tokens``: ``usage.completion_tokens_details.reasoning_tokens``;
   answer = ``completion_tokens`` − reasoning.
2. ``local_tokenizer``: the ``tokenizer`` given here counts the reasoning and answer text
   (exact when the model's output is canonically tokenised, which is the normal case).
3. ``server_completion_tokens_char_split``: ``usage.completion_tokens`` split between
   reasoning and answer in proportion to their characters (approximate; includes tag and
   possibly eos tokens).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from ..errors import InputError, MimicryError
from ..models import ModelSpec
from ..tasks.items import Item
from ..traces import THINK_CLOSE, THINK_OPEN, split_reasoning
from ..traces.prompt import prompt_opens_think, render_prompt
from .hf import Completion
from .segments import Segmented, count_text_tokens

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def api_key_from_env() -> str:
    """Return ``MIMICRY_API_KEY``, else ``OPENAI_API_KEY``, else ``"EMPTY"`` (local servers)."""
    return os.environ.get("MIMICRY_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"


def load_counting_tokenizer(name_or_path: str):
    """Return a tokenizer for counting tokens (a local folder or a cached hub id)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputError(f"cannot load tokenizer '{name_or_path}' ({first})",
                         fix="pass a local folder holding tokenizer.json/tokenizer_config.json "
                             "or a hub id available offline") from None


def raw_segments(text: str, *, prompt_opens_think: bool, finish_reason: str | None
                 ) -> tuple[str, str]:
    """Return the unstripped ``(reasoning, answer)`` text, split as :func:`split_reasoning`."""
    opened = prompt_opens_think
    if text.lstrip().startswith(THINK_OPEN):
        text = text[text.find(THINK_OPEN) + len(THINK_OPEN):]
        opened = True
    idx = text.find(THINK_CLOSE)
    if idx >= 0:
        return text[:idx], text[idx + len(THINK_CLOSE):]
    if opened or finish_reason == "length":
        return text, ""
    return "", text


class OpenAIBackend:
    """Concurrent chat-completion requests with retries, backoff and a per-request timeout."""

    name = "openai"

    def __init__(self, spec: ModelSpec, *, base_url: str | None = None,
                 api_key: str | None = None, concurrency: int = 8, timeout: float = 600.0,
                 max_retries: int = 5, backoff: float = 1.0, tokenizer: str | None = None,
                 extra_body: dict | None = None) -> None:
        try:
            import openai
        except ImportError:  # pragma: no cover - the 'serve' extra
            raise InputError("the openai backend needs the 'openai' package",
                             fix="pip install 'mimicry[serve]'") from None
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise InputError("the openai backend needs a server address",
                             fix="pass --base-url http://HOST:PORT/v1 (or set OPENAI_BASE_URL)")
        if concurrency < 1:
            raise InputError(f"concurrency must be >= 1, got {concurrency}")
        self.openai = openai
        self.spec = spec
        self.base_url = base_url
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.extra_body = dict(extra_body or {})
        self.tokenizer_name = tokenizer
        self.tok = load_counting_tokenizer(tokenizer) if tokenizer else None
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or api_key_from_env(),
                                    timeout=self.timeout, max_retries=0)
        self._lock = threading.Lock()
        self.retries_used = 0

    def describe(self) -> dict[str, Any]:
        """Return backend facts recorded in every trace's meta."""
        return {"base_url": self.base_url, "server_model": self.spec.name_or_path,
                "concurrency": self.concurrency, "counting_tokenizer": self.tokenizer_name}

    # -- one request ---------------------------------------------------------------------
    def _is_transient(self, err: Exception) -> bool:
        o = self.openai
        if isinstance(err, (o.APIConnectionError, o.RateLimitError, o.InternalServerError)):
            return True
        return isinstance(err, o.APIStatusError) and err.status_code in TRANSIENT_STATUS

    def request(self, prompt: str, *, max_new_tokens: int, temperature: float, top_p: float,
                seed: int):
        """Return the server's response to one chat completion (retrying transient errors)."""
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                return self.client.chat.completions.create(
                    model=self.spec.name_or_path,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=int(max_new_tokens), temperature=float(temperature),
                    top_p=float(top_p), seed=int(seed), n=1,
                    extra_body=self.extra_body or None)
            except self.openai.APIError as e:
                if not self._is_transient(e):
                    status = getattr(e, "status_code", "?")
                    raise MimicryError(
                        f"server {self.base_url} refused the request (HTTP {status}: "
                        f"{_short(e)})",
                        fix=f"check that it serves model '{self.spec.name_or_path}' and "
                            "accepts chat completions") from None
                last = e
            if attempt < self.max_retries:
                with self._lock:
                    self.retries_used += 1
                time.sleep(min(60.0, self.backoff * 2 ** attempt) * (1 + 0.25 * random.random()))
        raise MimicryError(
            f"server {self.base_url} failed {self.max_retries + 1} times ({_short(last)})",
            fix="check --base-url and that the server is up; finished items are kept, "
                "re-run to resume")

    def completion_from_response(self, item_id: str, resp, *, prompt_opened: bool,
                                 seconds: float) -> Completion:
        """Return a :class:`Completion` (split + token counts) from a chat response."""
        choice = resp.choices[0]
        msg = choice.message
        extra = getattr(msg, "model_extra", None) or {}
        content = msg.content or ""
        rc = getattr(msg, "reasoning_content", None) or extra.get("reasoning_content") \
            or extra.get("reasoning")
        finish = choice.finish_reason or "stop"
        if rc:  # the server split it (reasoning parser)
            r_raw, a_raw = rc, content
            closed = bool(content.strip()) or finish != "length"
            completion = f"{THINK_OPEN}{rc}{THINK_CLOSE}{content}" if closed \
                else f"{THINK_OPEN}{rc}"
            reasoning, answer = rc.strip(), content.strip()
        else:
            reasoning, answer, closed = split_reasoning(
                content, prompt_opens_think=prompt_opened, finish_reason=finish)
            r_raw, a_raw = raw_segments(content, prompt_opens_think=prompt_opened,
                                        finish_reason=finish)
            completion = content
        usage = getattr(resp, "usage", None)
        ct = getattr(usage, "completion_tokens", None)
        details = getattr(usage, "completion_tokens_details", None)
        srv_rt = getattr(details, "reasoning_tokens", None)
        if srv_rt is not None and (srv_rt > 0 or not reasoning) and ct is not None:
            r_tok, a_tok, source = int(srv_rt), max(0, int(ct) - int(srv_rt)), \
                "server_reasoning_tokens"
        elif self.tok is not None:
            r_tok, a_tok = count_text_tokens(self.tok, r_raw), count_text_tokens(self.tok, a_raw)
            source = "local_tokenizer"
        elif ct is not None:
            total = len(r_raw) + len(a_raw)
            a_tok = 0 if not a_raw else (int(ct) if not r_raw else round(ct * len(a_raw) / total))
            r_tok, source = int(ct) - a_tok, "server_completion_tokens_char_split"
        else:
            raise MimicryError(f"server {self.base_url} sent no usage.completion_tokens",
                               fix="pass --tokenizer NAME_OR_PATH to count tokens locally")
        seg = Segmented(completion=completion, reasoning=reasoning, answer=answer,
                        closed=closed, reasoning_tokens=r_tok, answer_tokens=a_tok)
        meta = {"token_count_source": source, "server_completion_tokens": ct,
                "server_reasoning_field": bool(rc), "server_finish_reason": choice.finish_reason}
        return Completion(item_id=item_id, seg=seg, finish_reason=finish, seconds=seconds,
                          prompt_opened_think=prompt_opened, meta=meta)

    def _one(self, item: Item, opened: bool, kw: dict) -> Completion:
        t0 = time.perf_counter()
        resp = self.request(item.prompt, **kw)
        return self.completion_from_response(item.item_id, resp, prompt_opened=opened,
                                             seconds=time.perf_counter() - t0)

    # -- the run -------------------------------------------------------------------------
    def run(self, items: Sequence[Item], *, batch_size: int, max_new_tokens: int,
            temperature: float, top_p: float, seed: int, chat_template: str,
            progress=None) -> Iterator[list[Completion]]:
        """Yield completions as requests finish (``concurrency`` in flight at a time)."""
        if chat_template != "auto":
            raise InputError(f"chat_template={chat_template!r} cannot be used with the openai "
                             "backend", fix="the server applies the model's own template; "
                             "use chat_template='auto'")
        kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                  seed=seed)
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        pending = set()
        queue = list(items)
        try:
            while queue or pending:
                while queue and len(pending) < self.concurrency:
                    it = queue.pop(0)
                    opened = bool(self.tok is not None and prompt_opens_think(
                        render_prompt(self.tok, it.prompt, "auto")))
                    pending.add(pool.submit(self._one, it, opened, kw))
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                results, errors = [], []
                for f in done:
                    (errors.append(f.exception()) if f.exception() is not None
                     else results.append(f.result()))
                if progress is not None:
                    progress.update(len(results))
                if results:
                    yield results  # written before any error below is raised
                if errors:
                    raise errors[0]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _short(err: Exception | None) -> str:
    if err is None:
        return "no error recorded"
    text = str(getattr(err, "message", None) or err).strip().replace("\n", " ")
    return f"{type(err).__name__}: {text[:200]}"
