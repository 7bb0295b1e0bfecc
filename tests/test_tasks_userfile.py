"""User items files: loading, export round-trip, and every bad input through the CLI."""

from __future__ import annotations

import json

import pytest

from experiments.cli import main
from mimicry.errors import InputError
from mimicry.tasks import HumanNorms, Item, export_suite, load_suite


@pytest.mark.parametrize("name", ["spatial", "relational", "syllogisms"])
def test_export_roundtrip_identical(tmp_path, name):
    suite = load_suite(name)
    out = tmp_path / f"{name}.jsonl"
    assert main(["tasks", "export", name, "--out", str(out)]) == 0
    back = load_suite(str(out))
    assert [it.item_id for it in back] == [it.item_id for it in suite]
    for a, b in zip(suite, back):
        assert a == b, a.item_id
    assert back.reliability == suite.reliability
    # and once more: export of the re-loaded suite is byte-identical
    out2 = tmp_path / "again.jsonl"
    export_suite(back, out2)
    assert out2.read_bytes() == out.read_bytes()


def test_csv_user_file(tmp_path):
    p = tmp_path / "norms.csv"
    p.write_text("item_id,task,human_rt_ms,human_accuracy,prompt,answer,human_n,difficulty_bin\n"
                 "q1,arith,1200,0.9,What is 2+2?,4,30,easy\n"
                 "q2,arith,2400.5,,Capital of France?,Paris|paris france,,hard\n"
                 "q3,logic,,0.25,,,12,\n", encoding="utf-8")
    s = load_suite(str(p))
    assert s.name == "norms" and s.tasks == ["arith", "logic"]
    assert s["q1"] == Item("q1", "arith", "What is 2+2?", "4",
                           HumanNorms(rt_ms=1200.0, accuracy=0.9, n=30),
                           {"difficulty_bin": "easy"})
    assert s["q2"].answer == ("Paris", "paris france")
    assert s["q2"].human.accuracy is None and s["q2"].human.difficulty == 2400.5
    assert s["q3"].prompt is None and s["q3"].human.measure == "error_rate"
    assert s["q3"].human.difficulty == pytest.approx(0.75)
    assert s["q3"].meta == {}


def test_jsonl_user_file_answer_list_and_meta(tmp_path):
    p = tmp_path / "items.jsonl"
    rows = [{"item_id": "a", "task": "t", "human_rt_ms": 900, "answer": ["x", "y|z"],
             "meta": {"k": 1}, "source": "lab"},
            {"item_id": "b", "task": "t", "human_accuracy": 1}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    s = load_suite(p)
    assert s["a"].answer == ("x", "y|z")          # JSON strings are never split on '|'
    assert s["a"].meta == {"k": 1, "source": "lab"}
    assert s["b"].human.accuracy == 1.0 and s["b"].answer is None


def _write(path, text: str | bytes):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


BAD_INPUTS = [
    # name, filename, content, words expected in the one-line error
    ("missing item_id", "a.csv", "id,task,human_rt_ms\nq1,t,100\n",
     ["a.csv", "row 1", "missing column 'item_id'"]),
    ("missing norms", "b.csv", "item_id,task,prompt\nq1,t,hi\n",
     ["b.csv", "row 1", "human_rt_ms", "human_accuracy"]),
    ("rt not a number", "c.csv", "item_id,task,human_rt_ms\nq1,t,100\nq2,t,n/a\n",
     ["c.csv", "row 3", "human_rt_ms is 'n/a'", "milliseconds > 0"]),
    ("rt negative", "d.csv", "item_id,task,human_rt_ms\nq1,t,-5\n",
     ["d.csv", "row 2", "human_rt_ms", "> 0"]),
    ("rt zero jsonl", "e.jsonl", '{"item_id": "q1", "task": "t", "human_rt_ms": 0}\n',
     ["e.jsonl", "row 1", "human_rt_ms is 0"]),
    ("accuracy > 1", "f.csv", "item_id,task,human_accuracy\nq1,t,0.5\nq2,t,87\n",
     ["f.csv", "row 3", "human_accuracy is '87'", "[0, 1]"]),
    ("duplicate id", "g.csv", "item_id,task,human_rt_ms\nq1,t,100\nq2,t,200\nq1,t,300\n",
     ["g.csv", "row 4", "duplicate item_id 'q1'", "rows 2 and 4"]),
    ("empty file", "h.csv", "", ["h.csv", "empty"]),
    ("header only", "i.csv", "item_id,task,human_rt_ms\n", ["i.csv", "no item rows"]),
    ("non-utf8", "j.csv", "item_id,task,human_rt_ms\nq1,caf\xe9,100\n".encode("latin-1"),
     ["j.csv", "row 2", "UTF-8"]),
    ("bad json", "k.jsonl", '{"item_id": "q1", "task": "t", "human_rt_ms": 1}\n{oops\n',
     ["k.jsonl", "row 2", "JSON"]),
    ("no norm in row", "l.jsonl", '{"item_id": "q1", "task": "t"}\n',
     ["l.jsonl", "row 1", "no human norm"]),
    ("empty task", "m.csv", "item_id,task,human_rt_ms\nq1,,100\n", ["m.csv", "row 2", "task"]),
    ("missing file", "nope.csv", None, ["nope.csv", "not found"]),
]


@pytest.mark.parametrize("name, fname, content, words", BAD_INPUTS,
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_cli(tmp_path, capsys, name, fname, content, words):
    src = tmp_path / fname
    if content is not None:
        _write(src, content)
    out = tmp_path / "out" / "items.jsonl"
    capsys.readouterr()
    rc = main(["tasks", "export", str(src), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in err
    assert not out.exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
    # the library raises the same error as an InputError
    with pytest.raises(InputError):
        load_suite(str(src))


def test_unknown_suite_cli(tmp_path, capsys):
    out = tmp_path / "x.jsonl"
    rc = main(["tasks", "export", "spatail", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "unknown suite 'spatail'" in err and "spatial" in err
    assert not out.exists()


def test_export_refuses_non_jsonl_and_keeps_old_file(tmp_path, capsys):
    out = tmp_path / "items.csv"
    assert main(["tasks", "export", "syllogisms", "--out", str(out)]) == 2
    assert not out.exists()
    # a failed export never clobbers an existing good file
    good = tmp_path / "good.jsonl"
    good.write_text("keep\n")
    bad = _write(tmp_path / "bad.csv", "item_id,task\nq1,t\n")
    assert main(["tasks", "export", str(bad), "--out", str(good)]) == 2
    assert good.read_text() == "keep\n"


def test_tasks_list_cli(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:3] == ["suite", "items", "tasks"]
    for name, n in [("spatial", "56"), ("relational", "61"), ("syllogisms", "64")]:
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert line.split()[1] == n
    assert "error_rate" in out and "rt_ms" in out
