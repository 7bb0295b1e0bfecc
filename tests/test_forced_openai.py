"""Reliance through a REAL server: answer_after(backend="openai") against ``transformers serve``
on 127.0.0.1 (``/v1/completions``) gives the hf backend's greedy answers item by item, on the
organism teacher (a trained checkpoint whose answers depend on its reasoning)."""

from __future__ import annotations

import pytest

pytest.importorskip("openai")
from test_openai_backend import server  # noqa: E402,F401  (the real server fixture)

from mimicry.errors import InputError  # noqa: E402
from mimicry.generate import answer_after, generate  # noqa: E402
from mimicry.models import load_model  # noqa: E402
from mimicry.traces.scramble import scramble_traces  # noqa: E402

pytestmark = pytest.mark.slow

N = 24


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    org = pytest.importorskip("mimicry.organism")
    from mimicry.tasks.items import TaskSuite

    path = str(org.checkpoint_path("teacher"))
    full = org.organism_suite()
    suite = TaskSuite(full.name, list(full)[:N])
    d = tmp_path_factory.mktemp("forced_openai")
    own = generate(path, suite, d / "own.jsonl", max_new_tokens=80, batch_size=N,
                   progress=False, name="teacher")
    model, tok = load_model(path, dtype="float32")
    return {"path": path, "suite": suite, "own": list(own), "model": model, "tok": tok,
            "dir": d}


@pytest.mark.parametrize("scrambled", [False, True])
def test_server_answers_equal_hf_greedy_answers(server, teacher, scrambled, tmp_path):  # noqa: F811
    given = scramble_traces(teacher["own"], seed=0) if scrambled else teacher["own"]
    hf = answer_after(teacher["path"], given, teacher["suite"], tmp_path / "hf.jsonl",
                      batch_size=N, progress=False, name="teacher", hf_model=teacher["model"],
                      tokenizer=teacher["tok"])
    srv = answer_after(teacher["path"], given, teacher["suite"], tmp_path / "srv.jsonl",
                       batch_size=4, progress=False, name="teacher", backend="openai",
                       base_url=server, concurrency=4)
    assert [t.item_id for t in srv] == [t.item_id for t in hf]
    for a, b in zip(hf, srv):
        assert (b.answer_text, b.parsed_answer, b.correct, b.finish_reason, b.answer_tokens) \
            == (a.answer_text, a.parsed_answer, a.correct, a.finish_reason, a.answer_tokens), \
            a.item_id
        assert b.backend == "openai-forced" and a.backend == "hf-forced"
        assert b.meta["answer_budget"] == a.meta["answer_budget"]  # same "auto" budget
        assert b.meta["prompt_tokens"] == a.meta["prompt_tokens"]
        assert b.meta["base_url"] == server and b.meta["endpoint"] == "completions"
    assert srv.summary["accuracy"] == hf.summary["accuracy"]
    if not scrambled:  # replaying its own reasoning reproduces its own answers
        assert [t.answer_text for t in srv] == [t.answer_text for t in teacher["own"]]
    else:  # the organism teacher relies on its reasoning: scrambling changes answers
        assert sum(a.answer_text != b.answer_text for a, b in zip(teacher["own"], srv)) >= N // 3


def test_unknown_server_options_are_refused(teacher, tmp_path):
    with pytest.raises(InputError, match="unknown option.*hf backend"):
        answer_after(teacher["path"], teacher["own"], teacher["suite"], tmp_path / "x.jsonl",
                     progress=False, base_url="http://127.0.0.1:1/v1")
    with pytest.raises(InputError, match="unknown answer backend 'vllm'"):
        answer_after(teacher["path"], teacher["own"], teacher["suite"], tmp_path / "x.jsonl",
                     progress=False, backend="vllm")
