"""Can the prompt's words alone tell the difficulty? A cross-validated bag-of-tokens ridge.

For each family: prompts → token counts (one feature per vocabulary word, the prompt split on
whitespace as the organism tokenizer does) → ridge regression (alpha chosen by an inner
cross-validation) → 5-fold cross-validated predictions of k → Spearman ρ between prediction and
k. The design target is ρ ≤ 0.3 for every family (docs/organism.md); the v1 task, whose prompt
length is 2k + 2, gives ρ ≈ 1.
"""

from __future__ import annotations

import random
from typing import Any

from .families import FAMILIES, K_MAX, Problem, random_problem

ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def bag_of_tokens_rho(prompts: list[str], difficulty: list[int], *, folds: int = 5,
                      seed: int = 0) -> dict[str, Any]:
    """Return ``{"rho", "p", "n", "n_lengths"}``: Spearman ρ of cross-validated ridge
    predictions of difficulty from token counts (``n_lengths``: distinct prompt lengths)."""
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict

    X = CountVectorizer(token_pattern=r"\S+", lowercase=False).fit_transform(prompts)
    y = np.asarray(difficulty, dtype=float)
    cv = KFold(folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(RidgeCV(alphas=ALPHAS), X, y, cv=cv)
    rho = spearmanr(pred, y)
    return {"rho": float(rho.statistic), "p": float(rho.pvalue), "n": len(y),
            "n_lengths": len({len(p.split()) for p in prompts})}


def family_problems(family: str, n: int, seed: int) -> list[Problem]:
    """Return ``n`` random problems of ``family``, difficulty uniform in 1..6."""
    rng = random.Random(f"leak-{seed}-{family}")
    return [random_problem(rng, family, rng.randint(1, K_MAX)) for _ in range(n)]


def measure(n: int = 2000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Return ``{family: bag_of_tokens_rho(...)}`` on ``n`` random prompts per family."""
    out = {}
    for fam in FAMILIES:
        probs = family_problems(fam, n, seed)
        out[fam] = bag_of_tokens_rho([p.prompt() for p in probs], [p.k for p in probs],
                                     seed=seed)
    return out
