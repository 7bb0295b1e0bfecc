"""The HDF5 activation cache: layout, attribute checks, and the lazy reader :func:`open_cache`.

Layout of a cache file (schema ``mimicry.cache/1``; plain h5py can read it)::

    /                      attrs: schema, model, model_path, revision, dtype, tokenizer_hash,
                           chat_template_hash, capture_config (JSON), mimicry_version,
                           n_layers, d_model, n_heads
    /items/<column>        [n_items] one 1-D dataset per column: item_id, task, trace_model
                           (strings); row, n_tokens, n_prompt, n_reasoning, n_answer,
                           last_prompt, think_end, reasoning_tokens (int64); truncated (uint8)
    /resid/<site>          [n_items, n_layers + 1, d_model] float32|float16, chunks
                           (rows, 1, d_model): row 0 = embeddings (input to layer 0),
                           row i = output of decoder layer i (before the final norm)
    /entropy/<variant>/<segment>   [n_items, n_layers, n_heads] float32, NaN = empty segment
                           variants raw|norm|nosink; segments prompt|reasoning|answer|
                           last_prompt|think_end
    /entropy/positions, /entropy/positions_offsets   sampled mode: item i's query positions
                           are positions[offsets[i]:offsets[i+1]]
    /tokens/resid, /tokens/positions, /tokens/offsets  per-token stride rows, same ragged form

A cache written by ``mimicry capture`` is an index: ``items/*`` and offsets are real, the other
datasets are HDF5 virtual datasets over the shard files in ``PATH.parts`` (root attrs
``layout = "virtual"`` and ``shards``); both read the same. Writing (with resume and crash
safety) lives in :mod:`mimicry.store.writer`, :mod:`mimicry.store.shards` and :mod:`mimicry.store.vds`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CacheMismatchError, InputError
from .identity import config_identity

SCHEMA = "mimicry.cache/1"
# Root attrs a resumed capture must match exactly (capture_config is compared by identity).
IDENTITY_ATTRS = ("schema", "model", "weights_hash", "revision", "dtype", "tokenizer_hash",
                  "chat_template_hash", "n_layers", "d_model", "n_heads")
ITEM_STR_COLUMNS = ("item_id", "task", "trace_model")
ITEM_INT_COLUMNS = ("row", "n_tokens", "n_prompt", "n_reasoning", "n_answer", "last_prompt",
                    "think_end", "reasoning_tokens", "truncated")
# ragged dataset -> its offsets dataset ([n_items + 1])
RAGGED = {"tokens/resid": "tokens/offsets", "tokens/positions": "tokens/offsets",
          "entropy/positions": "entropy/positions_offsets"}
SEGMENT_ALIASES = {"mean_prompt": "prompt", "mean_reasoning": "reasoning",
                   "mean_answer": "answer"}


def parts_dir(path: str | Path) -> Path:
    """Return the folder of not-yet-consolidated batch shards of cache ``path``."""
    p = Path(path)
    return p.with_name(p.name + ".parts")


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_attrs(f) -> dict:
    """Return the root attrs of an open h5py file as plain Python values."""
    return {k: _attr(v) for k, v in f.attrs.items()}


def check_attrs(path: str | Path, found: dict, expected: dict) -> None:
    """Raise :class:`CacheMismatchError` naming the first attr where ``found`` != ``expected``."""
    fix = "write to a new --out path, or delete the file (and its .parts folder) to start over"
    if found.get("schema") != SCHEMA:
        raise CacheMismatchError(
            f"not a {SCHEMA} cache (schema={found.get('schema')!r})", file=path, fix=fix)
    for k in IDENTITY_ATTRS:
        if k == "weights_hash" and found.get(k) != expected.get(k):
            raise CacheMismatchError(
                f"cache holds activations of other weights (weights_hash "
                f"{found.get(k) or 'not recorded'}) than this run's model "
                f"({expected.get(k) or 'unknown'}), though the name may match; refusing to "
                "mix two models", file=path,
                fix="write to a new --out path, or capture with the model the cache was "
                    "made from")
        if str(found.get(k)) != str(expected.get(k)):
            raise CacheMismatchError(
                f"cache has {k}={found.get(k)!r} but this run has {k}={expected.get(k)!r}; "
                "refusing to append", file=path, fix=fix)
    old = config_identity(found["capture_config"])
    new = config_identity(expected["capture_config"])
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            raise CacheMismatchError(
                f"cache was captured with {k}={old.get(k)!r} but this run asks for "
                f"{k}={new.get(k)!r}; refusing to append", file=path, fix=fix)


def _corrupt(path, e: BaseException) -> InputError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
    return InputError(f"cache file is corrupt or truncated ({first})", file=path,
                      fix="re-run the capture into a new --out (a checksum or structure check "
                          "failed; the numbers cannot be trusted)")


def _guarded(fn):
    """Wrap a reader method: HDF5 read failures (checksum, truncation) -> one InputError."""
    import functools

    @functools.wraps(fn)
    def wrapper(self, *a, **kw):
        try:
            return fn(self, *a, **kw)
        except (OSError, RuntimeError, ValueError) as e:
            raise _corrupt(self.path, e) from None
        except KeyError as e:
            if "Unable to" in str(e) or "not aligned" in str(e):  # h5py: broken structure
                raise _corrupt(self.path, e) from None
            raise  # ours: an unknown site/segment, said as such
    return wrapper


class Cache:
    """Lazy reader of one HDF5 cache: every accessor reads only the slice it returns.

    >>> with open_cache("cache/run/student.h5") as c:
    ...     x = c.resid(-1, "last_prompt")        # [n_items, d_model]
    ...     h = c.entropy("reasoning", "norm")    # [n_items, n_layers, n_heads]
    """

    def __init__(self, path: str | Path) -> None:
        import h5py

        self.path = Path(path)
        self._f = h5py.File(self.path, "r")
        self.meta = read_attrs(self._f)
        if self.meta.get("schema") != SCHEMA:
            self._f.close()
            raise CacheMismatchError(f"not a {SCHEMA} cache (schema="
                                     f"{self.meta.get('schema')!r})", file=path,
                                     fix="open a file written by `mimicry capture`")
        self.config = json.loads(self.meta.get("capture_config", "{}"))
        self._items: pd.DataFrame | None = None

    # --- shape information -------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Return the number of decoder layers (resid has ``n_layers + 1`` rows)."""
        return int(self.meta["n_layers"])

    @property
    def d_model(self) -> int:
        """Return the residual width."""
        return int(self.meta["d_model"])

    @property
    def n_heads(self) -> int:
        """Return the number of attention (query) heads."""
        return int(self.meta["n_heads"])

    @property
    def n_items(self) -> int:
        """Return the number of items (rows)."""
        return int(self._f["items/item_id"].shape[0])

    def __len__(self) -> int:
        return self.n_items

    @property
    @_guarded
    def sites(self) -> list[str]:
        """Return the residual sites stored (``last_prompt``, ``mean_reasoning``, ...)."""
        return list(self._f["resid"].keys()) if "resid" in self._f else []

    @property
    @_guarded
    def segments(self) -> list[str]:
        """Return the entropy segments stored (empty when entropy was off)."""
        g = self._f.get("entropy/raw")
        return list(g.keys()) if g is not None else []

    @property
    @_guarded
    def variants(self) -> list[str]:
        """Return the entropy variants stored (``raw``, ``norm``, ``nosink``)."""
        g = self._f.get("entropy")
        return [k for k in g.keys() if hasattr(g[k], "keys")] if g else []

    # --- data --------------------------------------------------------------------------
    @property
    @_guarded
    def items(self) -> pd.DataFrame:
        """Return the items table (one row per cache row, in cache order).

        Columns: item_id, task, trace_model, row, n_tokens, n_prompt, n_reasoning, n_answer,
        last_prompt, think_end (-1: none), reasoning_tokens (from the trace; NaN if unknown),
        truncated (bool).
        """
        if self._items is None:
            g = self._f["items"]
            cols = {}
            for k in ITEM_STR_COLUMNS:
                cols[k] = [_attr(v) for v in g[k][()]]
            for k in ITEM_INT_COLUMNS:
                cols[k] = g[k][()].astype(np.int64)
            df = pd.DataFrame(cols)
            df["truncated"] = df["truncated"].astype(bool)
            # unknown on disk is -1; NaN here so that log() and means exclude it visibly
            df["reasoning_tokens"] = df["reasoning_tokens"].where(df["reasoning_tokens"] >= 0)
            self._items = df
        return self._items

    def _layer(self, layer: int, n: int) -> int:
        idx = layer + n if layer < 0 else layer
        if not 0 <= idx < n:
            raise IndexError(f"layer {layer} out of range for {n} rows")
        return idx

    @_guarded
    def resid(self, layer: int, site: str, rows=slice(None)) -> np.ndarray:
        """Return the residual stream ``[n_items, d_model]`` float32 at ``layer`` and ``site``.

        ``layer`` 0 = embeddings, ``i`` = after decoder layer ``i``; negative counts from
        the end (-1 = last layer). ``rows``: optional slice or increasing index array.
        """
        if site not in self.sites:
            raise KeyError(f"site {site!r} not in cache (has {self.sites})")
        ds = self._f["resid"][site]
        li = self._layer(layer, ds.shape[1])
        return np.asarray(ds[rows, li, :], dtype=np.float32)

    @_guarded
    def entropy(self, segment: str, variant: str = "raw", rows=slice(None)) -> np.ndarray:
        """Return attention entropy ``[n_items, n_layers, n_heads]`` float32 (NaN = empty).

        ``segment``: prompt, reasoning, answer (or mean_prompt, ...), last_prompt, think_end;
        ``variant``: raw (nats), norm (÷ log #visible keys), nosink (key 0 removed).
        """
        segment = SEGMENT_ALIASES.get(segment, segment)
        if "entropy/raw" not in self._f:
            raise KeyError("this cache has no entropy (captured with --entropy off)")
        if variant not in self.variants:
            raise KeyError(f"variant {variant!r} not in cache (has {self.variants})")
        if segment not in self.segments:
            raise KeyError(f"segment {segment!r} not in cache (has {self.segments})")
        return np.asarray(self._f["entropy"][variant][segment][rows], dtype=np.float32)

    def _ragged(self, name: str, i: int) -> np.ndarray:
        off = self._f[RAGGED[name]]
        a, b = int(off[i]), int(off[i + 1])
        return self._f[name][a:b]

    @_guarded
    def token_resid(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(positions [n_rows], resid [n_rows, n_layers + 1, d_model])`` of item ``i``."""
        if "tokens/resid" not in self._f:
            raise KeyError("no per-token rows (captured with --per-token-stride 0)")
        return (self._ragged("tokens/positions", i).astype(np.int64),
                np.asarray(self._ragged("tokens/resid", i), dtype=np.float32))

    @_guarded
    def sampled_positions(self, i: int) -> np.ndarray:
        """Return the query positions ``[n_sampled]`` used for item ``i`` in sampled mode."""
        if "entropy/positions" not in self._f:
            raise KeyError("no sampled positions (entropy mode was not 'sampled')")
        return self._ragged("entropy/positions", i).astype(np.int64)

    # --- housekeeping ------------------------------------------------------------------
    def close(self) -> None:
        """Close the file."""
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if not self._f.id.valid:
            return f"<Cache {self.path} (closed)>"
        ent = self.config.get("entropy", "?")
        return (f"<Cache {self.path.name}: {self.n_items} items, model={self.meta.get('model')}, "
                f"{self.n_layers} layers x d_model {self.d_model}, {self.n_heads} heads, "
                f"sites={','.join(self.sites)}, entropy={ent}, "
                f"dtype={self.config.get('dtype')}>")


def shard_status(path: str | Path) -> tuple[list[Path], list[str]]:
    """Return ``(shards not in the cache file yet, shards the file maps but that are gone)``."""
    p = Path(path)
    pdir = parts_dir(p)
    found = sorted(x for x in pdir.glob("*.h5") if not x.name.startswith(".")) \
        if pdir.is_dir() else []
    listed: set[str] = set()
    if p.is_file():
        import h5py

        try:
            with h5py.File(p, "r") as f:
                listed = {x["file"] for x in json.loads(_attr(f.attrs.get("shards", "{}")))
                          .get("files", [])}
        except OSError:
            pass
    names = {x.name for x in found}
    return [x for x in found if x.name not in listed], sorted(listed - names)


def open_cache(path: str | Path) -> Cache:
    """Return a lazy :class:`Cache` reader for the HDF5 file at ``path``.

    A cache written as virtual datasets over its shards (``PATH.parts``) reads the same.
    """
    p = Path(path)
    pending, missing = shard_status(p)
    if missing:
        raise InputError(f"{len(missing)} shard files this cache reads from are missing "
                         f"(e.g. {parts_dir(p).name}/{missing[0]})", file=p,
                         fix="copy the cache file together with its .parts folder, or make "
                             "one self-contained file with `mimicry cache consolidate --copy`")
    if not p.exists():
        if pending:
            raise InputError(
                f"cache not consolidated yet ({len(pending)} batch shards in "
                f"{parts_dir(p).name})", file=p,
                fix="re-run the same capture command (it resumes and consolidates) or run "
                    f"`mimicry cache consolidate {p}`")
        raise InputError("cache file not found", file=p, fix="check the path")
    if pending:
        warnings.warn(f"{p}: {len(pending)} batch shards are not consolidated yet; re-run the "
                      "capture command to include them", stacklevel=2)
    try:
        return Cache(p)
    except OSError as e:
        raise InputError(f"cannot open as HDF5 ({str(e).splitlines()[0][:120]})", file=p,
                         fix="is this a cache written by `mimicry capture`?") from None
    except (RuntimeError, KeyError, ValueError, UnicodeDecodeError) as e:
        raise _corrupt(p, e) from None
