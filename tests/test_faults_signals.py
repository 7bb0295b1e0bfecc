"""Fault injection, SIGKILL and SIGINT (Ctrl-C) in generate, capture and run.

Each command is started as a real process, signalled at a seeded moment after it committed
some work, and re-run; the resumed result must equal a clean run's, item by item, and a
Ctrl-C must end with exit 130 and one line (no traceback). (Many more SIGKILL moments in
capture: tests/test_capture_crash.py.)
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from _faults import run_cli, start_cli, write_items, write_traces

from mimicry.store import parts_dir

pytestmark = pytest.mark.slow
RNG = random.Random(20261129)


def _signal_when(proc, ready, sig: int, what: str, timeout: float = 240) -> None:
    """Send ``sig`` once ``ready()`` holds; fail clearly if the child exited or never got there."""
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < timeout:
        if ready():
            time.sleep(RNG.uniform(0, 0.05))
            break
        time.sleep(0.005)
    else:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail(f"{what}: the moment to signal never came in {timeout:.0f} s")
    assert proc.poll() is None, (
        f"{what}: the child exited ({proc.returncode}) before the signal was sent; "
        "the workload leaves too small a window on this machine")
    proc.send_signal(sig)
    proc.wait(timeout=120)


def _lines(p: Path) -> int:
    return len(p.read_text().splitlines()) if p.exists() else 0


def _traces(p: Path) -> dict[str, tuple]:
    rows = [json.loads(x) for x in p.read_text().splitlines()]
    ids = [r["item_id"] for r in rows]
    assert len(ids) == len(set(ids)), "an item was written twice"
    return {r["item_id"]: (r["reasoning"], r["answer_text"], r["reasoning_tokens"],
                           r["correct"]) for r in rows}


def _cache(p: Path) -> dict[str, np.ndarray]:
    with h5py.File(p, "r") as f:
        ids = f["items/item_id"].asstr()[()]
        x = f["resid/mean_reasoning"][()]
    assert len(set(ids)) == len(ids)
    return {i: x[k] for k, i in enumerate(ids)}


def _check_interrupt(proc, sig: int) -> None:
    err = proc.stderr.read()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, (
            f"exit {proc.returncode}, not 130: the Ctrl-C did not interrupt the child\n"
            + err[-2000:])
        assert "interrupted; finished items are kept" in err and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_generate_killed_resumes_to_a_clean_run(sig, tmp_path, tiny_model_dir):
    items = write_items(tmp_path / "items.csv", n=40)
    args = ("generate", "--model", tiny_model_dir("qwen2"), "--tasks", items,
            "--max-new-tokens", "24", "--batch-size", "1", "--quiet")
    from mimicry.generate import generate

    clean = tmp_path / "clean.jsonl"  # the clean run, in this process (same greedy decoding)
    generate(tiny_model_dir("qwen2"), str(items), clean, max_new_tokens=24, batch_size=1,
             progress=False)
    out = tmp_path / "traces.jsonl"
    for attempt in range(2):  # two signals, each after a few more items were written
        k = RNG.randint(1, 4) + _lines(out)
        proc = start_cli(*args, "--out", out)
        _signal_when(proc, lambda k=k: _lines(out) >= k, sig, f"generate, signal {attempt + 1}")
        _check_interrupt(proc, sig)
        proc.stdout.close()
        proc.stderr.close()
        assert k <= _lines(out) < 40, "the signal did not land mid-generation"
    p = run_cli(*args, "--out", out)
    assert p.returncode == 0, p.stderr[-2000:]
    assert _traces(out) == _traces(clean)


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_capture_interrupted_resumes_to_a_clean_run(sig, tmp_path, tiny_model_dir):
    traces = write_traces(tmp_path / "t.jsonl", n=24)
    args = ("capture", "--model", tiny_model_dir("qwen2"), "--traces", traces,
            "--batch-tokens", "64", "--no-progress")
    from mimicry.capture import CaptureConfig, capture

    clean = capture(tiny_model_dir("qwen2"), traces, tmp_path / "clean.h5",
                    CaptureConfig(batch_tokens=64), progress=False, log=lambda s: None)
    out = tmp_path / "c.h5"
    k = RNG.randint(1, 5)
    proc = start_cli(*args, "--out", out)
    _signal_when(proc, lambda: len(list(parts_dir(out).glob("*part-*.h5"))) >= k, sig,
                 "capture")
    _check_interrupt(proc, sig)
    assert not list(tmp_path.glob(".c.h5.lock"))  # the lock went with the process
    p = run_cli(*args, "--out", out)
    assert p.returncode == 0, p.stderr[-2000:]
    got, want = _cache(out), _cache(clean)
    assert sorted(got) == sorted(want)
    for i in want:
        np.testing.assert_allclose(got[i], want[i], atol=1e-5)


def test_run_killed_in_generate_and_in_capture_resumes(tmp_path, tiny_model_dir):
    items = write_items(tmp_path / "items.csv", n=24)
    cfg = tmp_path / "exp.toml"
    cfg.write_text(f'name = "faults"\nsuites = ["{items}"]\n'
                   '[generation]\nmax_new_tokens = 24\nbatch_size = 1\n'
                   '[capture]\nentropy = "off"\nstore_dtype = "float32"\ncross = false\n'
                   'batch_tokens = 64\n'
                   f'[[models]]\nkey = "teacher"\nname = "tiny"\nrole = "teacher"\n'
                   f'local_path = "{tiny_model_dir("qwen2")}"\ndtype = "float32"\n')
    args = ("run", cfg, "--stages", "generate,capture")
    from experiments.config import load_config
    from experiments.runner import parse_stages, run_experiment

    clean = tmp_path / "clean"  # the clean run, in this process
    run_experiment(load_config(cfg), stages=parse_stages("generate,capture"), out=clean)
    run = tmp_path / "run"
    traces, cache = run / "traces" / "teacher.jsonl", run / "caches" / "teacher.h5"
    proc = start_cli(*args, "--out", run)  # Ctrl-C while generating
    _signal_when(proc, lambda: _lines(traces) >= 3, signal.SIGINT, "run, generate stage")
    _check_interrupt(proc, signal.SIGINT)
    assert 3 <= _lines(traces) < 24, "the Ctrl-C did not land mid-generation"
    proc = start_cli(*args, "--out", run)  # kill -9 while capturing
    _signal_when(proc, lambda: len(list(parts_dir(cache).glob("*part-*.h5"))) >= 2,
                 signal.SIGKILL, "run, capture stage")
    _check_interrupt(proc, signal.SIGKILL)
    p = run_cli(*args, "--out", run)
    assert p.returncode == 0, p.stderr[-2000:]
    assert _traces(traces) == _traces(clean / "traces" / "teacher.jsonl")
    got, want = _cache(cache), _cache(clean / "caches" / "teacher.h5")
    assert sorted(got) == sorted(want)
    for i in want:
        np.testing.assert_allclose(got[i], want[i], atol=1e-5)
