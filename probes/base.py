"""Shared pieces of every probe: :class:`Result`, :class:`ProbeEstimator`, labels, grouped folds.

A probe's ``run(...)`` returns a :class:`Result`: ``.table`` (a pandas DataFrame, one row per
unit of analysis), optional extra ``.tables``, ``.meta`` (seeds, n, exclusions) and
``.plot() -> matplotlib.figure.Figure``. ``Result`` and its one on-disk format (``Result.save``,
``save_results``, ``load_results``) live in :mod:`probes.results`; ``Result`` is re-exported here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimicry.errors import InputError
from mimicry.io import json_ready

from .results import Result as Result  # re-exported: probes import it from here

SEGMENTS = ("prompt", "reasoning", "answer")


# --------------------------------------------------------------------------- estimators


class ProbeEstimator(BaseEstimator):
    """Base of every probe estimator: scikit-learn's ``get_params``/``set_params``/``clone``.

    The contract (scikit-learn's): hyper-parameters are ``__init__`` keywords stored unchanged
    (no work in ``__init__``); ``fit(X, y)`` sets the learned state in attributes ending in
    ``_`` and returns ``self``; ``score(X, y)`` returns one number computed from its inputs. So
    a probe works in ``clone``, ``cross_val_score`` and ``Pipeline``, and each probe's
    ``run()`` calls the estimator or the same private function, so the two cannot drift.
    """

    def _check_fitted(self) -> None:
        check_is_fitted(self)

    @staticmethod
    def _xy(X: Any, y: Any = None, *, dtype: Any = np.float64
            ) -> tuple[np.ndarray, np.ndarray | None]:
        """Return ``X [n, d]`` (a 1-D ``X`` is one column) and ``y [n]`` (or None), checked."""
        X = np.asarray(X, dtype)
        X = X[:, None] if X.ndim == 1 else X
        if X.ndim != 2 or len(X) == 0:
            raise InputError(f"X has shape {X.shape}; expected [n_items, n_features], n > 0",
                             fix="pass one row per item")
        if y is not None:
            y = np.asarray(y, dtype).ravel()
            if len(y) != len(X):
                raise InputError(f"X has {len(X)} rows but y has {len(y)} values",
                                 fix="pass the same items, in the same order, in X and y")
        return X, y


# --------------------------------------------------------------------------- labels


@dataclass
class Labels:
    """Items kept for a probe, in cache row order: ``rows`` index into the cache's arrays."""

    item_ids: np.ndarray   # [n] str
    rows: np.ndarray       # [n] int, rows of cache.items / cache arrays
    y: np.ndarray          # [n] float
    tasks: np.ndarray      # [n] str
    target: str
    measure: str
    exclusions: dict[str, int]

    @property
    def n(self) -> int:
        """Return the number of items kept."""
        return len(self.y)

    def subset(self, keep: np.ndarray, reason: str) -> Labels:
        """Return the labels of the items where ``keep [n]`` is True (the rest counted)."""
        excl = dict(self.exclusions)
        excl[reason] = excl.get(reason, 0) + int((~keep).sum())
        return Labels(self.item_ids[keep], self.rows[keep], self.y[keep], self.tasks[keep],
                      self.target, self.measure, excl)


def segment_lengths(items: pd.DataFrame) -> pd.DataFrame:
    """Return token counts per segment (columns ``prompt``, ``reasoning``, ``answer``) of a cache's items."""
    out = {}
    for seg in SEGMENTS:
        for cand in (f"n_{seg}_tokens", f"{seg}_tokens", f"n_{seg}", f"{seg}_len", f"{seg}_length",
                     f"{seg}_n_tokens"):
            if cand in items.columns:
                out[seg] = pd.to_numeric(items[cand], errors="coerce").to_numpy(float)
                break
    if "reasoning" not in out and "reasoning_tokens" in items.columns:
        out["reasoning"] = pd.to_numeric(items["reasoning_tokens"], errors="coerce").to_numpy(float)
    return pd.DataFrame(out, index=items.index)


def _truncated(items: pd.DataFrame) -> np.ndarray:
    for col in ("truncated", "is_truncated"):
        if col in items.columns:
            return items[col].fillna(False).astype(bool).to_numpy()
    if "finish_reason" in items.columns:
        return (items["finish_reason"] == "length").to_numpy()
    return np.zeros(len(items), bool)


def _human_values(tasks: Any) -> tuple[pd.Series, str]:
    """Return (log-RT or error rate per item_id, measure) from a suite, name, path or Series."""
    if isinstance(tasks, pd.Series):
        return tasks.astype(float), str(tasks.name or "labels")
    if isinstance(tasks, Mapping):
        return pd.Series(tasks, dtype=float), "labels"
    if isinstance(tasks, (str, Path)):
        from mimicry.tasks.registry import load_suite

        tasks = load_suite(tasks)
    vals, measures = {}, set()
    for it in tasks:
        d = it.human.difficulty
        if d is None:
            continue
        m = it.human.measure
        measures.add(m)
        vals[str(it.item_id)] = math.log(d) if m == "rt_ms" and d > 0 else float(d)
    measure = "log_rt_ms" if measures == {"rt_ms"} else "+".join(sorted(measures)) or "none"
    return pd.Series(vals, dtype=float), measure


def make_labels(cache: Any, *, target: str = "human", tasks: Any = None,
                standardize: str | None = "task", exclude_truncated: bool = True) -> Labels:
    """Return the items and label vector ``y [n]`` a probe uses, with exclusions counted.

    ``target``: ``"human"`` (log RT where the item has RT, else error rate; from ``tasks`` —
    a TaskSuite, a suite name/file, or a Series/dict item_id -> value) or
    ``"log_reasoning_tokens"`` (the trace's own reasoning tokens, from ``cache.items``).
    ``standardize="task"`` z-scores the label within each task (so a probe cannot score by
    telling tasks apart); ``None`` keeps raw values.
    """
    items = cache.items.reset_index(drop=True)
    ids = items["item_id"].astype(str).to_numpy()
    task_col = items["task"].astype(str).to_numpy() if "task" in items.columns \
        else np.array(["all"] * len(items))
    excl: dict[str, int] = {}
    if target == "human":
        if tasks is None:
            raise InputError("the human-difficulty target needs the items' norms",
                             fix="pass --tasks SUITE|FILE (or tasks=... / a labels Series)")
        vals, measure = _human_values(tasks)
        y = vals.reindex(ids).to_numpy(float)
    elif target in ("log_reasoning_tokens", "reasoning_tokens"):
        if "reasoning_tokens" not in items.columns:
            raise InputError("cache items have no reasoning_tokens column",
                             fix="capture from a traces file with reasoning_tokens")
        y = np.log1p(pd.to_numeric(items["reasoning_tokens"], errors="coerce").to_numpy(float))
        measure, target = "log1p_reasoning_tokens", "log_reasoning_tokens"
    else:
        raise InputError(f"unknown target {target!r}",
                         fix="use 'human' or 'log_reasoning_tokens'")
    keep = np.isfinite(y)
    excl["no_label"] = int((~keep).sum())
    if exclude_truncated:
        tr = _truncated(items) & keep
        excl["truncated"] = int(tr.sum())
        keep &= ~tr
    if standardize == "task":
        y = y.copy()
        for t in np.unique(task_col[keep]):
            m = keep & (task_col == t)
            sd = y[m].std()
            if m.sum() < 3 or sd == 0:
                excl[f"task_too_small_or_constant:{t}"] = int(m.sum())
                keep &= ~m
                continue
            y[m] = (y[m] - y[m].mean()) / sd
    rows = np.flatnonzero(keep)
    if len(rows) < 10:
        raise InputError(f"only {len(rows)} items have a usable {target} label "
                         f"(excluded: {excl})", fix="check that the cache's item_ids match the "
                         "task suite, or pass labels explicitly")
    return Labels(ids[rows], rows, y[rows], task_col[rows], target, measure, excl)


def resolve_groups(labels: Labels, groups: Any, n_folds: int, items: pd.DataFrame | None = None
                   ) -> tuple[np.ndarray, str]:
    """Return group ids ``[n]`` for grouped CV and a description of what they are.

    ``"auto"``: tasks when there are at least ``n_folds`` of them, else items. ``"task"``,
    ``"item"``, a column of ``cache.items``, or an array ``[n_items_kept]``.
    """
    if isinstance(groups, str):
        if groups == "auto":
            groups = "task" if len(np.unique(labels.tasks)) >= n_folds else "item"
        if groups == "task":
            return labels.tasks, "task"
        if groups == "item":
            return labels.item_ids, "item"
        if items is not None and groups in items.columns:
            return items[groups].astype(str).to_numpy()[labels.rows], groups
        raise InputError(f"unknown groups {groups!r}",
                         fix="use auto, task, item or a column of cache.items")
    g = np.asarray(groups)
    if len(g) != labels.n:
        raise InputError(f"groups has {len(g)} entries for {labels.n} items")
    return g, "custom"


def group_kfold(groups: np.ndarray, n_splits: int, seed: int = 0) -> np.ndarray:
    """Return a fold id ``[n]`` per row: whole groups per fold, sizes balanced, seeded shuffle."""
    uniq, inv = np.unique(np.asarray(groups), return_inverse=True)
    if len(uniq) < n_splits:
        raise InputError(f"{len(uniq)} groups for {n_splits} folds",
                         fix="lower n_folds or use groups='item'")
    rng = np.random.default_rng(seed)
    sizes = np.bincount(inv)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(n_splits)
    fold_of = np.empty(len(uniq), int)
    for g in order:
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    return fold_of[inv]


def align_items(caches: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Return, per cache, the rows of the item_ids shared by all caches (same order)."""
    ids = {k: c.items["item_id"].astype(str).to_numpy() for k, c in caches.items()}
    shared = None
    for v in ids.values():
        shared = set(v) if shared is None else shared & set(v)
    first = next(iter(ids.values()))
    order = [i for i in first if i in shared]
    return {k: pd.Index(v).get_indexer(order) for k, v in ids.items()}


def slug(s: str) -> str:
    """Return a filesystem-safe version of a name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("_") or "x"


def model_name(cache: Any, default: str = "model") -> str:
    """Return a short model name from ``cache.meta`` (or ``default``)."""
    meta = getattr(cache, "meta", None) or {}
    for k in ("model", "model_id", "name", "name_or_path"):
        if meta.get(k):
            return Path(str(meta[k])).name
    return default


def dump(obj: Any) -> str:
    """Return compact JSON (for meta columns)."""
    return json.dumps(json_ready(obj), sort_keys=True)


def cache_layers(cache: Any) -> list[int]:
    """Return the residual layers a cache holds (0 = embeddings, then one per block)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [int(x) for x in layers]
    return list(range(int(cache.n_layers) + 1))


def cache_sites(cache: Any) -> list[str]:
    """Return the residual sites a cache holds."""
    return list(getattr(cache, "sites", None) or ["last_prompt"])


def read_resid(cache: Any, layer: int, site: str, rows: np.ndarray) -> np.ndarray:
    """Return ``cache.resid(layer, site)[rows]`` as float64 ``[n, d_model]``."""
    return np.asarray(cache.resid(layer, site), dtype=np.float64)[rows]


def progress(it, enabled: bool, **kw):
    """Wrap ``it`` in a tqdm bar when ``enabled``."""
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, **kw)
