"""Fault injection, corruption: real bytes flipped in a real cache file on disk.

Every numeric dataset carries a fletcher32 checksum, so a flipped byte inside a data chunk is
an error naming the file, never a number that silently enters the results; flips anywhere
else (metadata, headers) are one clear line too, never a KeyError traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from _faults import env, write_traces

from experiments.cli import main
from mimicry.capture import CaptureConfig, capture
from mimicry.errors import InputError
from mimicry.store import open_cache

CHECK = r"""
import json, sys, random
import numpy as np
from mimicry.errors import MimicryError
from mimicry.store import open_cache

src, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(src, "rb").read()
with open_cache(src) as c:
    ref = {s: c.resid(-1, s) for s in c.sites}
    ref_rows = c.items["row"].to_numpy()
out = {"error": 0, "same": 0, "silent": 0, "other": []}
rng = random.Random(seed)
for t in range(n):
    b = bytearray(data)
    for _ in range(8):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    p = src + f".flip{t}.h5"
    open(p, "wb").write(b)
    try:
        with open_cache(p) as c:
            got = {s: c.resid(-1, s) for s in c.sites}
            rows = c.items["row"].to_numpy()
        same = all(np.array_equal(got[s], ref[s], equal_nan=True) for s in ref) and \
            np.array_equal(rows, ref_rows)
        out["same" if same else "silent"] += 1
    except MimicryError:
        out["error"] += 1
    except Exception as e:
        out["other"].append(f"{type(e).__name__}: {e}"[:200])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory, tiny_model_dir):
    d = tmp_path_factory.mktemp("corrupt")
    from mimicry.store.vds import pack

    traces = write_traces(d / "t.jsonl", n=12)
    out = capture(tiny_model_dir("qwen2"), traces, d / "c.h5",
                  CaptureConfig(entropy="off", sites=("last_prompt", "mean_reasoning")),
                  progress=False, log=lambda s: None)
    return pack(out)  # one self-contained file (`cache consolidate --copy`): data in it


def _flip_in_chunk(src, dest, dataset: str) -> None:
    shutil.copyfile(src, dest)
    with h5py.File(src, "r") as f:
        ds = f[dataset]
        assert ds.fletcher32
        last = (0, ds.shape[1] - 1, 0) if ds.ndim == 3 else (0,)
        info = ds.id.get_chunk_info_by_coord(last)  # the chunk resid(-1, ...) reads
    with open(dest, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        b = fh.read(1)
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes([b[0] ^ 0x10]))


def test_flip_inside_a_data_chunk_is_an_error(cache, tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    _flip_in_chunk(cache, bad, "resid/mean_reasoning")
    with open_cache(bad) as c:
        c.resid(-1, "last_prompt")  # other datasets still read
        with pytest.raises(InputError, match="corrupt"):
            c.resid(-1, "mean_reasoning")
    bad2 = tmp_path / "bad2.h5"
    _flip_in_chunk(cache, bad2, "items/row")
    rc = main(["cache", "info", str(bad2)])
    err = capsys.readouterr().err
    assert rc == 2 and "corrupt" in err and "Traceback" not in err


def test_random_byte_flips_never_pass_silently_or_crash(cache, tmp_path):
    """40 copies with 8 random bit flips each: an error line or the exact numbers, nothing else."""
    src = tmp_path / "c.h5"
    shutil.copyfile(cache, src)
    p = subprocess.run([sys.executable, "-c", CHECK, str(src), "20261129", "40"],
                       capture_output=True, text=True, env=env(), timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]  # no segfault, no uncaught exception
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["other"] == [] and out["silent"] == 0, out
    assert out["error"] > 0 and out["error"] + out["same"] == 40


def test_consolidate_refuses_a_file_that_is_not_a_cache(tmp_path, capsys):
    p = tmp_path / "notes.h5"
    p.write_text("not hdf5 at all\n")
    rc = main(["cache", "consolidate", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and "not a readable HDF5 cache" in err and "consolidated" not in err
    assert p.read_text() == "not hdf5 at all\n"
    q = tmp_path / "other.h5"
    with h5py.File(q, "w") as f:
        f["x"] = np.arange(3)
    rc = main(["cache", "consolidate", str(q)])
    assert rc == 2 and "not a mimicry.cache/1 cache" in capsys.readouterr().err


def test_flip_in_a_part_file_is_an_error_through_the_index(tmp_path, tiny_model_dir):
    """Unpacked caches read their parts through virtual datasets: the checksum still holds."""
    from mimicry.store import parts_dir

    out = capture(tiny_model_dir("qwen2"), write_traces(tmp_path / "t.jsonl", n=6),
                  tmp_path / "c.h5", CaptureConfig(entropy="off"), progress=False,
                  log=lambda s: None)
    part = sorted(parts_dir(out).glob("*part-*.h5"))[0]
    _flip_in_chunk(part, tmp_path / "flipped.h5", "resid/mean_reasoning")
    shutil.copyfile(tmp_path / "flipped.h5", part)
    with open_cache(out) as c, pytest.raises(InputError, match="corrupt"):
        c.resid(-1, "mean_reasoning")
