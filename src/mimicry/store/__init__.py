"""store: the HDF5 activation cache, one file per (run, model).

Modules: ``reader`` (:func:`open_cache` -> :class:`Cache`, lazy slices, the schema and the
identity check), ``writer`` (:class:`CacheWriter`: shards, crash-safe, resumable;
``lock_cache``), ``merge`` (``consolidate``: file + shards into one file; the dataset helpers
every writer shares), ``shards`` (per-rank batch shards: ``RankWriter``, what is
committed, the job lock) and ``vds`` (the cache file as HDF5 virtual datasets over the shards:
``assemble``, no copy; ``pack``, one self-contained copy). Anything that reads
or writes cache files goes here.
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
