"""Data-parallel capture under a real ``torchrun`` (2 ranks, gloo, CPU, tiny model).

The 2-rank cache must equal a 1-rank capture item by item (residuals, entropy, per-token
rows); a rank SIGKILLed mid-run and the job re-run must lose and duplicate nothing; the
cache is virtual datasets over both ranks' shards and ``mimicry cache info`` says so.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from mimicry.capture import CaptureConfig, capture
from mimicry.capture.launch import RankInfo, deal, rank_device, rank_info, torchrun_command
from mimicry.errors import InputError
from mimicry.store.shards import index_current, list_parts

N_ITEMS = 16
ARGS = ["--batch-tokens", "96", "--per-token-stride", "8", "--no-progress"]
CFG = CaptureConfig(batch_tokens=96, per_token_stride=8)


def _traces(path: Path) -> Path:
    rs = random.Random(3)
    words = "the mall is north of station bar south east west step first answer so".split()
    with open(path, "w") as f:
        for i in range(N_ITEMS):
            r = " ".join(rs.choice(words) for _ in range(rs.randint(5, 40)))
            f.write(json.dumps(dict(item_id=f"q{i}", model="teacher", prompt=f"Item {i}?",
                                    reasoning=r, answer_text="north")) + "\n")
    return path


def _read(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Return key -> {dataset: row} of a cache or part, with plain h5py (no mimicry reader)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        keys = [f"{m}::{i}" for m, i in zip(f["items/trace_model"].asstr()[()],
                                            f["items/item_id"].asstr()[()])]
        assert len(set(keys)) == len(keys), f"duplicate items in {path}"
        names: list[str] = []
        f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
        rows = {n: f[n][()] for n in names if n.startswith(("resid/", "entropy/raw",
                                                            "entropy/norm", "entropy/nosink"))}
        assert len(rows) == 5 + 3 * 5
        off, tok = f["tokens/offsets"][()], f["tokens/resid"][()]
        for i, k in enumerate(keys):
            out[k] = {n: v[i] for n, v in rows.items()}
            out[k]["tokens"] = tok[off[i]:off[i + 1]]
            out[k]["row"] = f["items/row"][i]
    return out


def _same(got: dict, ref: dict) -> None:
    assert list(got) == list(ref)  # same items, same (input) order
    for k, v in got.items():
        for name, arr in v.items():
            np.testing.assert_allclose(arr, ref[k][name], atol=1e-5, rtol=1e-5,
                                       equal_nan=True, err_msg=f"{k} {name}")


def _torchrun(model_dir: str, traces: Path, out: Path, log) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "mimicry", "capture", "--model", model_dir, "--traces", str(traces),
           "--out", str(out), *ARGS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("ranks")
    model_dir = tiny_model_dir("qwen2")
    traces = _traces(tmp / "traces.jsonl")
    ref = capture(model_dir, traces, tmp / "one.h5", CFG, progress=False, log=lambda s: None)
    return model_dir, traces, tmp, _read(ref)


@pytest.mark.slow
def test_two_ranks_equal_one_rank_item_by_item(job, capsys):
    from experiments.cli import main

    model_dir, traces, tmp, ref = job
    out = tmp / "two.h5"
    with open(tmp / "two.log", "w") as log:
        proc = _torchrun(model_dir, traces, out, log)
        text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, (tmp / "two.log").read_text()[-3000:]
    assert "0 already in cache" in text and "2 ranks, tokens per rank" in text
    _same(_read(out), ref)
    parts = list_parts(out)
    assert {p.rank for p in parts} == {0, 1} and index_current(out)
    with h5py.File(out) as f:
        assert f["resid/last_prompt"].is_virtual and f["entropy/raw/prompt"].is_virtual
    assert main(["cache", "info", str(out)]) == 0
    info = capsys.readouterr().out
    n0 = sum(len(_read(p.path)) for p in parts if p.rank == 0)
    assert f"rank 0: {n0} items" in info and f"rank 1: {N_ITEMS - n0} items" in info
    assert parts[0].path.name in info and "shard files" in info


@pytest.mark.slow
def test_rank_killed_mid_run_then_rerun_loses_and_duplicates_nothing(job):
    model_dir, traces, tmp, ref = job
    out = tmp / "killed.h5"
    with open(tmp / "killed.log", "w") as log:
        proc = _torchrun(model_dir, traces, out, log)
        t0, victim = time.time(), None
        while time.time() - t0 < 240 and proc.poll() is None:
            if sum(p.rank == 1 for p in list_parts(out)) >= 2:
                victim = _rank_pid(proc.pid, 1)
                if victim:
                    os.kill(victim, signal.SIGKILL)
                    break
            time.sleep(0.005)
        assert victim, "rank 1 was never seen writing"
        proc.communicate(timeout=120)
        assert proc.returncode != 0  # torchrun saw the rank die and stopped the job
        assert not index_current(out)
        done = {k for p in list_parts(out) for k in _read(p.path)}
        assert 2 <= len(done) < N_ITEMS
        proc = _torchrun(model_dir, traces, out, log)
        text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, (tmp / "killed.log").read_text()[-3000:]
    assert f"{len(done)} already in cache" in text
    assert f"captured {N_ITEMS - len(done)} items" in text
    _same(_read(out), ref)
    # each item computed and stored exactly once over both runs
    assert sum(len(_read(p.path)) for p in list_parts(out)) == N_ITEMS


def _rank_pid(parent: int, rank: int) -> int | None:
    """Return the pid of the torchrun worker with ``RANK=rank`` under ``parent``, if any."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if ppid == parent and f"RANK={rank}".encode() in env:
            return int(d.name)
    return None


def test_deal_is_a_deterministic_token_balanced_partition():
    lengths = [50, 10, 40, 40, 5, 30, 20, 1]
    slices = deal(lengths, 3)
    assert sorted(i for s in slices for i in s) == list(range(8))
    # by hand, longest first to the least-loaded rank (ties: lowest rank): 50->r0, 40->r1,
    # 40->r2, 30->r1 (loads 50,40,40), 20->r2, 10->r0, 5->r0 (60,70,60), 1->r2 (65,70,60)
    assert slices == [[0, 1, 4], [2, 5], [3, 6, 7]]
    assert deal(lengths, 3) == slices and deal(lengths, 1) == [list(range(8))]
    assert deal([], 2) == [[], []]


def test_rank_info_and_devices(monkeypatch):
    assert rank_info({}) == RankInfo(0, 1, 0)
    assert rank_info({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == RankInfo(3, 8, 1)
    with pytest.raises(InputError, match="RANK=8 is not within WORLD_SIZE=8"):
        rank_info({"RANK": "8", "WORLD_SIZE": "8"})
    with pytest.raises(InputError, match="not integers"):
        rank_info({"RANK": "x", "WORLD_SIZE": "2"})
    assert rank_device("cuda", RankInfo(5, 8, 1)) == "cuda:1"
    assert rank_device("cpu", RankInfo(1, 2, 1)) == "cpu"
    assert rank_device(None, RankInfo(0, 1, 0)) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    rank_device(None, RankInfo(3, 4, 1), gpus_per_rank=4, device_map="auto")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    with pytest.raises(InputError, match="needs GPUs 4..7 but the node shows 4"):
        rank_device(None, RankInfo(1, 2, 1), gpus_per_rank=4, device_map="auto")
    cmd = torchrun_command(["capture", "--model", "M"], 4, nnodes=2, rdzv_endpoint="n1:29500")
    assert cmd.startswith("torchrun --nproc_per_node 4 --nnodes 2 --rdzv_backend c10d "
                          "--rdzv_endpoint n1:29500") and cmd.endswith("-m mimicry capture "
                                                                        "--model M")
