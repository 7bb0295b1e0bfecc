"""Answers after a given reasoning from an OpenAI-compatible server's ``/v1/completions``.

The served-model path of :func:`mimicry.generate.forced.answer_after` (``backend="openai"``):
the prompt is the same text the hf path feeds its model — the rendered chat prompt +
``<think>\\n`` + the given reasoning + ``\\n</think>`` (:func:`mimicry.capture.segments.
build_text`), sent as a raw completion prompt (no chat template on the server) — and the server
continues with the answer, greedily (``temperature=0``), under the same token budget. vLLM,
SGLang and ``transformers serve`` accept such prompts. The answer text is re-tokenised with
the local tokenizer and handed back as ids (plus an eos id when the server stopped by
itself), so answer_after strips, decodes, counts and scores exactly as for the hf path.

The server tokenises the prompt itself with its usual special tokens; a leading BOS that
the chat template already wrote is removed from the text so the model sees one BOS, as on
the hf path. ``usage.prompt_tokens`` is compared with the local count and a difference is
logged (the server then sees another token sequence than the hf path would).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..errors import MimicryError
from ..models import ModelSpec
from .openai_backend import OpenAIBackend, _short, load_counting_tokenizer

log = logging.getLogger(__name__)


class CompletionsAnswerer:
    """Stands in for :class:`~mimicry.generate.hf.HFBackend` in ``answer_after``.

    Offers what answer_after uses: ``tok``, ``stop_ids``, ``generation_config``,
    ``generate_batch`` and ``describe``. ``tokenizer``: a local folder/hub id of the served
    model's tokenizer (default: the model's own name). Requests of one batch run
    concurrently.
    """

    name = "openai"

    def __init__(self, spec: ModelSpec, *, base_url: str | None = None,
                 api_key: str | None = None, tokenizer: str | None = None,
                 timeout: float = 600.0, max_retries: int = 5, backoff: float = 1.0,
                 concurrency: int = 8) -> None:
        self.client = OpenAIBackend(spec, base_url=base_url, api_key=api_key,
                                    concurrency=concurrency, timeout=timeout,
                                    max_retries=max_retries, backoff=backoff)
        self.spec = spec
        self.tok = load_counting_tokenizer(tokenizer or spec.name_or_path)
        if spec.chat_template not in (None, "auto", "none"):
            self.tok.chat_template = spec.chat_template
        eos = self.tok.eos_token_id
        if eos is None:
            raise MimicryError(f"tokenizer of '{spec.name_or_path}' has no eos token, so a "
                               "finished answer cannot be told from a cut one",
                               fix="pass --tokenizer with the served model's tokenizer")
        self.stop_ids = [int(eos)]
        self.prompt_mismatches = 0

    def describe(self) -> dict:
        """Return backend facts recorded in each row's meta."""
        return {"base_url": self.client.base_url, "server_model": self.spec.name_or_path,
                "endpoint": "completions"}

    def generation_config(self, max_new_tokens: int, temperature: float, top_p: float) -> dict:
        """Return the request fields for this budget (greedy when ``temperature`` is 0)."""
        return {"max_tokens": int(max_new_tokens), "temperature": float(temperature),
                "top_p": float(top_p)}

    def _prompt(self, text: str, templated: bool) -> tuple[str, int]:
        n_local = len(self.tok(text, add_special_tokens=not templated)["input_ids"])
        bos = self.tok.bos_token
        if templated and bos and text.startswith(bos):
            with_specials = self.tok(text, add_special_tokens=True)["input_ids"]
            if len(with_specials) > n_local:  # the server's tokenizer would add a second BOS
                text = text[len(bos):]
        return text, n_local

    def _request(self, prompt: str, fields: dict):
        c = self.client
        last: Exception | None = None
        for attempt in range(c.max_retries + 1):
            try:
                return c.client.completions.create(model=self.spec.name_or_path, prompt=prompt,
                                                   **fields)
            except c.openai.APIError as e:
                if not c._is_transient(e):
                    raise MimicryError(
                        f"server {c.base_url} refused a completion request (HTTP "
                        f"{getattr(e, 'status_code', '?')}: {_short(e)})",
                        fix=f"check that it serves '{self.spec.name_or_path}' and offers "
                            "/v1/completions") from None
                last = e
            if attempt < c.max_retries:
                time.sleep(min(60.0, c.backoff * 2 ** attempt) * (1 + 0.25 * random.random()))
        raise MimicryError(f"server {c.base_url} failed {c.max_retries + 1} times "
                           f"({_short(last)})",
                           fix="check --base-url and that the server is up; finished answers "
                               "are kept, re-run to resume")

    def _one(self, text: str, templated: bool, fields: dict) -> list[int]:
        prompt, n_local = self._prompt(text, templated)
        resp = self._request(prompt, fields)
        choice = resp.choices[0]
        n_srv = getattr(getattr(resp, "usage", None), "prompt_tokens", None)
        if n_srv is not None and int(n_srv) != n_local:
            self.prompt_mismatches += 1
            log.warning("server tokenised a prompt into %s tokens, the local tokenizer into %s; "
                        "its answers may differ from the hf path's", n_srv, n_local)
        ids = self.tok(choice.text or "", add_special_tokens=False)["input_ids"]
        if choice.finish_reason != "length":
            ids = [*ids, self.stop_ids[0]]  # stopped by itself: strip_stop finds the stop
        return list(ids)

    def generate_batch(self, texts: Sequence[str], templated: bool,
                       gen_cfg: dict) -> tuple[list[list[int]], float]:
        """Return (answer ids per text, an eos id appended when stopped; seconds per text)."""
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, min(self.client.concurrency,
                                                       len(texts)))) as pool:
            out = list(pool.map(lambda t: self._one(t, templated, gen_cfg), texts))
        return out, (time.perf_counter() - t0) / max(1, len(texts))
