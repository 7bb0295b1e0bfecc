"""store: the HDF5 activation cache, one file per (run, model).

Modules: ``reader`` (:func:`open_cache` -> :class:`Cache`, lazy slices, the schema and the
identity check) and ``writer`` (:class:`CacheWriter`: shards, crash-safe, resumable;
``consolidate``, ``lock_cache``). Anything that reads or writes cache files goes here.
"""

from __future__ import annotations

from .reader import (
    IDENTITY_ATTRS,
    ITEM_INT_COLUMNS,
    ITEM_STR_COLUMNS,
    RAGGED,
    SCHEMA,
    SEGMENT_ALIASES,
    Cache,
    check_attrs,
    open_cache,
    parts_dir,
    read_attrs,
)

__all__ = ["IDENTITY_ATTRS", "ITEM_INT_COLUMNS", "ITEM_STR_COLUMNS", "RAGGED", "SCHEMA",
           "SEGMENT_ALIASES", "Cache", "check_attrs", "open_cache", "parts_dir", "read_attrs"]
