"""Quick behaviour of a v2 organism model per family: accuracy and length–difficulty r.

The runner measures the same through ``generate`` + ``align``; this is the self-contained check
the trainer records (before and after RL) and the tests use. ``r`` is Pearson r of log
reasoning tokens vs log SYNTHETIC rt (i.e. vs difficulty), over items with > 0 tokens.
"""

from __future__ import annotations

import math
from typing import Any

from ...traces import split_reasoning
from ..training import complete
from .families import FAMILIES, FAMILY_OF_TASK, organism_v2_suite, score_answer


def _pearson_log(x: list[float], y: list[float]) -> float:
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = x > 0
    if ok.sum() < 3 or x[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(np.log(x[ok]), np.log(y[ok]))[0, 1])


def behaviour(model, tok, *, items=None, temperature: float = 0.0, seed: int = 0,
              max_new_tokens: int = 40) -> dict[str, Any]:
    """Return ``{"families": {family: {n, accuracy, r, mean_tokens, acc_by_k, tokens_by_k}},
    "rows": [...]}`` on the ``organism_v2`` suite (or ``items``)."""
    import numpy as np

    items = list(items if items is not None else organism_v2_suite())
    outs = complete(model, tok, [it.prompt for it in items], temperature=temperature,
                    seed=seed, max_new_tokens=max_new_tokens)
    rows = []
    for it, text in zip(items, outs):
        reasoning, answer, closed = split_reasoning(text)
        parsed, correct = score_answer(it, answer)
        rows.append({"item_id": it.item_id, "family": FAMILY_OF_TASK[it.task],
                     "difficulty": it.meta["difficulty"], "rt_ms": it.human.rt_ms,
                     "reasoning_tokens": len(reasoning.split()), "closed": closed,
                     "correct": bool(correct), "completion": text})
    fams = {}
    for fam in FAMILIES:
        rs = [r for r in rows if r["family"] == fam]
        if not rs:
            continue
        ks = sorted({r["difficulty"] for r in rs})
        fams[fam] = {
            "n": len(rs), "accuracy": float(np.mean([r["correct"] for r in rs])),
            "r": _pearson_log([r["reasoning_tokens"] for r in rs], [r["rt_ms"] for r in rs]),
            "mean_tokens": float(np.mean([r["reasoning_tokens"] for r in rs])),
            "acc_by_k": {k: float(np.mean([r["correct"] for r in rs if r["difficulty"] == k]))
                         for k in ks},
            "tokens_by_k": {k: float(np.mean([r["reasoning_tokens"] for r in rs
                                              if r["difficulty"] == k])) for k in ks}}
    return {"families": fams, "rows": rows, "temperature": temperature, "seed": seed}


def fmt(b: dict[str, Any]) -> str:
    """Return one line per family of a :func:`behaviour` dict."""
    lines = []
    for fam, v in b["families"].items():
        r = "nan" if math.isnan(v["r"]) else f"{v['r']:.3f}"
        toks = " ".join(f"{t:.1f}" for t in v["tokens_by_k"].values())
        lines.append(f"{fam:7s} acc={v['accuracy']:.3f} r={r} tokens={v['mean_tokens']:.1f} "
                     f"by k [{toks}]")
    return "\n".join(lines)
