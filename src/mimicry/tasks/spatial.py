"""The ``spatial`` suite: cardinal-direction reasoning (CCOBRA Ragni2018_carddir).

Each problem has two premises, ``A is d1 of B`` and ``B is d2 of C``, and asks for the direction
of C relative to A (8 choices). The gold answer is computed, not typed: each direction is a unit
vector (north = (0, 1), north-east = (1, 1), ...), ``A = B + v(d1)`` and ``B = C + v(d2)``, so
``C - A = -(v(d1) + v(d2))`` and the answer is the direction with the same component signs.
64 problems = 8 x 8 direction pairs; the 8 with opposite directions (e.g. east / west) put C on
A, so no choice is correct: they are excluded and listed in ``suite.info["excluded"]``.

Participants saw different place names for the same problem; the prompt uses the most frequent
wording of each problem (ties: first in the file). Norms use every participant's trial.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .items import HumanNorms, Item, TaskSuite
from .norms import RELIABILITY_SEED, RELIABILITY_SPLITS, item_norms, split_half_reliability

DATA = Path(__file__).parent / "data" / "ccobra" / "benchmarks" / "relational" / "data"
CARDDIR_CSV = DATA / "Ragni2018_carddir.csv"
TASK = "spatial"

VECTORS: dict[str, tuple[int, int]] = {
    "north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0),
    "north-east": (1, 1), "north-west": (-1, 1), "south-east": (1, -1), "south-west": (-1, -1),
}
_BY_SIGN = {v: k for k, v in VECTORS.items()}
CHOICES = ("north", "south", "east", "west", "north-east", "north-west", "south-east",
           "south-west")


def parse_premise(p: str) -> tuple[str, str, str]:
    """Return ``(direction, a, b)`` from CCOBRA ``"north;mall;station"`` (a is north of b)."""
    d, a, b = (x.strip() for x in p.split(";"))
    if d not in VECTORS:
        raise ValueError(f"unknown direction {d!r} in premise {p!r}")
    return d, a, b


def compose(premises: list[tuple[str, str, str]], target: str, reference: str) -> str | None:
    """Return the direction of ``target`` relative to ``reference``, or None if they coincide.

    Places every term on the grid by chaining the premises' unit vectors (each premise
    ``(d, a, b)`` means ``pos[a] = pos[b] + v(d)``), then takes the signs of the difference.
    """
    pos: dict[str, np.ndarray] = {premises[0][2]: np.zeros(2, dtype=int)}
    pending = list(premises)
    while pending:
        progressed = False
        for p in list(pending):
            d, a, b = p
            v = np.asarray(VECTORS[d])
            if b in pos and a not in pos:
                pos[a] = pos[b] + v
            elif a in pos and b not in pos:
                pos[b] = pos[a] - v
            elif a not in pos:
                continue
            pending.remove(p)
            progressed = True
        if not progressed:
            raise ValueError(f"premises {premises} do not connect all terms")
    diff = np.sign(pos[target] - pos[reference])
    if not diff.any():
        return None
    return _BY_SIGN[(int(diff[0]), int(diff[1]))]


def render_prompt(premises: list[tuple[str, str, str]], target: str, reference: str) -> str:
    """Return the natural-language problem with the answer format stated."""
    sents = [f"The {a} is {d} of the {b}." for d, a, b in premises]
    return (" ".join(sents) + f" What is the direction of the {target} relative to the "
            f"{reference}? Answer with one of: {', '.join(CHOICES)}.")


def load_trials(path: Path = CARDDIR_CSV) -> pd.DataFrame:
    """Return the trials: participant, task_id, premises, response direction, rt_ms."""
    df = pd.read_csv(path)
    out = pd.DataFrame({
        "participant": df["id"].astype(int),
        "task_id": df["Task-ID"].astype(int),
        "task": df["task"].astype(str),
        "response_dir": df["response"].str.split(";").str[0].str.strip(),
        "response_terms": df["response"].str.split(";").str[1:].str.join(";"),
        "rt_ms": df["rt_ms"].astype(float),
    })
    return out


def build_spatial_suite(path: Path = CARDDIR_CSV, *, seed: int = RELIABILITY_SEED,
                        n_splits: int = RELIABILITY_SPLITS) -> TaskSuite:
    """Return the ``spatial`` suite (56 determinate problems; 8 excluded, see module doc)."""
    trials = load_trials(path)
    items_raw, excluded, gold_of = [], [], {}
    for tid, g in trials.groupby("task_id", sort=True):
        counts = Counter(g["task"])
        top = max(counts.values())
        wording = next(t for t in g["task"] if counts[t] == top)
        premises = [parse_premise(p) for p in wording.split("/")]
        target, reference = premises[1][2], premises[0][1]
        gold = compose(premises, target, reference)
        iid = f"spatial-{tid:02d}"
        dirs = [p[0] for p in premises]
        if gold is None:
            excluded.append({"item_id": iid, "premises": dirs, "n_trials": int(len(g)),
                             "reason": "opposite directions: the asked-about place coincides "
                                       "with the reference, no choice is correct"})
            continue
        # each participant's own wording gives the same structure, hence the same gold
        gold_of[tid] = gold
        items_raw.append((tid, iid, premises, target, reference, gold, g))
    det = trials[trials["task_id"].isin(gold_of)].copy()
    det["correct"] = det["response_dir"] == det["task_id"].map(gold_of)
    det["item"] = det["task_id"].map(lambda t: f"spatial-{t:02d}")
    norms = item_norms(det, item="item", correct="correct", rt="rt_ms")
    rel = split_half_reliability(det, measure="rt_ms", participant="participant", item="item",
                                 correct="correct", rt="rt_ms", n_splits=n_splits, seed=seed)
    rel_value = None if np.isnan(rel.value) else rel.value
    items = []
    for tid, iid, premises, target, reference, gold, g in items_raw:
        nm = norms[iid]
        majority = g["response_dir"].value_counts().idxmax()
        items.append(Item(
            item_id=iid, task=TASK, prompt=render_prompt(premises, target, reference),
            answer=gold,
            human=HumanNorms(rt_ms=nm.rt_ms, accuracy=nm.accuracy, n=nm.n,
                             reliability=rel_value),
            meta={"premises": [";".join(p) for p in premises], "n_premises": len(premises),
                  "directions": [p[0] for p in premises], "target": target,
                  "reference": reference, "ccobra_task_id": int(tid),
                  "n_correct": nm.n_correct, "majority_response": str(majority),
                  "scorer": "direction", "reliability_seed": seed}))
    info = {
        "norm_source": "CCOBRA Ragni2018_carddir",
        "rt_definition": "median rt_ms (question onset to response) of correct trials",
        "reliability_measure": "log median RT of correct trials, Pearson over items",
        "reliability_seed": seed, "reliability_splits": rel.n_splits,
        "split_half_r": rel.split_half_r, "split_half_r_sd": rel.sd_r,
        "n_participants": rel.n_participants,
        "excluded": excluded,
    }
    return TaskSuite("spatial", items, source=str(path), reliability={TASK: rel_value},
                     info=info)
