"""store: the HDF5 activation cache, one file per (run, model).

Modules: ``reader`` (:func:`open_cache` -> :class:`Cache`, lazy slices, the schema and the
identity check), ``writer`` (:class:`CacheWriter`: shards, crash-safe, resumable;
``lock_cache``), ``merge`` (``consolidate``: file + shards into one file; the dataset helpers
every writer shares), ``shards`` (per-rank batch shards: ``RankWriter``, what is
committed, the job lock) and ``vds`` (the cache file as HDF5 virtual datasets over the shards:
``assemble``, no copy; ``pack``, one self-contained copy), ``records`` (``EncodedItem``,
``ItemActivations``: what one item contributes, made by capture) and ``identity`` (which
capture settings must match to append, as capture registers them). Anything that reads or
writes cache files goes here; nothing here imports :mod:`mimicry.capture`.
"""

from __future__ import annotations

from .._lazy import lazy

__all__ = ["IDENTITY_ATTRS", "ITEM_INT_COLUMNS", "ITEM_STR_COLUMNS", "RAGGED", "SCHEMA",
           "SEGMENT_ALIASES", "Cache", "check_attrs", "open_cache", "parts_dir", "read_attrs"]

# names load on first use: capture imports store.records without loading pandas
__getattr__, __dir__ = lazy(__name__, {name: ".reader" for name in __all__})
