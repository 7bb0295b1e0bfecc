"""Fault injection, concurrent writers: one lock discipline for generate, capture, run, train.

A second writer is refused before it touches anything, and a refused run never removes what
the holder owns. The holder is a real other process or a real ``flock`` held here (a lock on
another open file description conflicts exactly as another process's would).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from _faults import assert_one_line_error, run_cli, start_cli, write_items, write_traces

from mimicry.locking import WriterLock, lock_path
from mimicry.store import parts_dir


def _cache_rows(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        ids = f["items/item_id"].asstr()[()]
        x = f["resid/last_prompt"][()]
    return {i: x[k] for k, i in enumerate(ids)}


def test_refused_capture_leaves_the_holders_shard_folder(tmp_path, tiny_model_dir):
    """Fault 1: the refused run used to rmdir the holder's (still empty) .parts folder."""
    model, traces = tiny_model_dir("qwen2"), write_traces(tmp_path / "t.jsonl")
    out = tmp_path / "c.h5"
    with WriterLock(out, "capture"):  # the holder: lock taken, shard folder still empty
        parts_dir(out).mkdir()
        p = run_cli("capture", "--model", model, "--traces", traces, "--out", out,
                    "--no-progress")
        assert_one_line_error(p, "another capture is writing", str(out))
        assert parts_dir(out).is_dir() and lock_path(out).exists()
        assert not out.exists()
    assert not lock_path(out).exists()  # the holder removes its lock file on release


@pytest.mark.slow
def test_two_captures_started_together(tmp_path, tiny_model_dir):
    """Two real processes on one --out: one wins, the other is refused; the cache is whole."""
    model, traces = tiny_model_dir("qwen2"), write_traces(tmp_path / "t.jsonl")
    out = tmp_path / "c.h5"
    args = ("capture", "--model", model, "--traces", traces, "--out", out, "--no-progress",
            "--batch-tokens", "64")
    procs = [start_cli(*args), start_cli(*args)]
    res = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in res)
    assert codes in ([0, 2], [0, 0]), [r[2][-800:] for r in res]
    if codes == [0, 2]:
        loser = next(r for r in res if r[0] == 2)
        assert "another capture is writing" in loser[2] and "Traceback" not in loser[2]
    else:  # the second started after the first finished: it resumed with nothing to do
        assert any("12 already in cache" in r[1] for r in res)
    from mimicry.capture import CaptureConfig, capture

    ref = capture(model, traces, tmp_path / "ref.h5", CaptureConfig(), progress=False,
                  log=lambda s: None)
    got, want = _cache_rows(out), _cache_rows(ref)
    assert sorted(got) == sorted(want) == sorted(f"q{i}" for i in range(12))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5)
    assert not lock_path(out).exists()


def test_generate_is_refused_while_another_writes(tmp_path, tiny_model_dir):
    """Fault 2: generate had no lock; the refused run must not read, append or load."""
    items = write_items(tmp_path / "items.csv")
    out = tmp_path / "traces.jsonl"
    out.write_text('{"item_id": "a0", "model": "x"}\n')
    before = out.read_bytes()
    with WriterLock(out, "generate"):
        p = run_cli("generate", "--model", tiny_model_dir("qwen2"), "--tasks", items,
                    "--out", out, "--max-new-tokens", "4", "--quiet")
    assert_one_line_error(p, "another generate is writing")
    assert out.read_bytes() == before


@pytest.mark.slow
def test_two_generates_started_together_write_each_item_once(tmp_path, tiny_model_dir):
    """Fault 2 for real: two processes on one --out used to write every item twice."""
    items = write_items(tmp_path / "items.csv")
    out = tmp_path / "traces.jsonl"
    args = ("generate", "--model", tiny_model_dir("qwen2"), "--tasks", items, "--out", out,
            "--max-new-tokens", "6", "--batch-size", "2", "--quiet")
    procs = [start_cli(*args), start_cli(*args)]
    res = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert sorted(r[0] for r in res) in ([0, 2], [0, 0]), [r[2][-800:] for r in res]
    ids = [json.loads(x)["item_id"] for x in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"a{i}" for i in range(8))  # each item exactly once
    assert not lock_path(out).exists()


def _run_config(tmp_path: Path, model: str) -> Path:
    items = write_items(tmp_path / "items.csv")
    cfg = tmp_path / "exp.toml"
    cfg.write_text(f'name = "faults"\nsuites = ["{items}"]\n'
                   '[generation]\nmax_new_tokens = 6\nbatch_size = 4\n'
                   '[capture]\nentropy = "off"\nstore_dtype = "float32"\ncross = false\n'
                   f'[[models]]\nkey = "teacher"\nname = "tiny"\nrole = "teacher"\n'
                   f'local_path = "{model}"\ndtype = "float32"\n')
    return cfg


def test_run_is_refused_while_another_run_writes_the_folder(tmp_path, tiny_model_dir):
    cfg = _run_config(tmp_path, tiny_model_dir("qwen2"))
    run = tmp_path / "run"
    with WriterLock(run, "run"):
        p = run_cli("run", cfg, "--out", run, "--stages", "generate")
    assert_one_line_error(p, "another run is writing")
    assert not run.exists()  # refused before config.json or any stage output


def test_organism_train_is_refused_before_training(tmp_path):
    out = tmp_path / "organism"
    with WriterLock(out, "organism train"):
        t0 = time.time()
        p = run_cli("organism", "train", "--out", out, "--quiet")
    assert_one_line_error(p, "another organism train is writing")
    assert not out.exists()
    # and an --out it cannot write is refused before any training step
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = run_cli("organism", "train", "--out", blocker / "sub", "--quiet")
    assert_one_line_error(p, "which is a file, not a folder")
    assert time.time() - t0 < 120  # both refusals came before the minutes of training
