"""openai backend against a REAL OpenAI-compatible server: ``transformers serve`` started on
127.0.0.1 by this module, serving tiny local models (no download, no fake server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from mimicry.errors import MimicryError
from mimicry.generate import generate
from mimicry.generate.openai_backend import OpenAIBackend, api_key_from_env, raw_segments
from mimicry.models import ModelSpec, load_model
from mimicry.tasks.items import HumanNorms, Item, TaskSuite

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

pytestmark = pytest.mark.slow  # starts a server (~20 s) and loads models in it

STARTUP_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of a ``transformers serve`` process on a free loopback port (torn down after)."""
    exe = Path(sys.executable).parent / "transformers"
    if not exe.exists():
        pytest.skip(f"no 'transformers' CLI next to {sys.executable}")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu", "--log-level", "warning"],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited ({proc.returncode}): "
                            f"{log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"transformers serve not up after {STARTUP_S}s: "
                                f"{log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def suite(prompts, answer="north"):
    return TaskSuite("s", [Item(f"q{i}", "demo", prompt=p, answer=answer,
                                human=HumanNorms(rt_ms=900.0 + i)) for i, p in enumerate(prompts)])


PROMPTS = ["Where is the bar?", "A is left of B. B is left of C. Is A left of C?"]
# No whitespace at the segment edges: the server's reasoning parser strips it (see below).
SCRIPT = "<think>First, compose the relations.</think>north<|im_end|>"
SCRIPT_SPACED = "<think> First, compose the relations.</think> north<|im_end|>"


def test_server_equals_hf_backend_on_reasoning_model(server, scripted_model_dir, tmp_path):
    path = scripted_model_dir("qwen2", [("\n", SCRIPT)])
    s = suite(PROMPTS)
    hf = generate(path, s, tmp_path / "hf.jsonl", max_new_tokens=30, progress=False)
    srv = generate(path, s, tmp_path / "srv.jsonl", backend="openai", base_url=server,
                   tokenizer=path, max_new_tokens=30, concurrency=2, progress=False)
    for a, b in zip(hf, srv):
        assert b.backend == "openai" and b.meta["token_count_source"] == "local_tokenizer"
        # transformers serve's qwen2 response parser returned reasoning_content
        assert b.meta["server_reasoning_field"] is True
        assert (b.reasoning, b.answer_text, b.finish_reason) == \
            (a.reasoning, a.answer_text, a.finish_reason) == \
            ("First, compose the relations.", "north", "stop")
        assert (b.reasoning_tokens, b.answer_tokens) == (a.reasoning_tokens, a.answer_tokens)
        assert b.correct is a.correct is True
        # the server counted every generated token: <think>, reasoning, </think>, answer, eos
        assert b.meta["server_completion_tokens"] == a.meta["generated_ids"] + 1


def test_server_strips_segment_edges_so_text_counts_differ(server, scripted_model_dir,
                                                            tmp_path):
    """Why local-tokenizer counts can differ from generated ids: the server's reasoning parser
    returns reasoning/answer stripped of edge whitespace, and ' First' (one BPE token with its
    space) re-tokenises differently from 'First'. Text and split still agree."""
    from mimicry.testing import build_tokenizer

    tok = build_tokenizer()
    path = scripted_model_dir("qwen2", [("\n", SCRIPT_SPACED)])
    s = suite(PROMPTS[:1])
    a = generate(path, s, tmp_path / "hf.jsonl", max_new_tokens=30, progress=False)[0]
    b = generate(path, s, tmp_path / "srv.jsonl", backend="openai", base_url=server,
                 tokenizer=path, max_new_tokens=30, progress=False)[0]
    assert (a.reasoning, a.answer_text) == (b.reasoning, b.answer_text)
    n = lambda text: len(tok(text, add_special_tokens=False).input_ids)  # noqa: E731
    assert a.reasoning_tokens == n(" First, compose the relations.")  # generated ids
    assert b.reasoning_tokens == n("First, compose the relations.")  # stripped server text
    assert (a.answer_tokens, b.answer_tokens) == (n(" north"), n("north"))
    assert a.reasoning_tokens != b.reasoning_tokens


def test_token_count_fallback_uses_server_usage(server, scripted_model_dir, tmp_path):
    path = scripted_model_dir("qwen2", [("\n", SCRIPT)])
    res = generate(path, suite(PROMPTS[:1]), tmp_path / "t.jsonl", backend="openai",
                   base_url=server, max_new_tokens=30, progress=False)
    t = res[0]
    assert t.meta["token_count_source"] == "server_completion_tokens_char_split"
    ct = t.meta["server_completion_tokens"]
    assert t.reasoning_tokens + t.answer_tokens == ct
    # answer share by characters: ' north' vs ' First, compose the relations.'
    r, a = "First, compose the relations.", "north"
    assert t.answer_tokens == round(ct * len(a) / (len(r) + len(a)))


@pytest.mark.parametrize("max_new", [30, 5])
def test_server_greedy_equals_local_greedy_on_random_model(server, tiny_model_dir, max_new,
                                                           tmp_path):
    # Llama has no response parser in transformers serve, so 'content' is the generated ids
    # decoded with skip_special_tokens=True: compare with the same decode of local greedy ids.
    path = tiny_model_dir("llama")
    model, tok = load_model(path)
    s = suite(PROMPTS)
    res = generate(path, s, tmp_path / "t.jsonl", backend="openai", base_url=server,
                   tokenizer=path, max_new_tokens=max_new, progress=False)
    for it, t in zip(s, res):
        ids = tok.apply_chat_template([{"role": "user", "content": it.prompt}],
                                      add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new, pad_token_id=tok.pad_token_id)
        gen = out[0, ids.shape[1]:].tolist()
        stopped = tok.eos_token_id in gen
        gen = gen[:gen.index(tok.eos_token_id)] if stopped else gen
        expect = tok.decode(gen, skip_special_tokens=True)
        assert t.meta["raw_completion"] == expect
        assert t.finish_reason == ("stop" if stopped else "length")
        assert t.meta["server_reasoning_field"] is False


def test_length_finish_reason_from_server(server, scripted_model_dir, tmp_path):
    path = scripted_model_dir("qwen2", [("\n", SCRIPT)])
    res = generate(path, suite(PROMPTS[:1]), tmp_path / "t.jsonl", backend="openai",
                   base_url=server, tokenizer=path, max_new_tokens=4, progress=False)
    t = res[0]
    hf = generate(path, suite(PROMPTS[:1]), tmp_path / "hf.jsonl", max_new_tokens=4,
                  progress=False)[0]
    assert t.finish_reason == hf.finish_reason == "length"
    assert t.answer_text == hf.answer_text == ""
    assert t.reasoning == hf.reasoning == "First,"  # <think> Fi rst ,
    assert t.reasoning_tokens == hf.reasoning_tokens == 3
    assert res.summary["truncated_without_think_close"] == 1


def test_unreachable_server_retries_then_one_clear_error(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    be = OpenAIBackend(ModelSpec("m"), base_url=url, max_retries=2, backoff=0.01, timeout=5)
    with pytest.raises(MimicryError, match="failed 3 times"):
        be.request("hi", max_new_tokens=4, temperature=0.0, top_p=1.0, seed=0)
    assert be.retries_used == 2
    out = tmp_path / "t.jsonl"
    with pytest.raises(MimicryError, match=url.replace(".", r"\.")):
        generate("m", suite(PROMPTS), out, backend="openai", base_url=url, max_retries=0,
                 progress=False)
    assert not out.exists()


def test_api_key_and_split_helpers(monkeypatch):
    monkeypatch.delenv("MIMICRY_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert api_key_from_env() == "EMPTY"
    monkeypatch.setenv("OPENAI_API_KEY", "a")
    assert api_key_from_env() == "a"
    monkeypatch.setenv("MIMICRY_API_KEY", "b")
    assert api_key_from_env() == "b"
    assert raw_segments("<think>\nx\n</think>\ny", prompt_opens_think=False,
                        finish_reason="stop") == ("\nx\n", "\ny")
    assert raw_segments("x", prompt_opens_think=True, finish_reason="stop") == ("x", "")
    assert raw_segments("x", prompt_opens_think=False, finish_reason="stop") == ("", "x")


def test_transient_error_is_retried_then_real_server_answers(server, scripted_model_dir):
    """The first attempt fails with a connection error (injected), the retry reaches the real
    server; a 4xx-style error is not retried."""
    import httpx
    import openai

    path = scripted_model_dir("qwen2", [("\n", SCRIPT)])
    be = OpenAIBackend(ModelSpec(path), base_url=server, max_retries=3, backoff=0.01)
    real = be.client.chat.completions.create
    calls = []

    def flaky(**kw):
        calls.append(kw)
        if len(calls) == 1:
            raise openai.APIConnectionError(request=httpx.Request("POST", server))
        return real(**kw)

    be.client.chat.completions.create = flaky
    resp = be.request("Where is the bar?", max_new_tokens=30, temperature=0.0, top_p=1.0,
                      seed=0)
    assert len(calls) == 2 and be.retries_used == 1
    assert resp.choices[0].message.content == "north"

    def bad_request(**kw):
        calls.append(kw)
        raise openai.BadRequestError("max_tokens too large", response=httpx.Response(
            400, request=httpx.Request("POST", server)), body=None)

    be.client.chat.completions.create = bad_request
    n = len(calls)
    with pytest.raises(MimicryError, match="HTTP 400"):
        be.request("x", max_new_tokens=30, temperature=0.0, top_p=1.0, seed=0)
    assert len(calls) == n + 1  # not retried
