"""Merging a cache file and its batch shards into one file, and the HDF5 helpers writers share.

:func:`consolidate` is step 2 of the crash-safe write described in :mod:`mimicry.store.writer`:
the existing ``OUT.h5`` (if any) and every shard, streamed item by item in input order into a
temp file that is fsynced and renamed onto ``OUT.h5``; only then are the shards deleted.
``_create``/``_chunks``/``_checksummed`` (chunking and checksums of every dataset),
``_keys``/``_datasets`` and ``_fsync_path`` are used by the writer, the per-rank shards and
the virtual-dataset index alike.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..diskspace import check_room, guarded_hdf5_write
from ..errors import CacheMismatchError, MimicryError
from .reader import RAGGED, SCHEMA, check_attrs, parts_dir, read_attrs

_PART = re.compile(r"^part-(\d{6})\.h5$")
CHUNK_BYTES = 1 << 19  # target chunk size: 512 KiB


def _chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Return chunks of item rows x (1 layer) x the rest, near CHUNK_BYTES."""
    rest = list(shape[1:])
    if len(rest) >= 2:
        rest[0] = 1  # one layer per chunk: resid(layer, site) reads only that layer
    per_row = max(1, int(np.prod(rest)) * itemsize)
    rows = max(1, min(max(shape[0], 1), CHUNK_BYTES // per_row))
    return (rows, *rest)


def _checksummed(dtype) -> bool:
    """Return whether datasets of ``dtype`` get a fletcher32 checksum (HDF5 cannot filter
    variable-length strings; every numeric dataset has one, so a flipped byte is an error)."""
    return np.dtype(dtype).kind != "O"


def _create(f, name: str, data: np.ndarray) -> None:
    data = np.asarray(data)
    f.create_dataset(name, data=data, chunks=_chunks(data.shape, data.dtype.itemsize),
                     maxshape=(None, *data.shape[1:]), fletcher32=_checksummed(data.dtype))


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _keys(f) -> list[str]:
    ids = f["items/item_id"].asstr()[()]
    models = f["items/trace_model"].asstr()[()]
    return [f"{m}::{i}" for m, i in zip(models, ids)]


def _datasets(f) -> list[str]:
    names: list[str] = []
    f.visit(lambda n: names.append(n) if hasattr(f[n], "shape") else None)
    return names


def consolidate(path: str | Path, attrs: dict | None = None) -> Path:
    """Merge ``path`` (if present) and its shards, sorted by input row, into ``path``; return it.

    Streams item by item (no whole dataset in memory); the new file is written to a temp
    name and renamed, so a kill here leaves the old file and the shards intact.
    """
    import h5py

    path = Path(path)
    pdir = parts_dir(path)
    parts = sorted(p for p in pdir.iterdir() if _PART.match(p.name)) if pdir.is_dir() else []
    sources = ([path] if path.exists() else []) + parts
    if not sources:
        raise MimicryError("nothing to consolidate (no cache file and no shards)", file=path)
    if not parts:
        _check_readable(path)
        return path
    entries = []  # (row, key, src, local)
    seen: set[str] = set()
    ref_attrs = attrs
    for si, src in enumerate(sources):
        with h5py.File(src, "r") as f:
            a = read_attrs(f)
            if ref_attrs is None:
                ref_attrs = a
            check_attrs(src, a, ref_attrs)
            rows = f["items/row"][()]
            for li, key in enumerate(_keys(f)):
                if key not in seen:
                    seen.add(key)
                    entries.append((int(rows[li]), key, si, li))
    entries.sort()
    n = len(entries)
    dest_of = {(si, li): d for d, (_, _, si, li) in enumerate(entries)}
    tmp = path.with_name(f".{path.name}.consolidate.tmp")
    with guarded_hdf5_write(path, tmp, "consolidating the cache"):
        # the merged file needs about the sources' size: refuse now, not crash in HDF5
        check_room(path.parent, sum(s.stat().st_size for s in sources), "consolidating")
        _merge(tmp, sources, entries, dest_of, n, ref_attrs)
        _fsync_path(tmp)
        os.replace(tmp, path)
    for p in parts:
        p.unlink(missing_ok=True)
    try:
        pdir.rmdir()
    except OSError:
        pass
    return path


def _check_readable(path: Path) -> None:
    """Raise a one-line error unless ``path`` opens as a cache of this schema."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            schema = read_attrs(f).get("schema")
    except (OSError, RuntimeError) as e:
        raise CacheMismatchError(
            f"not a readable HDF5 cache ({str(e).splitlines()[0][:100]})", file=path,
            fix="give a cache written by `mimicry capture`") from None
    if schema != SCHEMA:
        raise CacheMismatchError(f"not a {SCHEMA} cache (schema={schema!r})", file=path,
                                 fix="give a cache written by `mimicry capture`")


def _merge(tmp: Path, sources: list[Path], entries, dest_of, n: int, attrs: dict) -> None:
    import h5py

    offsets_names = set(RAGGED.values())
    with h5py.File(tmp, "w", rdcc_nbytes=64 << 20) as out:
        for k, v in attrs.items():
            out.attrs[k] = v
        # ragged counts per destination row
        counts: dict[str, np.ndarray] = {}
        for si, src in enumerate(sources):
            with h5py.File(src, "r") as f:
                for off in offsets_names:
                    if off in f:
                        c = np.diff(f[off][()])
                        counts.setdefault(off, np.zeros(n, np.int64))
                        for li, cnt in enumerate(c):
                            if (si, li) in dest_of:
                                counts[off][dest_of[(si, li)]] = cnt
        dest_off = {k: np.concatenate([[0], np.cumsum(v)]) for k, v in counts.items()}
        with h5py.File(sources[0], "r") as f0:
            for name in _datasets(f0):
                ds = f0[name]
                if name in offsets_names:
                    _create(out, name, dest_off[name])
                    continue
                rows = int(dest_off[RAGGED[name]][-1]) if name in RAGGED else n
                shape = (rows, *ds.shape[1:])
                out.create_dataset(name, shape=shape, dtype=ds.dtype,
                                   chunks=_chunks(shape, ds.dtype.itemsize),
                                   maxshape=(None, *ds.shape[1:]),
                                   fletcher32=_checksummed(ds.dtype))
        # Destination-ordered, block by block (block = the resid chunk rows): every chunk of
        # the new file is written once, whole, in order (scattered writes into chunked
        # datasets would read-modify-write them); each block opens only its own sources.
        names = []
        out.visit(lambda nm: names.append(nm) if isinstance(out[nm], h5py.Dataset) else None)
        plain = [nm for nm in names if nm not in offsets_names and nm not in RAGGED]
        ragged = [nm for nm in names if nm in RAGGED]
        block = max(1, min(out[nm].chunks[0] for nm in plain if nm.startswith("resid/"))
                    if any(nm.startswith("resid/") for nm in plain) else 256)
        for a in range(0, n, block):
            b = min(n, a + block)
            bufs = {nm: np.empty((b - a, *out[nm].shape[1:]), dtype=out[nm].dtype)
                    for nm in plain}
            rag = {nm: [None] * (b - a) for nm in ragged}
            by_src: dict[int, list[tuple[int, int]]] = {}
            for d in range(a, b):
                _, _, si, li = entries[d]
                by_src.setdefault(si, []).append((li, d - a))
            for si, pairs in by_src.items():
                pairs.sort()  # h5py point selections must be increasing
                local = np.array([li for li, _ in pairs], dtype=np.int64)
                slot = np.array([j for _, j in pairs], dtype=np.int64)
                with h5py.File(sources[si], "r") as f:
                    for nm in plain:
                        bufs[nm][slot] = f[nm][local]
                    for nm in ragged:
                        so = f[RAGGED[nm]][()]
                        for li, j in pairs:
                            rag[nm][j] = f[nm][so[li]:so[li + 1]]
            for nm in plain:
                out[nm][a:b] = bufs[nm]
            for nm in ragged:
                do = dest_off[RAGGED[nm]]
                if do[b] > do[a]:
                    out[nm][do[a]:do[b]] = np.concatenate(rag[nm])
