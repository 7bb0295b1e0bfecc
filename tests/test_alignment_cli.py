"""``mimicry align`` bad input: one clear line, exit 2, nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import main


def _write(tmp: Path, n_items: int = 12, models=("A", "B")) -> tuple[Path, list[Path]]:
    rng = np.random.default_rng(0)
    norms = tmp / "items.csv"
    with norms.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "task", "human_rt_ms"])
        for i in range(n_items):
            w.writerow([f"i{i}", "t", float(np.exp(7 + rng.normal()))])
    files = []
    for m in models:
        p = tmp / f"{m}.jsonl"
        with p.open("w") as f:
            for i in range(n_items):
                f.write(json.dumps({"item_id": f"i{i}", "model": m, "correct": bool(i % 2),
                                    "reasoning_tokens": int(rng.integers(10, 900))}) + "\n")
        files.append(p)
    return norms, files


def _run(args, capsys):
    rc = main(["align", *map(str, args), "--n-boot", "200", "--n-perm", "200"])
    err = capsys.readouterr().err
    return rc, err


def test_ok_run_prints_and_writes(tmp_path, capsys):
    norms, files = _write(tmp_path)
    out = tmp_path / "out"
    rc = main(["align", *map(str, files), "--tasks", str(norms), "--out", str(out),
               "--roles", "teacher=A,student=B", "--n-boot", "200", "--n-perm", "200"])
    assert rc == 0
    assert "r̄ " in capsys.readouterr().out
    assert (out / "alignment.csv").exists() and (out / "delta_r.csv").exists()
    # a glob over a run's traces/ also matches scrambled and forced files: they are skipped
    derived = tmp_path / f"{files[0].stem}__scrambled.jsonl"
    derived.write_text(files[0].read_text())
    rc = main(["align", *map(str, files), str(derived), "--tasks", str(norms), "--out",
               str(out), "--roles", "teacher=A,student=B", "--n-boot", "200", "--n-perm", "200"])
    assert rc == 0 and "skipping derived traces (" in capsys.readouterr().out


def test_trace_for_unknown_item(tmp_path, capsys):
    norms, files = _write(tmp_path)
    with files[1].open("a") as f:
        f.write(json.dumps({"item_id": "zz9", "model": "B", "reasoning_tokens": 5}) + "\n")
    out = tmp_path / "out"
    rc, err = _run([*files, "--tasks", norms, "--out", out], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(files[1]) in err and "'zz9'" in err and "not in suite" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_unknown_role_model_lists_models(tmp_path, capsys):
    norms, files = _write(tmp_path)
    out = tmp_path / "out"
    rc, err = _run([*files, "--tasks", norms, "--out", out, "--roles", "teacher=A,student=C"],
                   capsys)
    assert rc == 2 and "'C'" in err and "models found: A, B" in err
    assert not out.exists()


@pytest.mark.parametrize("roles,needle", [("teacher", "not ROLE=MODEL"),
                                          ("coach=A", "unknown role 'coach'")])
def test_bad_roles_syntax(tmp_path, capsys, roles, needle):
    norms, files = _write(tmp_path)
    rc, err = _run([*files, "--tasks", norms, "--out", tmp_path / "o", "--roles", roles],
                   capsys)
    assert rc == 2 and needle in err and not (tmp_path / "o").exists()


def test_duplicate_trace(tmp_path, capsys):
    norms, files = _write(tmp_path)
    rc, err = _run([files[0], files[0], "--tasks", norms, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "two traces for model 'A' item 'i0'" in err


def test_empty_traces_file(tmp_path, capsys):
    norms, _ = _write(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    rc, err = _run([empty, "--tasks", norms, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "empty" in err and str(empty) in err


def test_unknown_suite(tmp_path, capsys):
    _, files = _write(tmp_path)
    rc, err = _run([*files, "--tasks", "no-such-suite", "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "no-such-suite" in err and not (tmp_path / "o").exists()


def test_existing_out_dir_untouched_on_error(tmp_path, capsys):
    norms, files = _write(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    rc, _ = _run([*files, "--tasks", norms, "--out", out, "--roles", "base=Nope"], capsys)
    assert rc == 2 and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_out_is_a_file(tmp_path, capsys):
    norms, files = _write(tmp_path)
    f = tmp_path / "out.txt"
    f.write_text("x")
    rc, err = _run([*files, "--tasks", norms, "--out", f], capsys)
    assert rc == 2 and "not a folder" in err and f.read_text() == "x"
