"""A quick, self-contained behavioural check of organism models (greedy decoding).

The tests and the docs use mimicry's own ``generate`` + ``align``; this module is the
independent cross-check (and what ``train`` records in ``train_summary.json``): it decodes the
``organism`` suite greedily, splits reasoning/answer with :func:`mimicry.traces.split_reasoning`
and reports accuracy and Pearson r of log reasoning tokens vs log synthetic RT.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..traces import split_reasoning
from .task import organism_suite, score_answer


def behaviour(model, tok, *, items=None, max_new_tokens: int = 40) -> dict[str, Any]:
    """Return ``{"rows": [...], "accuracy", "r", "n", "acc_by_k", "mean_tokens"}`` for one model.

    ``rows`` has one dict per item (item_id, difficulty, reasoning_tokens, correct); ``r`` is
    Pearson r of log reasoning tokens vs log synthetic ``rt_ms`` over items with > 0 tokens
    (NaN when fewer than 3 such items or no variance).
    """
    import numpy as np

    from .training import complete

    items = list(items if items is not None else organism_suite())
    outs = complete(model, tok, [it.prompt for it in items], max_new_tokens=max_new_tokens)
    rows = []
    for it, text in zip(items, outs):
        reasoning, answer, closed = split_reasoning(text)
        n_tok = len(tok(reasoning, add_special_tokens=False)["input_ids"]) if reasoning else 0
        parsed, correct = score_answer(it, answer)
        rows.append({"item_id": it.item_id, "difficulty": it.meta["difficulty"],
                     "rt_ms": it.human.rt_ms, "reasoning_tokens": n_tok, "closed": closed,
                     "parsed": parsed, "correct": bool(correct), "completion": text})
    cost = np.array([r["reasoning_tokens"] for r in rows], dtype=float)
    rt = np.array([r["rt_ms"] for r in rows], dtype=float)
    ok = cost > 0
    r = float("nan")
    if ok.sum() >= 3 and cost[ok].std() > 0:
        r = float(np.corrcoef(np.log(cost[ok]), np.log(rt[ok]))[0, 1])
    ks = sorted({r["difficulty"] for r in rows})
    acc_by_k = {int(k): float(np.mean([r["correct"] for r in rows if r["difficulty"] == k]))
                for k in ks}
    return {"rows": rows, "n": len(rows), "n_with_reasoning": int(ok.sum()),
            "accuracy": float(np.mean([r["correct"] for r in rows])),
            "r": r, "acc_by_k": acc_by_k, "mean_tokens": float(cost.mean())}


def behaviour_of(path: str | Path, **kw) -> dict[str, Any]:
    """Return :func:`behaviour` for the model saved at ``path``."""
    from ..models import load_model

    model, tok = load_model(str(path), dtype="float32")
    return behaviour(model, tok, **kw)


def fmt(b: dict[str, Any]) -> str:
    """Return a one-line summary of a :func:`behaviour` dict."""
    r = "nan" if math.isnan(b["r"]) else f"{b['r']:.3f}"
    accs = " ".join(f"{k}:{v:.2f}" for k, v in b["acc_by_k"].items())
    return (f"acc={b['accuracy']:.3f} r={r} (n={b['n_with_reasoning']}/{b['n']}) "
            f"tokens={b['mean_tokens']:.1f} acc_by_k[{accs}]")
