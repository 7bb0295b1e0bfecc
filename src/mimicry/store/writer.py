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
two runs from writing the same cache. Step 2 (``consolidate``) and the dataset helpers that
both steps share live in :mod:`mimicry.store.merge`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..diskspace import check_room, guarded_hdf5_write, write_error
from ..errors import CacheMismatchError, MimicryError
from ..locking import WriterLock
from .merge import _PART, _create, _fsync_path, _keys, consolidate
from .reader import ITEM_INT_COLUMNS, ITEM_STR_COLUMNS, SCHEMA, check_attrs, parts_dir, read_attrs
from .records import EncodedItem, ItemActivations


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


def _shard_bytes(acts: list[ItemActivations]) -> int:
    """Return an upper estimate of one shard's size: the arrays plus per-dataset overhead."""
    n = 0
    for a in acts:
        n += sum(np.asarray(v).nbytes for v in a.resid.values())
        n += sum(np.asarray(x).nbytes for segs in a.entropy.values() for x in segs.values())
        if a.token_resid is not None:
            n += np.asarray(a.token_resid).nbytes
    return n + SHARD_OVERHEAD


SHARD_OVERHEAD = 128 << 10  # measured: a one-item shard of the tiny model is ~113 KiB


def lock_cache(path: Path) -> WriterLock:
    """Return the held writer lock of cache ``path`` (raise if another run holds it)."""
    return WriterLock(path, "capture").acquire()


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
        self._lock: WriterLock | None = None
        self._seq = 0

    # --- opening -----------------------------------------------------------------------

    def open(self) -> set[str]:
        """Return the keys already committed (file + shards) after checking attrs; take the lock."""
        import h5py

        if self.path.is_dir():
            raise MimicryError("--out is a directory", file=self.path,
                               fix="give a file path such as cache/RUN/MODEL.h5")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.path, e, "creating the cache folder") from None
        self._lock = lock_cache(self.path)  # refused -> raises before touching anything
        try:
            self.parts.mkdir(exist_ok=True)
            probe = self.parts / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise write_error(self.path, e, "creating the cache folder") from None
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
        with guarded_hdf5_write(final, tmp, "writing a batch"):
            check_room(self.parts, _shard_bytes(acts), "writing a batch")
            write_shard(tmp, self.attrs, items, acts, self.store_dtype)
            _fsync_path(tmp)
            os.replace(tmp, final)
        self._seq += 1
        return final

    def finish(self) -> Path:
        """Merge the file and all shards into ``path`` atomically; return ``path``."""
        consolidate(self.path, self.attrs)
        return self.path

    def close(self) -> None:
        """Remove the shard folder if it is empty and release the lock — only if we hold it.

        A run refused by the lock owns nothing: it must not remove the holder's (still
        empty) shard folder.
        """
        if self._lock is None or not self._lock.held:
            return
        try:
            self.parts.rmdir()  # only succeeds when empty: no partial output left behind
        except OSError:
            pass
        self._lock.release()
        self._lock = None

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
