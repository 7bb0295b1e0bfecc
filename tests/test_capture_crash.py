"""Crash safety: SIGKILL the capture CLI at >= 10 seeded random moments; nothing is lost or wrong.

After every kill, each item found in the cache file or in a committed shard must read back
equal to an uninterrupted run, and the next run must report exactly those items as skipped.
Kill moments mix three seeded kinds: a random delay after start-up (model loading, first
batches), right after a random number of shards was committed (mid-writing), and while the
final index (virtual datasets over the shards) is being written to its temp file.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from mimicry.capture import CaptureConfig, capture
from mimicry.store import parts_dir
from mimicry.store.shards import index_current, list_parts

N_ITEMS = 30
ARGS = ["--batch-tokens", "128", "--per-token-stride", "8", "--no-progress"]
CFG = CaptureConfig(batch_tokens=128, per_token_stride=8)


def _traces(path: Path) -> Path:
    rs = random.Random(7)
    words = "the mall is north of station bar south east west step first answer so".split()
    with open(path, "w") as f:
        for i in range(N_ITEMS):
            r = " ".join(rs.choice(words) for _ in range(rs.randint(5, 50)))
            f.write(json.dumps(dict(item_id=f"q{i}", model="teacher", prompt=f"Item {i}?",
                                    reasoning=r, answer_text="north")) + "\n")
    return path


def _read(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Return key -> {dataset: row} for every item of a cache file or shard (plain h5py)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        keys = [f"{m}::{i}" for m, i in zip(f["items/trace_model"].asstr()[()],
                                            f["items/item_id"].asstr()[()])]
        assert len(set(keys)) == len(keys), f"duplicate items in {path}"
        names: list[str] = []
        f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
        rows = {n: f[n][()] for n in names if n.startswith(("resid/", "entropy/raw",
                                                            "entropy/norm", "entropy/nosink"))}
        off, tok = f["tokens/offsets"][()], f["tokens/resid"][()]
        for i, k in enumerate(keys):
            out[k] = {n: v[i] for n, v in rows.items()}
            out[k]["tokens"] = tok[off[i]:off[i + 1]]
    return out


def _committed(out: Path, ref: dict) -> set[str]:
    """Return the keys committed in ``out`` and its shards, checking each against ``ref``."""
    found: dict[str, dict] = {}
    sources = ([out] if out.exists() else []) + [p.path for p in list_parts(out)]
    for src in sources:  # every visible file must open: no corrupt cache, no partial shard
        for k, v in _read(src).items():
            found.setdefault(k, v)
    for k, v in found.items():
        for name, arr in v.items():
            np.testing.assert_allclose(arr, ref[k][name], atol=1e-5, rtol=1e-5,
                                       equal_nan=True, err_msg=f"{k} {name}")
    return set(found)


def _start(model_dir: str, traces: Path, out: Path, log) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-c", "import sys; from experiments.cli import main; "
           "sys.exit(main(sys.argv[1:]))", "capture", "--model", model_dir, "--traces",
           str(traces), "--out", str(out), *ARGS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)


def _skipped(line: str) -> int:
    m = re.search(r"(\d+) already in cache", line)
    assert m, line
    return int(m.group(1))


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_committed(tmp_path, tiny_model_dir):
    model_dir = tiny_model_dir("qwen2")
    traces = _traces(tmp_path / "traces.jsonl")
    ref_path = capture(model_dir, traces, tmp_path / "ref.h5", CFG, progress=False,
                       log=lambda s: None)
    ref = _read(ref_path)
    assert len(ref) == N_ITEMS
    out = tmp_path / "run" / "c.h5"
    rng = random.Random(20261127)
    kills, attempts, expected_skip = 0, 0, 0
    kinds: list[str] = []
    with open(tmp_path / "stderr.log", "w") as log:
        while kills < 10:
            attempts += 1
            assert attempts < 30, f"only {kills} kills landed in {attempts} runs"
            proc = _start(model_dir, traces, out, log)
            first = proc.stdout.readline()  # printed after the resume check, before loading
            assert _skipped(first) == expected_skip, first
            kind = rng.choice(["delay", "shards", "shards", "merge"])
            t0, target = time.time(), rng.randint(1, 12)
            pdir = parts_dir(out)
            merge_tmp = out.with_name(f".{out.name}.consolidate.tmp")
            if kind == "delay":
                time.sleep(rng.uniform(0.0, 3.0))
            while proc.poll() is None and kind != "delay" and time.time() - t0 < 120:
                if kind == "shards" and pdir.is_dir() and len(list_parts(out)) >= target:
                    time.sleep(rng.uniform(0, 0.05))
                    break
                if kind == "merge" and merge_tmp.exists():
                    break
                time.sleep(0.002)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                kinds.append(kind)
            else:
                assert proc.returncode == 0, f"capture failed, see {tmp_path / 'stderr.log'}"
            proc.stdout.close()
            done = _committed(out, ref)
            if len(done) == N_ITEMS and out.exists() and index_current(out):
                # finished before the kill: check it, then start over for more kills
                assert _read(out).keys() == ref.keys()
                out.unlink()
                shutil.rmtree(parts_dir(out))
                done = set()
            expected_skip = len(done)
        # the same command completes the rest and reports exactly what it skipped
        proc = _start(model_dir, traces, out, log)
        first = proc.stdout.readline()
        rest = proc.stdout.read()
        assert proc.wait(timeout=300) == 0
    assert _skipped(first) == expected_skip
    assert f"captured {N_ITEMS - expected_skip} items" in rest
    assert index_current(out)  # virtual datasets over the parts, nothing merged by copying
    # nothing computed twice: the parts hold each item exactly once
    assert sum(len(_read(p.path)) for p in list_parts(out)) == N_ITEMS
    final = _read(out)
    assert final.keys() == ref.keys()
    _committed(out, ref)
    assert len(set(kinds)) >= 2, kinds  # kills landed in different phases
    shutil.rmtree(tmp_path / "run")
