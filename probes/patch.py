"""Patching probe: does the plan state move reasoning length toward the donor's?

Pairs of items of the same task: an easy recipient (human difficulty below the task median)
gets the ``last_prompt`` residual of a hard donor (above the median) at one layer, and the
reverse (hard recipient, easy donor); the recipient then generates greedily
(:func:`mimicry.intervene.generation.patch_sweep`). Per direction × layer the **normalised
effect** is the ratio of means over pairs::

    effect = mean(tokens_patched − tokens_recipient) / mean(tokens_donor − tokens_recipient)

(0 = no movement, 1 = the recipient now reasons as long as the donor), with a percentile
bootstrap CI over pairs (numerator and denominator resampled together). Accuracy after
patching is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from mimicry.errors import InputError
from mimicry.stats import bootstrap_indices, percentile_ci

from .base import Result, _human_values

DIRECTIONS = ("hard_to_easy", "easy_to_hard")


def normalised_effect(recipient, donor, patched) -> float:
    """Return ``mean(patched − recipient) / mean(donor − recipient)`` (NaN if the gap is 0)."""
    r, d, p = (np.asarray(x, np.float64) for x in (recipient, donor, patched))
    gap = (d - r).mean()
    return float((p - r).mean() / gap) if gap != 0 else float("nan")


class PatchEffect(BaseEstimator):
    """The normalised patching effect as an estimator.

    ``fit(X [n, 2] = (tokens_recipient, tokens_donor), y [n] = tokens_patched)`` sets
    ``effect_``; ``score`` returns the effect of the data it is given.
    """

    def fit(self, X, y) -> PatchEffect:
        """Compute ``effect_``; return self."""
        X = np.asarray(X, np.float64)
        self.effect_ = normalised_effect(X[:, 0], X[:, 1], y)
        return self

    def score(self, X, y) -> float:
        """Return the normalised effect of ``(X, y)``."""
        X = np.asarray(X, np.float64)
        return normalised_effect(X[:, 0], X[:, 1], y)


def make_pairs(items: Sequence[Any], tasks: Any, n_pairs: int, seed: int = 0
               ) -> dict[str, tuple[list, list]]:
    """Return ``{direction: (recipients, donors)}``: same-task pairs across the median.

    Per task, items strictly below / above the median difficulty; each easy item (up to
    ``n_pairs`` over all tasks, seeded) gets a random hard donor, and each hard item an easy
    one.
    """
    vals, _ = _human_values(tasks)
    rng = np.random.default_rng(seed)
    by_task: dict[str, list] = {}
    for it in items:
        if str(it.item_id) in vals.index and np.isfinite(vals[str(it.item_id)]):
            by_task.setdefault(it.task, []).append(it)
    out = {d: ([], []) for d in DIRECTIONS}
    for _, its in sorted(by_task.items()):
        y = np.array([vals[str(it.item_id)] for it in its])
        med = np.median(y)
        easy = [it for it, v in zip(its, y) if v < med]
        hard = [it for it, v in zip(its, y) if v > med]
        if not easy or not hard:
            continue
        for d, rec, don in (("hard_to_easy", easy, hard), ("easy_to_hard", hard, easy)):
            for r in rec:
                out[d][0].append(r)
                out[d][1].append(don[int(rng.integers(len(don)))])
    for d in DIRECTIONS:
        rec, don = out[d]
        if len(rec) > n_pairs:
            keep = np.sort(rng.choice(len(rec), n_pairs, replace=False))
            out[d] = ([rec[i] for i in keep], [don[i] for i in keep])
    if not out["hard_to_easy"][0]:
        raise InputError("no task has items on both sides of its median difficulty",
                         fix="patching needs easy and hard items of the same task")
    return out


def analyze(rows: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Return per direction × layer: normalised effect with CI, mean shift, accuracies."""
    out = []
    for (d, layer), g in rows.groupby(["direction", "layer"], sort=False):
        r, dn, p = (g[c].to_numpy(float) for c in ("tokens_recipient", "tokens_donor",
                                                   "tokens_patched"))
        idx = bootstrap_indices(len(g), n_boot, seed)
        num, den = (p - r)[idx].mean(1), (dn - r)[idx].mean(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            lo, hi = percentile_ci(np.where(den != 0, num / den, np.nan), len(g))
        out.append({"direction": d, "layer": int(layer), "n_pairs": len(g),
                    "effect": normalised_effect(r, dn, p), "ci_low": lo, "ci_high": hi,
                    "shift_tokens": float((p - r).mean()), "gap_tokens": float((dn - r).mean()),
                    "acc_recipient": g["correct_recipient"].mean(),
                    "acc_patched": g["correct_patched"].mean()})
    return pd.DataFrame(out)


def run(model: Any, *, tasks: Any, items: Sequence[Any] | None = None,
        layers: Sequence[int] | None = None, n_pairs: int = 24, max_new_tokens: int = 256,
        batch_size: int = 64, n_boot: int = 1000, seed: int = 0, name: str | None = None,
        tokenizer=None, progress_bar: bool = False) -> Result:
    """Return a :class:`Result`: normalised patching effect per direction × layer (``.table``).

    ``model``: path / hub id / ModelSpec (or loaded, with ``tokenizer``); ``items``: which
    items to pair (default every item of ``tasks``); ``layers``: cache layers to patch
    (default all, 0 = embeddings). ``.tables["rows"]`` holds one row per pair × layer.
    """
    from mimicry.intervene import generation

    suite = list(tasks) if items is None and not isinstance(tasks, str) else None
    if items is None:
        if suite is None:
            from mimicry.tasks.registry import load_suite

            suite = list(load_suite(tasks))
        items = suite
    be = generation.backend(model, tokenizer)
    n_layers = generation.n_layers(be)
    layers = list(range(n_layers + 1)) if layers is None else [int(x) for x in layers]
    pairs = make_pairs(items, tasks, n_pairs, seed)
    frames = []
    for d, (rec, don) in pairs.items():
        if not rec:
            continue
        t = generation.patch_sweep(be, rec, don, layers, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, progress=progress_bar)
        frames.append(t.assign(direction=d))
    rows = pd.concat(frames, ignore_index=True)
    label = name or getattr(be.spec, "short_name", "model")
    return result(rows, plan_meta(label, layers, pairs, max_new_tokens), n_boot=n_boot,
                  seed=seed)


def plan_meta(label: str, layers: Sequence[int], pairs: dict[str, tuple[list, list]],
              max_new_tokens: int) -> dict:
    """Return the Result's meta of a patching run (without ``n_boot`` and ``seed``)."""
    return {"probe": "patch", "model": label, "site": "last_prompt",
            "layers": [int(x) for x in layers],
            "n_pairs": {d: len(p[0]) for d, p in pairs.items()},
            "max_new_tokens": max_new_tokens,
            "effect": "mean(patched − recipient) / mean(donor − recipient) over pairs",
            "ci": "percentile bootstrap over pairs"}


def result(rows: pd.DataFrame, meta: dict, *, n_boot: int = 1000, seed: int = 0) -> Result:
    """Return the patching :class:`Result` of ``rows`` (``generation.patch_sweep`` + direction)."""
    table = analyze(rows, n_boot=n_boot, seed=seed)
    table.insert(0, "model", meta["model"])
    return Result("patch", table, tables={"rows": rows},
                  meta={**meta, "n_boot": n_boot, "seed": seed}, plotter=plot)


def plot(result: Result):
    """Return a figure: normalised effect per layer with CI, one line style per direction
    (:func:`probes.figures_mech.patch_figure`)."""
    from .figures_mech import patch_figure

    return patch_figure(result)
