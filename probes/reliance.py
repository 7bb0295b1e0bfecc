"""Reliance: does a model's answer depend on what its reasoning says?

The behavioural format-vs-content ablation. For each model, its own run (``own``: the traces
it generated) is paired item by item with ``forced``: the same model answering after its own
reasoning with the content scrambled (:func:`mimicry.traces.scramble.scramble_traces`, which keeps
format and length) — written by :func:`mimicry.generate.answer_after`. The reliance is

    accuracy(own reasoning) − accuracy(after scrambled reasoning)

with a paired bootstrap CI over items and McNemar's exact test (:func:`mimicry.stats.mcnemar`).
Two controls tell use from distraction (``empty=``, ``filler=``, made by
:mod:`mimicry.traces.controls`): the same accuracy difference against answers after an EMPTY
reasoning and after a LENGTH-MATCHED content-free filler (column ``control``: ``scrambled``,
``empty``, ``filler``). Reasoning that does work is missed when removed (own − empty > 0);
a scramble that only distracts costs accuracy while an empty reasoning does not. A student that took over the teacher's policy
reasons in a way that produces its answer: scrambling the content costs accuracy. One that
copied only the form does not lose anything, because its reasoning did no work.

Rows per model and task, plus ``task == "all"`` (every item pooled: the test is paired within
items, so pooling across tasks is valid). Exclusions are counted per model: own traces cut
before ``</think>`` (nothing to answer after), items with no forced answer, unscored items.
Items whose reasoning the scramble could not change (too short) are kept — which can only pull
the reliance towards 0 — and counted in ``meta["reasoning_unchanged_by_scramble"]``. Forced
answers cut by their token budget (``finish_reason == "length"``) are kept, scored as given,
and counted in the ``forced_cut`` column: many of them inflate the reliance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mimicry.errors import InputError
from mimicry.stats import bootstrap_indices, mcnemar, percentile_ci

from .base import ProbeEstimator, Result


class Reliance(ProbeEstimator):
    """Estimator: ``fit(correct_own, correct_forced)`` -> ``diff_``, ``ci_``, ``p_``, ``mcnemar_``.

    ``X [n]`` (or ``[n, 1]``): whether each item was answered correctly after the model's own
    reasoning; ``y [n]``: whether it was after the scrambled reasoning (the same items, in the
    same order). Hyper-parameters: ``n_boot`` (paired bootstrap over items), ``random_state``.
    Learned: ``diff_`` (accuracy own − forced), ``ci_``, ``mcnemar_``, ``p_``,
    ``n_features_in_``. ``score(X, y)`` is the accuracy difference own − forced on ``(X, y)``,
    through the same function as ``diff_`` (so the score on the fitted items is ``diff_``);
    :func:`run` fits this estimator for every row.
    """

    def __init__(self, n_boot: int = 2000, random_state: int = 0):
        self.n_boot = n_boot
        self.random_state = random_state

    def fit(self, X, y) -> Reliance:
        """Compute the accuracy difference, its paired bootstrap CI and McNemar's p; return self."""
        a, b = _pairs(X, y)
        idx = bootstrap_indices(a.size, self.n_boot, self.random_state)
        d = _diffs(a, b)
        self.diff_ = float(d.mean())
        self.ci_ = percentile_ci(d[idx].mean(1), a.size)
        self.mcnemar_ = mcnemar(a, b)
        self.p_ = float(self.mcnemar_.p)
        self.n_features_in_ = 1
        return self

    def score(self, X, y) -> float:
        """Return the accuracy difference own − forced on ``(X, y)``."""
        self._check_fitted()
        return float(_diffs(*_pairs(X, y)).mean())


def _pairs(own: Any, forced: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (own [n], forced [n]) as bool; InputError unless both hold the same n > 0 items."""
    a = np.asarray(own, dtype=bool).ravel()
    b = np.asarray(forced, dtype=bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise InputError(f"reliance needs the same non-empty items on both sides, got "
                         f"{a.size} and {b.size}")
    return a, b


def _diffs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the per-item difference own − forced ``[n]`` (1, 0 or −1)."""
    return a.astype(float) - b.astype(float)


def _read(x: Any, what: str) -> list:
    from mimicry.traces import read_traces

    if isinstance(x, (str, Path)):
        if not Path(x).is_file():
            raise InputError(f"{what} traces not found", file=x,
                             fix="give a traces JSONL (own: from `mimicry generate`; forced: "
                                 "from `mimicry generate --after-reasoning`)")
        return read_traces(x)
    return list(x)


def _pair(own_t: list, forced_t: list, task_of: dict | None, models: list[str],
          min_items: int, what: str) -> tuple[dict, dict, dict]:
    """Return per model: (pairs DataFrame ``item_id, task, own, forced, cut``, exclusions,
    count of reasonings the transformation left unchanged)."""
    forced_by = {(t.model, t.item_id): t for t in forced_t}
    pairs, excl, same = {}, {}, {}
    for m in models:
        ex = {"not_in_suite": 0, "truncated_own": 0, "no_forced_answer": 0, "unscored": 0}
        unchanged = 0  # kept: the scramble could not change a reasoning this short (conservative)
        keep = []
        for t in (t for t in own_t if t.model == m):
            if task_of is not None and t.item_id not in task_of:
                ex["not_in_suite"] += 1
            elif t.cut_before_answer:
                ex["truncated_own"] += 1
            elif (m, t.item_id) not in forced_by:
                ex["no_forced_answer"] += 1
            elif t.correct is None or forced_by[(m, t.item_id)].correct is None:
                ex["unscored"] += 1
            else:
                f = forced_by[(m, t.item_id)]
                unchanged += (f.reasoning or "") == (t.reasoning or "")
                keep.append((t.item_id, task_of[t.item_id] if task_of else (t.task or ""),
                             bool(t.correct), bool(f.correct), f.finish_reason == "length"))
        excl[m], same[m] = ex, unchanged
        if len(keep) < min_items:
            raise InputError(f"model {m!r}: only {len(keep)} items have both an own answer and "
                             f"one after {what} reasoning (excluded: {ex})",
                             fix=f"answer after the {what} reasoning of every item")
        pairs[m] = pd.DataFrame(keep, columns=["item_id", "task", "own", "forced", "cut"])
    return pairs, excl, same


def run(own: Any, forced: Any, *, tasks: Any = None, n_boot: int = 2000, seed: int = 0,
        min_items: int = 10, empty: Any = None, filler: Any = None) -> Result:
    """Return a :class:`Result`: per model × task × control, accuracy own vs after a given reasoning.

    ``own``/``forced``: traces files or lists (several models allowed: paired by model name
    and item); ``forced`` answers after the model's own reasoning scrambled (control
    ``scrambled``). Optional controls (:mod:`mimicry.traces.controls`): ``empty`` — answers
    after an empty reasoning; ``filler`` — after a content-free filler of the same length.
    ``tasks``: a suite (name, file or TaskSuite) to restrict to its items and take their tasks
    from; otherwise each trace's ``task``. A model with fewer than ``min_items`` usable pairs
    is an error naming the counts.
    """
    own_t, forced_t = _read(own, "own"), _read(forced, "forced")
    swapped = sum(bool(t.meta.get("forced_reasoning")) for t in own_t)
    if swapped:
        raise InputError(f"{swapped} of the 'own' traces are answers after a given reasoning "
                         "(written by answer_after), not the models' own runs",
                         fix="give the own traces first and the forced answers second")
    task_of = None
    if tasks is not None:
        from mimicry.tasks.registry import load_suite

        task_of = {it.item_id: it.task for it in load_suite(tasks)}
    forced_models = {t.model for t in forced_t}
    models = list(dict.fromkeys(t.model for t in own_t))
    missing_models = [m for m in models if m not in forced_models]
    models = [m for m in models if m in forced_models]
    if not models:
        raise InputError("no model has both own and forced traces "
                         f"(own: {sorted({t.model for t in own_t})}, forced: "
                         f"{sorted(forced_models)})",
                         fix="the forced answers must carry the same model name as the "
                             "model's own traces (--name)")
    controls = {"scrambled": forced_t}
    for name, x in (("empty", empty), ("filler", filler)):
        if x is not None:
            controls[name] = _read(x, name)
    rows, ctrl_meta = [], {}
    for control, ft in controls.items():
        ms = models if control == "scrambled" else \
            [m for m in models if m in {t.model for t in ft}]
        pairs, excl, same = _pair(own_t, ft, task_of, ms, min_items, control)
        ctrl_meta[control] = {"n": {m: len(d) for m, d in pairs.items()}, "exclusions": excl,
                              "reasoning_unchanged": same, "pairs": pairs}
        for m, df in pairs.items():
            groups = [("all", df)] + ([(k, g) for k, g in df.groupby("task", sort=True)]
                                      if df["task"].nunique() > 1 else [])
            for task, g in groups:
                est = Reliance(n_boot=n_boot, random_state=seed).fit(g["own"], g["forced"])
                mc = est.mcnemar_
                rows.append({"model": m, "task": task, "control": control, "n": len(g),
                             "acc_own": mc.acc_a, "acc_forced": mc.acc_b,
                             "reliance": est.diff_, "ci_low": est.ci_[0],
                             "ci_high": est.ci_[1], "p": est.p_, "own_only": mc.a_only,
                             "forced_only": mc.b_only, "forced_cut": int(g["cut"].sum()),
                             "test": mc.method})
    table = pd.DataFrame(rows)
    sc = ctrl_meta["scrambled"]
    meta = {"probe": "reliance", "models": models, "models_without_forced": missing_models,
            "n": sc["n"], "exclusions": sc["exclusions"],
            "reasoning_unchanged_by_scramble": sc["reasoning_unchanged"],
            "controls": {c: {k: v for k, v in d.items() if k != "pairs"}
                         for c, d in ctrl_meta.items()},
            "n_boot": n_boot, "seed": seed,
            "ci": "paired bootstrap over items of accuracy own − forced",
            "test": "exact McNemar (binomial test on the discordant items)"}
    return Result("reliance", table, meta=meta, plotter=plot,
                  arrays={"pairs": sc["pairs"],
                          "control_pairs": {c: d["pairs"] for c, d in ctrl_meta.items()}})


def plot(result: Result):
    """Return a figure: accuracy with own vs scrambled reasoning, and the drop with its CI."""
    from .figures_calls import reliance_figure

    return reliance_figure(result)
