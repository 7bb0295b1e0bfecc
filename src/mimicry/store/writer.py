"""Crash-safe, resumable writing of the HDF5 cache (layout in :mod:`mimicry.store`).

HDF5 has no journal: a process killed while h5py updates a file's metadata can leave the
whole file unreadable. So the cache file itself is never modified in place:

1. each finished batch is written to a new small shard ``OUT.h5.parts/part-NNNNNN.h5``
   (temp name, flush, fsync, atomic ``rename``) — a shard is complete or absent;
2. at the end of a run (or ``mimicry cache consolidate``) the existing ``OUT.h5`` (if any)
   and all shards are merged, in input order, into a temp file renamed onto ``OUT.h5``;
   only then are the shards deleted (shards whose items are already in ``OUT.h5``, left by a
   kill between the rename and the deletion, are discarded on the next open).

A kill at any moment therefore loses at most the batch in flight. Resuming reads the keys
(``trace_model::item_id``) of ``OUT.h5`` and the shards and skips them. A lock file stops
two runs from writing the same cache.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from pathlib import Path

import numpy as np

from ..capture.base import EncodedItem, ItemActivations
from ..errors import CacheMismatchError, MimicryError
from .reader import (
    ITEM_INT_COLUMNS,
    ITEM_STR_COLUMNS,
    RAGGED,
    SCHEMA,
    check_attrs,
    parts_dir,
    read_attrs,
)

_PART = re.compile(r"^part-(\d{6})\.h5$")
CHUNK_BYTES = 1 << 19  # target chunk size: 512 KiB


def _io_error(path: Path, e: OSError, what: str) -> MimicryError:
    full = e.errno == errno.ENOSPC or "No space" in str(e)
    if full:
        return MimicryError(f"disk full while {what}", file=path,
                            fix="free disk space or choose another --out; finished items are "
                                "kept and the same command resumes")
    return MimicryError(f"cannot write ({e.strerror or str(e).splitlines()[0][:120]}) while "
                        f"{what}", file=path, fix="choose a writable --out path")


def _chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Return chunks of item rows x (1 layer) x the rest, near CHUNK_BYTES."""
    rest = list(shape[1:])
    if len(rest) >= 2:
        rest[0] = 1  # one layer per chunk: resid(layer, site) reads only that layer
    per_row = max(1, int(np.prod(rest)) * itemsize)
    rows = max(1, min(max(shape[0], 1), CHUNK_BYTES // per_row))
    return (rows, *rest)


def _create(f, name: str, data: np.ndarray) -> None:
    data = np.asarray(data)
    f.create_dataset(name, data=data, chunks=_chunks(data.shape, data.dtype.itemsize),
                     maxshape=(None, *data.shape[1:]))


def _item_columns(items: list[EncodedItem]) -> dict[str, np.ndarray]:
    cols = {
        "item_id": [it.item_id for it in items],
        "task": [it.task or "" for it in items],
        "trace_model": [it.trace_model or "" for it in items],
        "row": [it.row for it in items],
        "n_tokens": [it.length for it in items],
        "n_prompt": [it.n_prompt for it in items],
        "n_reasoning": [it.reasoning_end - it.n_prompt for it in items],
        "n_answer": [it.length - it.reasoning_end for it in items],
        "last_prompt": [it.last_prompt for it in items],
        "think_end": [it.think_end for it in items],
        "reasoning_tokens": [it.reasoning_tokens for it in items],
        "truncated": [int(it.truncated) for it in items],
    }
    import h5py

    out = {k: np.array(cols[k], dtype=h5py.string_dtype("utf-8")) for k in ITEM_STR_COLUMNS}
    out.update({k: np.array(cols[k], dtype=np.int64) for k in ITEM_INT_COLUMNS})
    out["truncated"] = out["truncated"].astype(np.uint8)
    return out


def write_shard(path: Path, attrs: dict, items: list[EncodedItem], acts: list[ItemActivations],
                store_dtype: str) -> None:
    """Write one batch as a complete small cache file at ``path`` (caller renames it)."""
    import h5py

    order = np.argsort([it.row for it in items], kind="stable")
    items = [items[i] for i in order]
    acts = [acts[i] for i in order]
    dt = np.dtype(store_dtype)
    with h5py.File(path, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        for k, v in _item_columns(items).items():
            _create(f, f"items/{k}", v)
        for site in acts[0].resid:
            _create(f, f"resid/{site}", np.stack([a.resid[site] for a in acts]).astype(dt))
        for var, segs in acts[0].entropy.items():
            for seg in segs:
                _create(f, f"entropy/{var}/{seg}",
                        np.stack([a.entropy[var][seg] for a in acts]).astype(np.float32))
        if any(it.entropy_positions is not None for it in items):
            pos = [np.asarray(it.entropy_positions, np.int64) for it in items]
            _create(f, "entropy/positions", np.concatenate(pos))
            _create(f, "entropy/positions_offsets", np.cumsum([0] + [len(p) for p in pos]))
        if acts[0].token_resid is not None:
            _create(f, "tokens/resid", np.concatenate([a.token_resid for a in acts]).astype(dt))
            _create(f, "tokens/positions", np.concatenate([a.token_positions for a in acts]))
            _create(f, "tokens/offsets", np.cumsum([0] + [len(a.token_positions) for a in acts]))
        f.flush()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_cache(path: Path) -> int:
    """Return the fd of an exclusive lock on cache ``path`` (raise if another run holds it)."""
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise MimicryError("another capture is writing this cache", file=path,
                           fix="wait for it to finish or choose another --out") from None
    return fd


def _keys(f) -> list[str]:
    ids = f["items/item_id"].asstr()[()]
    models = f["items/trace_model"].asstr()[()]
    return [f"{m}::{i}" for m, i in zip(models, ids)]


def _datasets(f) -> list[str]:
    names: list[str] = []
    f.visit(lambda n: names.append(n) if hasattr(f[n], "shape") else None)
    return names


class CacheWriter:
    """Resumable writer of one cache: ``open()`` -> committed keys, ``write_batch``, ``finish``.

    ``attrs``: the root attrs this run would write (checked against an existing file and
    shards; any difference raises :class:`CacheMismatchError`).
    """

    def __init__(self, path: str | Path, attrs: dict, store_dtype: str = "float32") -> None:
        self.path = Path(path)
        self.parts = parts_dir(self.path)
        self.attrs = dict(attrs, schema=SCHEMA)
        self.store_dtype = store_dtype
        self._lock_fd: int | None = None
        self._seq = 0

    # --- opening -----------------------------------------------------------------------
    def _lock(self) -> None:
        self._lock_fd = lock_cache(self.path)

    def open(self) -> set[str]:
        """Return the keys already committed (file + shards) after checking attrs; take the lock."""
        import h5py

        if self.path.is_dir():
            raise MimicryError("--out is a directory", file=self.path,
                               fix="give a file path such as cache/RUN/MODEL.h5")
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
            self._lock()
            probe = self.parts / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise _io_error(self.path, e, "creating the cache folder") from None
        for tmp in list(self.parts.glob(".*")) + list(self.path.parent.glob(f".{self.path.name}.*.tmp")):
            tmp.unlink(missing_ok=True)  # leftovers of a killed write (we hold the lock)
        keys: set[str] = set()
        if self.path.exists():
            try:
                with h5py.File(self.path, "r") as f:
                    check_attrs(self.path, read_attrs(f), self.attrs)
                    keys.update(_keys(f))
            except OSError as e:
                raise CacheMismatchError(
                    f"exists but is not a readable HDF5 cache ({str(e).splitlines()[0][:100]})",
                    file=self.path, fix="choose a new --out path or delete the file") from None
        for part in self._part_files():
            self._seq = max(self._seq, int(_PART.match(part.name).group(1)) + 1)
            with h5py.File(part, "r") as f:
                check_attrs(part, read_attrs(f), self.attrs)
                pk = _keys(f)
            if keys.issuperset(pk):
                part.unlink()  # already consolidated (kill after rename, before cleanup)
            else:
                keys.update(pk)
        return keys

    def _part_files(self) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted(p for p in self.parts.iterdir() if _PART.match(p.name))

    # --- writing -----------------------------------------------------------------------
    def write_batch(self, items: list[EncodedItem], acts: list[ItemActivations]) -> Path:
        """Commit one batch atomically as a shard; return the shard path."""
        final = self.parts / f"part-{self._seq:06d}.h5"
        tmp = self.parts / f".part-{self._seq:06d}.h5.tmp"
        try:
            write_shard(tmp, self.attrs, items, acts, self.store_dtype)
            _fsync_path(tmp)
            os.replace(tmp, final)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _io_error(final, e, "writing a batch") from None
        self._seq += 1
        return final

    def finish(self) -> Path:
        """Merge the file and all shards into ``path`` atomically; return ``path``."""
        consolidate(self.path, self.attrs)
        return self.path

    def close(self) -> None:
        """Release the lock; remove the shard folder if nothing is in it."""
        try:
            self.parts.rmdir()  # only succeeds when empty: no partial output left behind
        except OSError:
            pass
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
            self.path.with_name(f".{self.path.name}.lock").unlink(missing_ok=True)

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
    try:
        _merge(tmp, sources, entries, dest_of, n, ref_attrs)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _io_error(path, e, "consolidating the cache") from None
    for p in parts:
        p.unlink(missing_ok=True)
    try:
        pdir.rmdir()
    except OSError:
        pass
    return path


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
                                   maxshape=(None, *ds.shape[1:]))
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
