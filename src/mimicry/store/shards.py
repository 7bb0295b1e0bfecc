"""Rank shards of a capture and the HDF5 virtual-dataset index that joins them without a copy.

Layout of a cache ``OUT.h5`` (schema ``mimicry.cache/1``, read by :func:`mimicry.open_cache`
or plain h5py)::

    OUT.h5.parts/r000-part-000000.h5   batch parts of rank 0, each a complete small cache
    OUT.h5.parts/r001-part-000000.h5   ... of rank 1 (a rank's shard = its part files)
    OUT.h5.parts/base-000000.h5        a cache consolidated by copying (older versions or
                                       ``mimicry cache consolidate --copy``), moved here
    OUT.h5                             the index: root attrs + ``shards`` (JSON: files, rank,
                                       items); ``items/*`` and ragged offsets as real datasets;
                                       every other dataset an h5py virtual dataset mapping
                                       rows (sorted by input row) onto rows of the parts

Source paths are relative to the index's folder, so ``OUT.h5`` and ``OUT.h5.parts`` move
together. Writing a part is atomic (temp name, fsync, rename) and so is writing the index
(temp, fsync, rename): a kill at any moment loses at most the batches in flight. Only the
index is rewritten at the end of a run (kilobytes to megabytes), never the activations.

Several ranks (``torchrun``) write parts concurrently, each under its own ``rNNN-`` prefix
and sequence, so no two ranks ever touch the same file; rank 0 alone holds the cache lock,
reads what is committed before any rank writes, and builds the index after a barrier
(:func:`mimicry.store.vds.assemble`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..diskspace import check_room, guarded_hdf5_write
from ..errors import CacheMismatchError, MimicryError
from ..locking import WriterLock
from . import writer as _writer
from .reader import SCHEMA, check_attrs, parts_dir
from .reader import read_attrs as _read_attrs
from .records import EncodedItem, ItemActivations

log = logging.getLogger(__name__)

LAYOUT = "virtual"  # root attr ``layout`` of an index file
_PART = re.compile(r"^(?:r(?P<rank>\d{3,})-)?part-(?P<seq>\d{6})\.h5$|^base-(?P<base>\d{6})\.h5$")


@dataclass(frozen=True)
class Part:
    """One committed part file: ``path``, the writing ``rank`` (None: legacy/base), ``seq``."""

    path: Path
    rank: int | None
    seq: int
    base: bool = False

    @property
    def order(self) -> tuple:
        """Return the sort key: bases first, then legacy parts, then by rank and sequence."""
        return (0 if self.base else 1 if self.rank is None else 2, self.rank or 0, self.seq)


def parse_part(path: Path) -> Part | None:
    """Return the :class:`Part` named by ``path``, or None when it is not a committed part."""
    m = _PART.match(path.name)
    if not m:
        return None
    if m.group("base") is not None:
        return Part(path, None, int(m.group("base")), base=True)
    rank = m.group("rank")
    return Part(path, None if rank is None else int(rank), int(m.group("seq")))


def list_parts(path: str | Path) -> list[Part]:
    """Return the committed parts of cache ``path`` (bases, legacy, then by rank and seq)."""
    pdir = parts_dir(path)
    if not pdir.is_dir():
        return []
    parts = [p for p in (parse_part(x) for x in pdir.iterdir()) if p is not None]
    return sorted(parts, key=lambda p: p.order)


def part_name(rank: int, seq: int) -> str:
    """Return the file name of rank ``rank``'s ``seq``-th part."""
    return f"r{rank:03d}-part-{seq:06d}.h5"


def is_index(path: str | Path) -> bool:
    """Return True when ``path`` is a virtual-dataset index (not a self-contained cache)."""
    import h5py

    with h5py.File(path, "r") as f:
        return f.attrs.get("layout") == LAYOUT


def _keys(f) -> list[str]:
    ids = f["items/item_id"].asstr()[()]
    models = f["items/trace_model"].asstr()[()]
    return [f"{m}::{i}" for m, i in zip(models, ids)]


def committed(path: str | Path, attrs: dict | None) -> dict[str, Part]:
    """Return key -> part for every committed item of cache ``path``, after checking attrs.

    ``attrs`` None: every part must match the first one's. Call under the cache lock before any rank writes. A self-contained ``path`` (copied
    consolidation) is moved into the parts folder as a base (a rename, not a copy), after
    deleting parts whose items it already holds (a kill between its rename and their
    deletion). Leftover temp files of killed writes are removed.
    """
    import h5py

    path = Path(path)
    attrs = None if attrs is None else dict(attrs, schema=SCHEMA)
    pdir = parts_dir(path)
    for tmp in list(pdir.glob(".*")) + list(path.parent.glob(f".{path.name}.*.tmp")):
        tmp.unlink(missing_ok=True)
    if path.exists():
        try:
            with h5py.File(path, "r") as f:
                found = _read_attrs(f)
                if attrs is not None:
                    check_attrs(path, found, attrs)
                index = found.get("layout") == LAYOUT
                keys = set() if index else set(_keys(f))
        except OSError as e:
            raise CacheMismatchError(
                f"exists but is not a readable HDF5 cache ({str(e).splitlines()[0][:100]})",
                file=path, fix="choose a new --out path or delete the file") from None
        if not index:
            for part in list_parts(path):
                with h5py.File(part.path, "r") as f:
                    if keys.issuperset(_keys(f)):
                        part.path.unlink()
            seq = max([p.seq + 1 for p in list_parts(path) if p.base], default=0)
            pdir.mkdir(parents=True, exist_ok=True)
            os.replace(path, pdir / f"base-{seq:06d}.h5")
            log.info("moved self-contained cache %s into %s as a base shard", path, pdir)
    out: dict[str, Part] = {}
    for part in list_parts(path):
        with h5py.File(part.path, "r") as f:
            found = _read_attrs(f)
            attrs = found if attrs is None else attrs  # none given: all must match the first
            check_attrs(part.path, found, attrs)
            for k in _keys(f):
                out.setdefault(k, part)
    return out


def open_job(path: str | Path, attrs: dict) -> tuple[WriterLock, set[str]]:
    """Return ``(held writer lock, committed keys)`` of cache ``path`` for a new run (rank 0 only).

    Checks ``--out``, creates the parts folder, takes the cache lock (another run writing
    this cache -> :class:`MimicryError`), then reads what is committed (:func:`committed`).
    """
    path = Path(path)
    attrs = dict(attrs, schema=SCHEMA)
    if path.is_dir():
        raise MimicryError("--out is a directory", file=path,
                           fix="give a file path such as cache/RUN/MODEL.h5")
    pdir = parts_dir(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _writer._io_error(path, e, "creating the cache folder") from None
    fd = _writer.lock_cache(path)  # refused -> raises before touching anything
    try:
        pdir.mkdir(exist_ok=True)
        probe = pdir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        return fd, set(committed(path, attrs))
    except BaseException as e:
        close_job(path, fd)
        if isinstance(e, OSError):
            raise _writer._io_error(path, e, "creating the cache folder") from None
        raise


def close_job(path: str | Path, fd) -> None:
    """Release the lock taken by :func:`open_job`; remove the parts folder if it is empty.

    Only the lock's holder removes anything: a run refused by the lock (``fd`` None) owns
    nothing, and the holder's (maybe still empty) parts folder must stay.
    """
    path = Path(path)
    if fd is None or not fd.held:
        return
    try:
        parts_dir(path).rmdir()  # only when empty: no partial output left behind
    except OSError:
        pass
    fd.release()


def index_current(path: str | Path) -> bool:
    """Return True when ``path`` is an index that maps exactly the parts now on disk."""
    import h5py

    path = Path(path)
    if not path.exists():
        return False
    with h5py.File(path, "r") as f:
        if f.attrs.get("layout") != LAYOUT:
            return False
        listed = {x["file"] for x in json.loads(f.attrs.get("shards", "{}")).get("files", [])}
    return listed == {p.path.name for p in list_parts(path)}


class RankWriter:
    """Writer of one rank's shard: ``write_batch`` commits a batch as an atomic part file.

    No lock of its own: rank 0 holds the cache lock for the job, and ranks never share a
    file name (``rNNN-`` prefix, own sequence).
    """

    def __init__(self, path: str | Path, attrs: dict, rank: int = 0,
                 store_dtype: str = "float32") -> None:
        self.path = Path(path)
        self.parts = parts_dir(self.path)
        self.attrs = dict(attrs, schema=SCHEMA)
        self.rank = rank
        self.store_dtype = store_dtype
        self._seq = max([p.seq + 1 for p in list_parts(path) if p.rank == rank], default=0)

    def write_batch(self, items: list[EncodedItem], acts: list[ItemActivations]) -> Path:
        """Commit one batch atomically as a part of this rank; return the part path."""
        final = self.parts / part_name(self.rank, self._seq)
        tmp = self.parts / f".{final.name}.tmp"
        with guarded_hdf5_write(final, tmp, "writing a batch"):
            self.parts.mkdir(parents=True, exist_ok=True)
            check_room(self.parts, _writer._shard_bytes(acts), "writing a batch")
            _writer.write_shard(tmp, self.attrs, items, acts, self.store_dtype)
            _writer._fsync_path(tmp)
            os.replace(tmp, final)
        self._seq += 1
        return final


def shard_summary(meta: dict) -> str | None:
    """Return a one-paragraph description of an index's ranks and shard files, or None."""
    if meta.get("layout") != LAYOUT:
        return None
    s = json.loads(meta.get("shards", "{}"))
    files = s.get("files", [])
    lines = [f"  layout: virtual datasets over {len(files)} shard files (no copy)"]
    by_rank: dict = {}
    for f in files:
        r = "base" if f["rank"] is None else f"rank {f['rank']}"
        n, k = by_rank.get(r, (0, 0))
        by_rank[r] = (n + f["items"], k + 1)
    lines.append("  ranks: " + "; ".join(f"{r}: {n} items in {k} files"
                                         for r, (n, k) in by_rank.items()))
    shown = ", ".join(f["file"] for f in files[:8])
    lines.append(f"  shard files: {shown}{' ...' if len(files) > 8 else ''}")
    return "\n".join(lines)
