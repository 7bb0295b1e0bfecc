"""``mimicry generate`` from the command line: happy path with resume, and user errors."""

from __future__ import annotations

import json

import pytest

from experiments.cli import main

ITEMS_CSV = ("item_id,task,human_rt_ms,prompt,answer\n"
             "a1,demo,1200,Where is the bar?,north\n"
             "a2,demo,900,Is A left of C?,north\n"
             "a3,demo,1500,Where is the mall?,north\n")


@pytest.fixture()
def items_csv(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text(ITEMS_CSV, encoding="utf-8")
    return p


def test_cli_generate_then_resume(scripted_model_dir, items_csv, tmp_path, capsys):
    path = scripted_model_dir("qwen2", [("\n", "<think>ab</think>north<|im_end|>")])
    out = tmp_path / "traces.jsonl"
    args = ["generate", "--model", path, "--tasks", str(items_csv), "--out", str(out),
            "--max-new-tokens", "12", "--batch-size", "2"]
    assert main([*args, "--limit", "2"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["item_id"] for r in rows) == ["a1", "a2"]
    assert all(r["reasoning"] == "ab" and r["answer_text"] == "north" and r["correct"]
               for r in rows)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "resume: 2 of 3 items already in" in err and "1 generated" in err
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.parametrize("extra, expect", [
    (["--model", "/no/such/model/dir"], "model path '/no/such/model/dir' does not exist"),
    (["--model", "M", "--base-url", "http://127.0.0.1:9/v1"],
     "--base-url is only used with --backend openai"),
    (["--model", "M", "--backend", "openai"], "needs a server address"),
    (["--model", "M", "--backend", "openai", "--base-url", "http://x/v1", "--extra-body", "{"],
     "--extra-body is not valid JSON"),
])
def test_cli_generate_user_errors(extra, expect, items_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = tmp_path / "traces.jsonl"
    rc = main(["generate", "--tasks", str(items_csv), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert expect in err, err
    assert not out.exists()


def test_cli_unknown_suite(tmp_path, capsys):
    out = tmp_path / "traces.jsonl"
    rc = main(["generate", "--model", "M", "--tasks", "no-such-suite", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no-such-suite" in err and len(err.splitlines()) == 1
    assert not out.exists()
