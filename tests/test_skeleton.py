"""Checks of the shared plumbing: errors, atomic writes, JSONL reading, think-splitting."""

from __future__ import annotations

import pytest

from experiments.cli import main
from mimicry.errors import InputError
from mimicry.io import atomic_path, read_jsonl, read_table
from mimicry.models import load_model
from mimicry.traces import split_reasoning


def test_error_renders_file_row_fix():
    e = InputError("human_rt_ms is 'n/a'", file="items.csv", row=17, fix="expected milliseconds > 0")
    assert str(e) == "items.csv row 17: human_rt_ms is 'n/a'; expected milliseconds > 0"


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_read_jsonl_partial_last_line(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"a": 1}\n{"a": 2')
    assert [r["a"] for r in read_jsonl(p, tolerate_partial_last=True)] == [1]
    with pytest.raises(InputError, match="row 2"):
        read_jsonl(p)


def test_non_utf8_and_empty(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"item_id,task\n1,caf\xe9\n")
    with pytest.raises(InputError, match="not valid UTF-8.*row 2|row 2.*UTF-8"):
        read_table(p)
    p.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_table(p)


@pytest.mark.parametrize("text,opens,finish,expected", [
    ("<think>a b</think> 42", False, "stop", ("a b", "42", True)),
    ("a b</think>42", True, "stop", ("a b", "42", True)),
    ("just 42", False, "stop", ("", "just 42", False)),
    ("a b c", True, "length", ("a b c", "", False)),
    ("<think>a b c", False, "length", ("a b c", "", False)),
])
def test_split_reasoning(text, opens, finish, expected):
    assert split_reasoning(text, prompt_opens_think=opens, finish_reason=finish) == expected


def test_missing_model_path_is_user_error(tmp_path):
    from mimicry.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "nope"))


def test_cli_help_runs(capsys):
    assert main([]) == 0
    assert "mimicry" in capsys.readouterr().out


def test_tiny_model_loads_through_model_loading(tiny_model_dir):
    import torch

    model, tok = load_model(tiny_model_dir("qwen2"))
    ids = tok("The mall is north", return_tensors="pt")
    with torch.no_grad():
        out = model(**ids)
    assert out.logits.shape[-1] == model.config.vocab_size
