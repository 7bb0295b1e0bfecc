"""The HDF5 cache: round trip, plain-h5py layout, resume, refusal, unwritable paths."""

from __future__ import annotations

import errno
import hashlib
import json
import random
from pathlib import Path

import h5py
import numpy as np
import pytest

from mimicry import open_cache
from mimicry.capture import CaptureConfig, capture
from mimicry.capture.config import ENTROPY_SEGMENTS
from mimicry.errors import CacheMismatchError, MimicryError
from mimicry.store import parts_dir
from mimicry.store.shards import index_current, is_index

WORDS = "the mall is north of station bar south east west step first answer so".split()


def write_traces(path: Path, n: int = 12, seed: int = 0) -> Path:
    rs = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            r = " ".join(rs.choice(WORDS) for _ in range(rs.randint(4, 40)))
            trunc = i % 5 == 3
            f.write(json.dumps(dict(
                item_id=f"i{i}", model="teacher", task="spatial" if i % 2 else "syllogism",
                prompt=f"Question {i}: where is the bar?", reasoning=r,
                answer_text="" if trunc else "north", reasoning_tokens=len(r.split()),
                finish_reason="length" if trunc else "stop")) + "\n")
    return path


@pytest.fixture
def job(tmp_path, tiny_model_dir):
    return tiny_model_dir("qwen2"), write_traces(tmp_path / "traces.jsonl"), tmp_path


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_round_trip_and_plain_h5py_layout(job):
    from mimicry.capture.hf import HFBackend
    from mimicry.capture.segments import encode_traces
    from mimicry.models import load_model
    from mimicry.traces import read_traces

    model_dir, traces, tmp = job
    cfg = CaptureConfig(per_token_stride=5, batch_tokens=200)
    logs: list[str] = []
    out = capture(model_dir, traces, tmp / "c.h5", cfg, progress=False, log=logs.append)
    assert "12 to capture" in logs[0] and "MiB" in logs[0]
    assert is_index(out) and index_current(out)  # virtual datasets over the batch parts
    # independent path: run the backend directly on all items at once (another batching)
    model, tok = load_model(model_dir)
    items = encode_traces(tok, read_traces(traces), cfg)
    acts = HFBackend(model, tok, cfg).run(items)
    with open_cache(out) as c:
        assert len(c) == 12 and c.n_layers == 2 and c.d_model == 64 and c.n_heads == 4
        assert list(c.items.item_id) == [f"i{i}" for i in range(12)]  # input order
        assert c.items.truncated.tolist() == [i % 5 == 3 for i in range(12)]
        want_rt = [len(json.loads(x)["reasoning"].split()) for x in open(traces)]
        assert c.items.reasoning_tokens.tolist() == want_rt
        assert (c.items.n_prompt + c.items.n_reasoning + c.items.n_answer
                == c.items.n_tokens).all()
        assert set(c.sites) == set(cfg.sites) and set(c.segments) == set(ENTROPY_SEGMENTS)
        assert c.meta["schema"] == "mimicry.cache/1" and "tokenizer_hash" in c.meta
        for site in cfg.sites:
            for layer in (0, 1, 2, -1):
                want = np.stack([a.resid[site][layer] for a in acts])
                np.testing.assert_allclose(c.resid(layer, site), want, atol=1e-5,
                                           equal_nan=True)
        for seg in ENTROPY_SEGMENTS:
            want = np.stack([a.entropy["norm"][seg] for a in acts])
            np.testing.assert_allclose(c.entropy(seg, "norm"), want, atol=1e-5, equal_nan=True)
        assert np.isnan(c.entropy("answer")[3]).all()  # truncated trace
        np.testing.assert_allclose(c.entropy("mean_prompt"), c.entropy("prompt"))
        pos, rows = c.token_resid(4)
        assert (pos == np.arange(0, items[4].length, 5)).all()
        np.testing.assert_allclose(rows, acts[4].token_resid, atol=1e-5)
        assert "12 items" in repr(c) and "qwen2" not in repr(c).split("model=")[0]
        with pytest.raises(IndexError):
            c.resid(3, "last_prompt")
    with h5py.File(out, "r") as f:  # the documented layout, without mimicry
        assert f["resid/think_end"].shape == (12, 3, 64)
        assert f["resid/think_end"].is_virtual  # mapped onto the batch parts, not copied
        src = f["resid/think_end"].virtual_sources()[0]
        with h5py.File(out.parent / src.file_name) as g:
            assert g[src.dset_name].chunks[1] == 1  # one layer per chunk
        assert f["entropy/raw/reasoning"].shape == (12, 2, 4)
        off = f["tokens/offsets"][()]
        assert off[-1] == f["tokens/resid"].shape[0] == f["tokens/positions"].shape[0]


def test_float16_storage(job):
    model_dir, traces, tmp = job
    a = capture(model_dir, traces, tmp / "a.h5", CaptureConfig(entropy="off"), progress=False,
                log=lambda s: None)
    b = capture(model_dir, traces, tmp / "b.h5", CaptureConfig(entropy="off", dtype="float16"),
                progress=False, log=lambda s: None)
    with open_cache(a) as ca, open_cache(b) as cb:
        assert cb.resid(1, "mean_reasoning").dtype == np.float32  # returned as float32
        with h5py.File(b) as f:
            assert f["resid/mean_reasoning"].dtype == np.float16
        np.testing.assert_allclose(cb.resid(1, "mean_reasoning"), ca.resid(1, "mean_reasoning"),
                                   rtol=2e-3, atol=2e-3)
        with pytest.raises(KeyError, match="entropy off"):
            ca.entropy("prompt")


def test_resume_skips_finished_items_and_matches_one_shot(job):
    model_dir, traces, tmp = job
    cfg = CaptureConfig(batch_tokens=150)
    full = capture(model_dir, traces, tmp / "full.h5", cfg, progress=False, log=lambda s: None)
    logs: list[str] = []
    capture(model_dir, traces, tmp / "r.h5", cfg, limit=5, progress=False, log=logs.append)
    capture(model_dir, traces, tmp / "r.h5", CaptureConfig(batch_tokens=400), progress=False,
            log=logs.append)  # a performance knob may differ on resume
    assert "5 already in cache (skipped), 7 to capture" in logs[2]
    logs.clear()
    capture(model_dir, traces, tmp / "r.h5", cfg, progress=False, log=logs.append)
    assert "12 already in cache (skipped), 0 to capture" in logs[0]
    with open_cache(full) as a, open_cache(tmp / "r.h5") as b:
        assert list(a.items.item_id) == list(b.items.item_id)
        for s in a.sites:
            np.testing.assert_allclose(a.resid(-1, s), b.resid(-1, s), atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(a.entropy("reasoning"), b.entropy("reasoning"), atol=1e-5)


def test_mismatched_cache_is_refused_and_untouched(job, tiny_model_dir):
    model_dir, traces, tmp = job
    out = capture(model_dir, traces, tmp / "c.h5", CaptureConfig(), limit=3, progress=False,
                  log=lambda s: None)
    before, parts = _sha(out), sorted(parts_dir(out).iterdir())
    with pytest.raises(CacheMismatchError, match="entropy='exact'.*entropy='off'"):
        capture(model_dir, traces, out, CaptureConfig(entropy="off"), progress=False)
    with pytest.raises(CacheMismatchError, match="sites"):
        capture(model_dir, traces, out, CaptureConfig(sites="last_prompt"), progress=False)
    with pytest.raises(CacheMismatchError, match="model=.*refusing.*new --out"):
        capture(tiny_model_dir("llama"), traces, out, CaptureConfig(), progress=False)
    assert _sha(out) == before and sorted(parts_dir(out).iterdir()) == parts
    (tmp / "junk.h5").write_text("not hdf5")
    with pytest.raises(CacheMismatchError, match="not a readable HDF5"):
        capture(model_dir, traces, tmp / "junk.h5", CaptureConfig(), progress=False)


def test_unwritable_path_and_full_disk_are_clear_errors(job, monkeypatch, capsys):
    from experiments.cli import main
    from mimicry.store import writer

    model_dir, traces, tmp = job
    (tmp / "afile").write_text("x")
    rc = main(["capture", "--model", model_dir, "--traces", str(traces),
               "--out", str(tmp / "afile" / "c.h5"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "choose a writable --out" in err

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, "write_shard", full)
    with pytest.raises(MimicryError, match="disk full.*resumes"):
        capture(model_dir, traces, tmp / "d.h5", CaptureConfig(), progress=False,
                log=lambda s: None)
    assert not (tmp / "d.h5").exists() and not parts_dir(tmp / "d.h5").exists()


def test_stale_shards_after_consolidation_are_not_duplicated(job):
    import shutil

    from mimicry.store.vds import pack as consolidate

    model_dir, traces, tmp = job
    out = tmp / "c.h5"
    capture(model_dir, traces, out, CaptureConfig(batch_tokens=100), limit=4, progress=False,
            log=lambda s: None)
    consolidate(out)  # --copy: one self-contained file, parts deleted
    assert not is_index(out) and not parts_dir(out).exists()
    # simulate a kill after the rename but before the shards were deleted
    pdir = parts_dir(out)
    pdir.mkdir()
    shard = tmp / "shard.h5"
    with h5py.File(out) as f, h5py.File(shard, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        for name in ("items", "resid", "entropy"):
            f.copy(name, g)
    shutil.copy(shard, pdir / "part-000000.h5")
    logs: list[str] = []
    capture(model_dir, traces, out, CaptureConfig(), progress=False, log=logs.append)
    assert "4 already in cache" in logs[0]
    with open_cache(out) as c:
        assert len(c) == 12 and c.items.item_id.is_unique
    # the self-contained file became a base shard (renamed, not copied); the stale part is gone
    assert sorted(p.name for p in pdir.iterdir())[0] == "base-000000.h5"
    assert sum(1 for p in pdir.iterdir() if p.name.startswith("part-")) == 0
    assert consolidate(out) == out


def test_open_cache_errors(tmp_path):
    with pytest.raises(MimicryError, match="not found"):
        open_cache(tmp_path / "none.h5")
    parts_dir(tmp_path / "p.h5").mkdir()
    (parts_dir(tmp_path / "p.h5") / "part-000000.h5").write_bytes(b"")
    with pytest.raises(MimicryError, match="not consolidated.*cache consolidate"):
        open_cache(tmp_path / "p.h5")


def test_cache_consolidate_cli_joins_shards_of_a_killed_run(job, capsys):
    import shutil

    from experiments.cli import main
    from mimicry.store.vds import pack

    model_dir, traces, tmp = job
    out = capture(model_dir, traces, tmp / "c.h5", CaptureConfig(batch_tokens=100), limit=6,
                  progress=False, log=lambda s: None)
    with open_cache(out) as c:
        n, ref = len(c), c.resid(-1, "last_prompt")
    # a killed run leaves shards only: the rank parts of c.h5 plus a legacy-named part
    shutil.copytree(parts_dir(out), tmp / "k.h5.parts")
    shutil.copy(pack(out), tmp / "k.h5.parts" / "part-000000.h5")  # same items again
    with pytest.raises(MimicryError, match="not consolidated.*cache consolidate"):
        open_cache(tmp / "k.h5")
    assert main(["cache", "consolidate", str(tmp / "k.h5")]) == 0
    with open_cache(tmp / "k.h5") as c:  # each item once, nothing copied
        assert len(c) == n and c.items.item_id.is_unique and is_index(tmp / "k.h5")
        np.testing.assert_array_equal(c.resid(-1, "last_prompt"), ref)
    assert main(["cache", "info", str(tmp / "k.h5")]) == 0
    assert "base: " in capsys.readouterr().out  # the legacy part holds every item: mapped
    assert main(["cache", "consolidate", "--copy", str(tmp / "k.h5")]) == 0
    assert not is_index(tmp / "k.h5") and not parts_dir(tmp / "k.h5").exists()
    with open_cache(tmp / "k.h5") as c:
        np.testing.assert_array_equal(c.resid(-1, "last_prompt"), ref)


def test_cache_without_its_shards_is_refused_not_read_as_nan(job):
    import shutil

    model_dir, traces, tmp = job
    out = capture(model_dir, traces, tmp / "c.h5", CaptureConfig(), limit=3, progress=False,
                  log=lambda s: None)
    (tmp / "moved").mkdir()
    shutil.copy(out, tmp / "moved" / "c.h5")
    with pytest.raises(MimicryError, match="shard files .* missing.*--copy"):
        open_cache(tmp / "moved" / "c.h5")
    shutil.copytree(parts_dir(out), tmp / "moved" / "c.h5.parts")  # moved together: fine
    with open_cache(tmp / "moved" / "c.h5") as c, open_cache(out) as d:
        np.testing.assert_array_equal(c.entropy("prompt"), d.entropy("prompt"))


def test_cache_info_cli(job, capsys):
    from experiments.cli import main

    model_dir, traces, tmp = job
    out = capture(model_dir, traces, tmp / "c.h5", CaptureConfig(entropy="off"), limit=5,
                  progress=False, log=lambda s: None)
    assert main(["cache", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 items" in text and "truncated traces: 1" in text and "schema: mimicry.cache/1" in text
    assert main(["cache", "info", str(tmp / "nope.h5")]) == 2


def test_sampled_positions_are_recorded(job):
    from mimicry.capture.segments import sampled_positions

    model_dir, traces, tmp = job
    cfg = CaptureConfig(entropy="sampled", n_sampled=8, seed=11)
    out = capture(model_dir, traces, tmp / "s.h5", cfg, progress=False, log=lambda s: None)
    with open_cache(out) as c:
        for i, r in c.items.iterrows():
            pos = c.sampled_positions(i)
            want = sampled_positions(int(r.n_tokens), 8, 11, f"teacher::{r.item_id}",
                                     (int(r.last_prompt), int(r.think_end)))
            assert (pos == want).all() and int(r.last_prompt) in pos
        assert np.isfinite(c.entropy("last_prompt")).all()
    with pytest.raises(CacheMismatchError, match="seed=11.*seed=12"):
        capture(model_dir, traces, out, CaptureConfig(entropy="sampled", n_sampled=8, seed=12),
                progress=False)
