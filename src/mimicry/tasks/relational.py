"""The ``relational`` suite: left/right verification problems (CCOBRA 3ps.csv and 4ps.csv).

Two tasks, because their RT scales differ (alignment correlates within a task):
``relational_3ps`` (3 terms, 2 premises, 16 problems; ids ``rel3-01``..) and
``relational_4ps`` (4 terms, 3 premises, 48 problems; ids ``rel4-017``.., the CCOBRA TaskID).
Each asks whether a conclusion ("A is to the left of D") is true.

The gold answer is computed by a small ordering solver (:func:`entailment`): enumerate every
left-to-right order of the terms, keep those consistent with the premises, and call the
conclusion true if it holds in all of them, false if in none. Problems where it holds in some
orders only are *indeterminate*: 3 of the 4ps problems (TaskID 60, 108, 156; premise
"B is to the right of C" where the rest of the design implies "C is to the right of B") are,
so they are excluded and listed in ``suite.info["excluded"]`` (humans are at chance on them).
The data's own labels (``korrekt``, ``logicallycorrect``) agree with the solver on every other
problem (tested).

``rt_ms`` is CCOBRA's ``rt_ms``: time from the first premise's onset to the response (premises
were read self-paced), median over correct trials.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from .items import HumanNorms, Item, TaskSuite
from .norms import RELIABILITY_SEED, RELIABILITY_SPLITS, item_norms, split_half_reliability

DATA = Path(__file__).parent / "data" / "ccobra" / "benchmarks" / "relational" / "data"
PS3_CSV = DATA / "3ps.csv"
PS4_CSV = DATA / "4ps.csv"
TASK_3PS = "relational_3ps"
TASK_4PS = "relational_4ps"

Relation = tuple[str, str, str]  # ("Left", "A", "B"): A is to the left of B


def parse_relation(s: str) -> Relation:
    """Return ``(rel, a, b)`` from CCOBRA ``"Left;A;B"`` (A is to the left of B)."""
    rel, a, b = (x.strip() for x in s.split(";"))
    if rel not in ("Left", "Right"):
        raise ValueError(f"unknown relation {rel!r} in {s!r}")
    return rel, a, b


def _holds(rel: Relation, pos: dict[str, int]) -> bool:
    r, a, b = rel
    return pos[a] < pos[b] if r == "Left" else pos[a] > pos[b]


def entailment(premises: list[Relation], conclusion: Relation) -> bool | None:
    """Return True if the premises entail the conclusion, False if they refute it, else None.

    Enumerates all orders of the terms (at most 4! = 24 here); raises if the premises are
    contradictory.
    """
    terms = sorted({t for p in [*premises, conclusion] for t in p[1:]})
    values = set()
    for order in itertools.permutations(terms):
        pos = {t: i for i, t in enumerate(order)}
        if all(_holds(p, pos) for p in premises):
            values.add(_holds(conclusion, pos))
    if not values:
        raise ValueError(f"contradictory premises {premises}")
    return values.pop() if len(values) == 1 else None


def _sentence(rel: Relation) -> str:
    r, a, b = rel
    return f"{a} is to the {r.lower()} of {b}"


def render_prompt(premises: list[Relation], conclusion: Relation) -> str:
    """Return the verification problem in words, with the answer format stated."""
    prem = " ".join(f"{_sentence(p)}." for p in premises)
    return (f"Objects are arranged in a row from left to right. {prem} Is it true that "
            f"{_sentence(conclusion)}? Answer with true or false.")


def _load(path: Path, *, task_col: str, label_col: str, prefix: str, width: int) -> pd.DataFrame:
    df = pd.read_csv(path)
    return pd.DataFrame({
        "participant": df["id"].astype(int),
        "task_id": df[task_col].astype(int),
        "premises": df["task"].astype(str),
        "conclusion": df["choices"].astype(str),
        "response": df["response"].astype(str).str.strip().str.lower() == "true",
        "label": df[label_col].astype(int).astype(bool),
        "rt_ms": df["rt_ms"].astype(float),
        "item": df[task_col].astype(int).map(lambda t: f"{prefix}-{t:0{width}d}"),
    })


def load_trials() -> dict[str, pd.DataFrame]:
    """Return ``{task: trials}`` for both files (participant, task_id, premises, ...)."""
    return {
        TASK_3PS: _load(PS3_CSV, task_col="Task-ID", label_col="korrekt", prefix="rel3",
                        width=2),
        TASK_4PS: _load(PS4_CSV, task_col="TaskID", label_col="logicallycorrect",
                        prefix="rel4", width=3),
    }


def build_relational_suite(*, seed: int = RELIABILITY_SEED,
                           n_splits: int = RELIABILITY_SPLITS) -> TaskSuite:
    """Return the ``relational`` suite (tasks relational_3ps and relational_4ps)."""
    items: list[Item] = []
    excluded: list[dict] = []
    reliability: dict[str, float | None] = {}
    rel_info: dict[str, dict] = {}
    for task, trials in load_trials().items():
        gold_of: dict[str, bool] = {}
        meta_of: dict[str, dict] = {}
        for iid, g in trials.groupby("item", sort=True):
            if g["premises"].nunique() != 1 or g["conclusion"].nunique() != 1:
                raise ValueError(f"{task} {iid}: problem text differs between participants")
            premises = [parse_relation(p) for p in g["premises"].iloc[0].split("/")]
            conclusion = parse_relation(g["conclusion"].iloc[0])
            gold = entailment(premises, conclusion)
            if gold is None:
                excluded.append({"item_id": iid, "task": task,
                                 "premises": g["premises"].iloc[0],
                                 "conclusion": g["conclusion"].iloc[0],
                                 "n_trials": int(len(g)),
                                 "reason": "indeterminate: the premises allow orders where the "
                                           "conclusion holds and orders where it does not"})
                continue
            gold_of[iid] = gold
            meta_of[iid] = {
                "premises": g["premises"].iloc[0].split("/"),
                "conclusion": g["conclusion"].iloc[0], "n_premises": len(premises),
                "n_terms": len({t for p in premises for t in p[1:]}),
                "ccobra_task_id": int(g["task_id"].iloc[0]),
                "ccobra_label": bool(g["label"].iloc[0]),
                "prompt_args": (premises, conclusion),
            }
        det = trials[trials["item"].isin(gold_of)].copy()
        det["correct"] = det["response"] == det["item"].map(gold_of)
        norms = item_norms(det, item="item", correct="correct", rt="rt_ms")
        rel = split_half_reliability(det, measure="rt_ms", n_splits=n_splits, seed=seed)
        rel_value = None if np.isnan(rel.value) else rel.value
        reliability[task] = rel_value
        rel_info[task] = {"split_half_r": rel.split_half_r, "split_half_r_sd": rel.sd_r,
                          "n_splits": rel.n_splits,
                          "n_participants": rel.n_participants}
        for iid, gold in gold_of.items():
            nm = norms[iid]
            meta = meta_of[iid]
            premises, conclusion = meta.pop("prompt_args")
            meta.update(n_correct=nm.n_correct, scorer="truth", reliability_seed=seed)
            items.append(Item(
                item_id=iid, task=task, prompt=render_prompt(premises, conclusion),
                answer="true" if gold else "false",
                human=HumanNorms(rt_ms=nm.rt_ms, accuracy=nm.accuracy, n=nm.n,
                                 reliability=rel_value),
                meta=meta))
    info = {
        "norm_source": "CCOBRA 3ps.csv + 4ps.csv",
        "rt_definition": "median rt_ms (first premise onset to response) of correct trials",
        "reliability_measure": "log median RT of correct trials, Pearson over items",
        "reliability_seed": seed, "reliability_splits": n_splits,
        "reliability_detail": rel_info, "excluded": excluded,
    }
    return TaskSuite("relational", items, source=f"{PS3_CSV} + {PS4_CSV}",
                     reliability=reliability, info=info)
