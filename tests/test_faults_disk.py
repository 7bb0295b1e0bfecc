"""Fault injection, full disk and file-size limits: one clear line, nothing half-written.

Real limits only: ``RLIMIT_FSIZE`` set in the child (what ``ulimit -f`` does; the kernel
then fails writes with EFBIG) and a real tmpfs of 2 MiB. The capture's own room checks
refuse most cases up front; the "no guard" runs switch those checks off in the child to
prove that a write failing half-way inside HDF5 is still one line, not a traceback or a
crash, and leaves no temp file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _faults import assert_one_line_error, env, leftovers, run_cli, tmpfs, write_items, write_traces

from mimicry.capture import CaptureConfig, capture
from mimicry.store import open_cache, parts_dir

ARGS = ("--batch-tokens", "64", "--per-token-stride", "1", "--no-progress")
NO_GUARD = """import resource, sys
import mimicry.capture.driver as r, mimicry.store.shards as s, mimicry.store.vds as v
r.check_room = s.check_room = v.check_room = lambda *a, **k: None  # pre-checks off
lim = int(sys.argv[1])
if lim:
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim, lim))
from experiments.cli import main
sys.argv = sys.argv[:1] + sys.argv[2:]
sys.exit(main())  # as the console script does
"""


def _no_guard(tmp_path: Path, limit: int, *args) -> subprocess.CompletedProcess:
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD)
    return subprocess.run([sys.executable, str(script), str(limit), *map(str, args)],
                          capture_output=True, text=True, env=env(), timeout=300)


@pytest.fixture
def job(tmp_path, tiny_model_dir):
    return tiny_model_dir("qwen2"), write_traces(tmp_path / "t.jsonl", n=12)


def test_file_size_limit_is_refused_up_front(job, tmp_path):
    model, traces = job
    out = tmp_path / "c.h5"
    p = run_cli("capture", "--model", model, "--traces", traces, "--out", out, *ARGS,
                fsize=100_000)
    assert_one_line_error(p, "file-size limit (ulimit -f)")
    assert p.returncode != 139 and not out.exists() and not parts_dir(out).exists()
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_file_size_limit_hit_inside_hdf5(job, tmp_path):
    """Fault 6 as reported: a real EFBIG inside h5py (RuntimeError/OSError), not a segfault.

    Twice: while a batch part is written, and while ``cache consolidate --copy`` packs the
    cache into one file; the pre-checks are off in the child so HDF5 itself hits the limit.
    """
    model, traces = job
    out = tmp_path / "c.h5"
    p = _no_guard(tmp_path, 60_000, "capture", "--model", model, "--traces", traces,
                  "--out", out, *ARGS)
    assert_one_line_error(p, "writing a batch", "file-size limit (ulimit -f)")
    assert leftovers(tmp_path) == [] and not out.exists()
    p = run_cli("capture", "--model", model, "--traces", traces, "--out", out, *ARGS)
    assert p.returncode == 0, p.stderr[-2000:]
    parts = sorted(parts_dir(out).glob("*part-*.h5"))
    limit = max(q.stat().st_size for q in parts) + 20_000  # every part fits, the copy not
    p = _no_guard(tmp_path, limit, "cache", "consolidate", "--copy", out)
    assert_one_line_error(p, "packing", "file-size limit (ulimit -f)")
    assert leftovers(tmp_path) == [] and sorted(parts_dir(out).glob("*part-*.h5")) == parts
    ref = capture(model, traces, tmp_path / "ref.h5", CaptureConfig(per_token_stride=1),
                  progress=False, log=lambda s: None)
    with open_cache(out) as a, open_cache(ref) as b:  # the cache is intact
        np.testing.assert_allclose(a.resid(-1, "mean_reasoning"),
                                   b.resid(-1, "mean_reasoning"), atol=1e-5)


@pytest.mark.slow
def test_full_disk_on_a_real_tmpfs(job, tmp_path):
    model, traces = job
    with tmpfs(tmp_path / "small", "1m") as mnt:
        out = mnt / "c.h5"
        p = run_cli("capture", "--model", model, "--traces", traces, "--out", out, *ARGS)
        assert_one_line_error(p, "disk full")
        assert leftovers(mnt) == [] and not out.exists()
        p = _no_guard(tmp_path, 0, "capture", "--model", model, "--traces", traces, "--out",
                      out, *ARGS)
        assert_one_line_error(p, "disk full")
        assert leftovers(mnt) == [] and not out.exists()
        # generate on the full disk: the appended traces file cannot grow
        (mnt / "filler").write_bytes(b"")
        with open(mnt / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        items = write_items(tmp_path / "items.csv")
        p = run_cli("generate", "--model", model, "--tasks", items, "--out",
                    mnt / "traces.jsonl", "--max-new-tokens", "4", "--quiet")
        assert_one_line_error(p, "disk full")
        assert leftovers(mnt) == []


def test_disk_estimate_includes_per_shard_overhead(job, tmp_path):
    """The printed size covers the part files (each one HDF5 file) plus the index."""
    model, traces = job
    logs: list[str] = []
    out = capture(model, traces, tmp_path / "c.h5", CaptureConfig(batch_tokens=64,
                                                                   per_token_stride=1),
                  progress=False, log=logs.append)
    said = float(re.search(r"~([\d.,]+) MiB more in", logs[0]).group(1)) * 2**20
    used = out.stat().st_size + sum(q.stat().st_size for q in parts_dir(out).glob("*.h5"))
    assert said >= used, (said, used)
    assert said <= 4 * used  # an estimate, not a wild over-statement
