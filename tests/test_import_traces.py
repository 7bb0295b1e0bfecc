"""``mimicry traces import``: happy paths (counts, tokenizer recount, scoring) and every bad input
(one line, exit 2, no output)."""

from __future__ import annotations

import json

import pytest

from experiments.cli import main
from mimicry.errors import InputError
from mimicry.generate import import_traces
from mimicry.tasks.items import HumanNorms, Item, TaskSuite
from mimicry.tasks.scoring import score_answer
from mimicry.traces import read_traces

ITEMS_CSV = ("item_id,task,human_rt_ms,prompt,answer\n"
             "a1,demo,1200,Where is the bar?,south\n"
             "a2,demo,900,Is A left of C?,yes\n"
             "a3,demo,1500,Where is the mall?,north\n")


@pytest.fixture()
def items_csv(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text(ITEMS_CSV, encoding="utf-8")
    return p


def demo_suite():
    return TaskSuite("demo", [Item("a1", "demo", "Where is the bar?", "south", HumanNorms(1200.0)),
                              Item("a2", "demo", "Is A left of C?", "yes", HumanNorms(900.0))])


def test_csv_with_counts(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("item_id,model,reasoning_tokens,correct,extra_col\n"
                   "a1,R1,120,true,x\na2,R1,40.0,0,y\na1,V3,7,,z\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    traces = import_traces(src, out, suite=demo_suite())
    back = read_traces(out)
    assert [(t.model, t.item_id, t.reasoning_tokens, t.correct, t.task) for t in back] == [
        ("R1", "a1", 120, True, "demo"), ("R1", "a2", 40, False, "demo"),
        ("V3", "a1", 7, None, "demo")]
    assert back[0].meta["extra_col"] == "x" and back[0].meta["source_row"] == 2
    assert back[0].meta["token_count_source"] == "imported"
    assert len(traces) == 3


def test_jsonl_with_reasoning_text_tokenizer_and_scoring(tmp_path, tiny_tokenizer):
    tok_dir = tmp_path / "tok"
    tiny_tokenizer.save_pretrained(tok_dir)
    rows = [{"item_id": "a1", "reasoning": "First, compose the relations.",
             "answer_text": "The answer is south."},
            {"item_id": "a2", "reasoning": "Let me think step by step.", "answer_text": "no",
             "correct": True}]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    suite = demo_suite()
    traces = import_traces(src, out, suite=suite, tokenizer=str(tok_dir), model="api-model")
    for r, t in zip(rows, traces):
        assert t.model == "api-model"
        assert t.reasoning_tokens == len(tiny_tokenizer(r["reasoning"],
                                                        add_special_tokens=False).input_ids)
        assert t.answer_tokens == len(tiny_tokenizer(r["answer_text"],
                                                     add_special_tokens=False).input_ids)
        assert t.meta["token_count_source"] == "local_tokenizer"
    parsed, correct = score_answer(suite["a1"], rows[0]["answer_text"])
    assert (traces[0].parsed_answer, traces[0].correct) == (parsed, correct)
    assert traces[0].meta["scored_by"] == "mimicry"
    assert traces[1].correct is True  # given correctness wins over scoring
    assert [t.item_id for t in read_traces(out)] == ["a1", "a2"]


def test_cli_import_with_suite_file(tmp_path, items_csv, capsys):
    src = tmp_path / "t.csv"
    src.write_text("item_id,model,reasoning_tokens,answer_text\na1,M,10,south\na3,M,5,east\n",
                   encoding="utf-8")
    out = tmp_path / "out.jsonl"
    rc = main(["traces", "import", str(src), "--out", str(out), "--tasks", str(items_csv)])
    assert rc == 0 and "imported 2 traces" in capsys.readouterr().out
    got = {t.item_id: t for t in read_traces(out)}
    assert got["a1"].reasoning_tokens == 10 and got["a3"].reasoning_tokens == 5
    assert got["a1"].correct is True and got["a3"].correct is False  # scored: gold south/north


BAD = {
    "missing_item_id": ("t.csv", "model,reasoning_tokens\nM,3\n", [], "missing column 'item_id'"),
    "missing_model": ("t.csv", "item_id,reasoning_tokens\na1,3\n", [], "--model"),
    "missing_count": ("t.csv", "item_id,model,correct\na1,M,true\n", [],
                      "missing column 'reasoning_tokens'"),
    "text_without_tokenizer": ("t.csv", "item_id,model,reasoning\na1,M,hello\n", [],
                               "--tokenizer"),
    "non_integer": ("t.csv", "item_id,model,reasoning_tokens\na1,M,3\na2,M,12.5\n", [],
                    "row 3: reasoning_tokens is '12.5'"),
    "not_a_number": ("t.csv", "item_id,model,reasoning_tokens\na1,M,many\n", [],
                     "row 2: reasoning_tokens is 'many'"),
    "negative": ("t.jsonl", '{"item_id": "a1", "model": "M", "reasoning_tokens": -4}\n', [],
                 "row 1: reasoning_tokens is -4"),
    "bad_correct": ("t.csv", "item_id,model,reasoning_tokens,correct\na1,M,3,maybe\n", [],
                    "correct is 'maybe'"),
    "duplicate": ("t.csv", "item_id,model,reasoning_tokens\na1,M,3\na2,M,4\na1,M,5\n", [],
                  "row 4: duplicate trace for model 'M', item_id 'a1' (first at row 2)"),
    "not_in_suite": ("t.csv", "item_id,model,reasoning_tokens\na1,M,3\nzz9,M,4\nqq,M,1\n",
                     ["--tasks", "ITEMS"], "2 item_id(s) not in suite"),
    "empty": ("t.csv", "", [], "file is empty"),
    "not_utf8": ("t.csv", b"item_id,model,reasoning_tokens\na1,M\xff\xfe,3\n", [],
                 "not valid UTF-8"),
    "bad_json": ("t.jsonl", '{"item_id": "a1", "model": "M", "reasoning_tokens": 3}\n{oops\n',
                 [], "row 2: not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_one_line_exit_2_no_output(case, tmp_path, items_csv, capsys):
    name, content, extra, expect = BAD[case]
    src = tmp_path / name
    if isinstance(content, bytes):
        src.write_bytes(content)
    else:
        src.write_text(content, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    extra = [str(items_csv) if a == "ITEMS" else a for a in extra]
    rc = main(["traces", "import", str(src), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert expect in err, err
    assert str(src) in err  # names the file
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    if case == "not_in_suite":
        assert "'zz9' (row 3)" in err and "'qq' (row 4)" in err


def test_existing_output_is_not_overwritten_without_force(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("item_id,model,reasoning_tokens\na1,M,3\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(InputError, match="already exists"):
        import_traces(src, out)
    assert out.read_text() == "keep me\n"
    import_traces(src, out, overwrite=True)
    assert read_traces(out)[0].reasoning_tokens == 3
