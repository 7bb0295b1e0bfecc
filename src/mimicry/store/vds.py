"""The cache file as HDF5 virtual datasets over its shards: ``assemble`` (no copy), ``pack``.

:func:`assemble` writes ``OUT.h5`` as an index (layout in :mod:`mimicry.store.shards`): the
``items/*`` columns and ragged offsets as real datasets, every activation dataset an h5py
virtual dataset whose rows, sorted by input row, map onto rows of the part files (one mapping
per run of consecutive rows of one part; source paths relative to ``OUT.h5``'s folder).
:func:`pack` makes one self-contained file instead (a copy, for moving a cache).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..diskspace import check_room, guarded_hdf5_write
from ..errors import CacheMismatchError, MimicryError
from . import merge
from .reader import ITEM_INT_COLUMNS, ITEM_STR_COLUMNS, RAGGED, SCHEMA, parts_dir
from .reader import read_attrs as _read_attrs
from .shards import LAYOUT, Part, _keys, committed, index_current, list_parts


def assemble(path: str | Path, attrs: dict | None = None) -> Path:
    """Return ``path`` after (re)writing it as the virtual-dataset index over all its parts.

    Items are ordered by input row; a key found in several parts is mapped once (the first
    part in :func:`list_parts` order). Parts none of whose items are mapped are deleted after
    the index is in place. Writes a temp file and renames it (a kill leaves the old index).
    """
    import h5py

    path = Path(path)
    attrs = None if attrs is None else dict(attrs, schema=SCHEMA)
    found = committed(path, attrs)
    parts = list_parts(path)
    if not parts:
        raise MimicryError("nothing to consolidate (no cache file and no shards)", file=path)
    entries = []  # (row, key, part index, local row)
    seen: set[str] = set()
    pidx = {p.path: i for i, p in enumerate(parts)}
    ref_attrs = attrs
    for pi, part in enumerate(parts):
        with h5py.File(part.path, "r") as f:
            if ref_attrs is None:
                ref_attrs = _read_attrs(f)
            rows = f["items/row"][()]
            for li, key in enumerate(_keys(f)):
                if key not in seen and found.get(key) is not None \
                        and pidx[found[key].path] == pi:
                    seen.add(key)
                    entries.append((int(rows[li]), key, pi, li))
    entries.sort()
    tmp = path.with_name(f".{path.name}.consolidate.tmp")
    with guarded_hdf5_write(path, tmp, "writing the cache index"):
        used = _write_index(tmp, path, parts, entries, dict(ref_attrs, schema=SCHEMA))
        merge._fsync_path(tmp)
        os.replace(tmp, path)
    for pi, part in enumerate(parts):
        if pi not in used:
            part.path.unlink(missing_ok=True)
    return path


def _write_index(tmp: Path, path: Path, parts: list[Part], entries, attrs: dict) -> set[int]:
    import h5py

    n = len(entries)
    offsets = set(RAGGED.values())
    rel = [f"{parts_dir(path).name}/{p.path.name}" for p in parts]
    by_part: dict[int, list[tuple[int, int]]] = {}
    for d, (_, _, pi, li) in enumerate(entries):
        by_part.setdefault(pi, []).append((li, d))
    info: dict = {}  # per part: shapes, dtypes, ragged offsets, items columns
    names: list[str] | None = None
    cols: dict[str, list] = {k: [None] * n for k in ITEM_STR_COLUMNS + ITEM_INT_COLUMNS}
    for pi, pairs in by_part.items():
        with h5py.File(parts[pi].path, "r") as f:
            here = merge._datasets(f)
            if names is None:
                names = here
            elif sorted(here) != sorted(names):
                raise CacheMismatchError(f"holds datasets {sorted(here)} but the other parts "
                                         f"hold {sorted(names)}", file=parts[pi].path,
                                         fix="delete this part and re-run the capture")
            info[pi] = {nm: (f[nm].shape, f[nm].dtype) for nm in here if nm not in offsets}
            info[pi]["_off"] = {o: f[o][()] for o in offsets if o in f}
            for k in cols:
                v = f[f"items/{k}"].asstr()[()] if k in ITEM_STR_COLUMNS else f[f"items/{k}"][()]
                for li, d in pairs:
                    cols[k][d] = v[li]
    names = names or []
    runs = _runs(entries)
    with h5py.File(tmp, "w") as out:
        for k, v in attrs.items():
            out.attrs[k] = v
        out.attrs["layout"] = LAYOUT
        out.attrs["shards"] = json.dumps(_shards(parts, entries))
        for k in ITEM_STR_COLUMNS:
            out.create_dataset(f"items/{k}", data=np.array(cols[k], dtype=h5py.string_dtype()))
        for k in ITEM_INT_COLUMNS:
            dt = np.uint8 if k == "truncated" else np.int64
            out.create_dataset(f"items/{k}", data=np.array(cols[k], dtype=dt))
        counts = {o: np.zeros(n, np.int64) for o in offsets if any(
            o in info[pi]["_off"] for pi in by_part)}
        for o in counts:
            for d, (_, _, pi, li) in enumerate(entries):
                so = info[pi]["_off"][o]
                counts[o][d] = so[li + 1] - so[li]
        dest_off = {o: np.concatenate([[0], np.cumsum(c)]).astype(np.int64)
                    for o, c in counts.items()}
        for o, v in dest_off.items():
            out.create_dataset(o, data=v)
        for nm in names:
            if nm.startswith("items/") or nm in offsets:
                continue
            shape0, dtype = next(iter(info.values()))[nm]
            rest = tuple(shape0[1:])
            if nm in RAGGED:
                o = RAGGED[nm]
                total = int(dest_off[o][-1])
                lay = h5py.VirtualLayout(shape=(total, *rest), dtype=dtype)
                for pi, la, lb, da, db in runs:
                    so, do = info[pi]["_off"][o], dest_off[o]
                    if so[lb] > so[la]:
                        src = h5py.VirtualSource(rel[pi], nm, shape=info[pi][nm][0])
                        lay[int(do[da]):int(do[db])] = src[int(so[la]):int(so[lb])]
            else:
                lay = h5py.VirtualLayout(shape=(n, *rest), dtype=dtype)
                for pi, la, lb, da, db in runs:
                    src = h5py.VirtualSource(rel[pi], nm, shape=info[pi][nm][0])
                    lay[da:db] = src[la:lb]
            fill = np.nan if np.issubdtype(dtype, np.floating) else 0
            out.create_virtual_dataset(nm, lay, fillvalue=fill)
        out.flush()
    return set(by_part)


def _runs(entries) -> list[tuple[int, int, int, int, int]]:
    """Return (part, local_a, local_b, dest_a, dest_b): maximal runs mapped by one slice."""
    runs: list[list[int]] = []
    for d, (_, _, pi, li) in enumerate(entries):
        if runs and runs[-1][0] == pi and runs[-1][2] == li and runs[-1][4] == d:
            runs[-1][2] += 1
            runs[-1][4] += 1
        else:
            runs.append([pi, li, li + 1, d, d + 1])
    return [tuple(r) for r in runs]


def _shards(parts: list[Part], entries) -> dict:
    per: dict[int, int] = {}
    for _, _, pi, _ in entries:
        per[pi] = per.get(pi, 0) + 1
    files = [{"file": p.path.name, "rank": p.rank, "items": per[i]}
             for i, p in enumerate(parts) if i in per]
    ranks = sorted({f["rank"] for f in files if f["rank"] is not None})
    return {"ranks": ranks, "files": files}


def pack(path: str | Path) -> Path:
    """Return ``path`` rewritten as one self-contained file (a copy); its parts are deleted.

    For moving a cache to a machine without its parts folder. Needs free disk equal to
    the cache while it runs; a kill leaves the index and its parts as they were.
    """
    import h5py

    path = Path(path)
    if not index_current(path):
        assemble(path)
    with h5py.File(path, "r") as f:
        attrs = {k: v for k, v in _read_attrs(f).items() if k not in ("layout", "shards")}
        rows = f["items/row"][()]
        keys = _keys(f)
    entries = [(int(r), k, 0, i) for i, (r, k) in enumerate(zip(rows, keys))]
    dest_of = {(0, i): i for i in range(len(entries))}
    tmp = path.with_name(f".{path.name}.consolidate.tmp")
    with guarded_hdf5_write(path, tmp, "packing the cache into one file"):
        size = sum(p.path.stat().st_size for p in list_parts(path))
        check_room(path.parent, size, "packing the cache into one file")
        merge._merge(tmp, [path], entries, dest_of, len(entries), attrs)
        merge._fsync_path(tmp)
        os.replace(tmp, path)
    for part in list_parts(path):
        part.path.unlink(missing_ok=True)
    try:
        parts_dir(path).rmdir()
    except OSError:
        pass
    return path
