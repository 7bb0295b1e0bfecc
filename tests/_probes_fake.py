"""An in-memory stand-in for ``mimicry.open_cache`` results (same duck-typed API), for probe tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


class FakeCache:
    """Cache-like object: ``items``, ``resid(layer, site)``, ``entropy(segment, variant)``, ``meta``."""

    def __init__(self, items, resid, entropy=None, meta=None):
        self.items = items
        self._resid = resid            # {(layer, site): [n, d]}
        self._entropy = entropy or {}  # {(segment, variant): [n, L, H]}
        self.meta = meta or {"model": "fake"}
        self.sites = sorted({s for _, s in resid})
        self.n_layers = max(layer for layer, _ in resid)
        self.d_model = next(iter(resid.values())).shape[1]
        self.segments = sorted({s for s, _ in self._entropy}) or ["reasoning"]

    def resid(self, layer, site):
        return self._resid[(layer, site)]

    def entropy(self, segment, variant="raw"):
        return self._entropy[(segment, variant)]


def make_fake(n=120, d=24, n_layers=4, signal_layer=2, n_tasks=2, seed=0, strength=3.0,
              n_heads=4, difficulty=None, model="fake", sites=("last_prompt",)):
    """Return (cache, labels Series): difficulty linearly encoded at ``signal_layer`` only."""
    rng = np.random.default_rng(seed)
    ids = [f"i{k:04d}" for k in range(n)]
    tasks = np.array([f"t{k % n_tasks}" for k in range(n)])
    diff = rng.standard_normal(n) if difficulty is None else np.asarray(difficulty, float)
    reasoning = np.round(np.exp(3 + 0.5 * diff + 0.2 * rng.standard_normal(n))).astype(int)
    items = pd.DataFrame({"item_id": ids, "task": tasks, "n_prompt_tokens": 20 + (np.arange(n) % 5),
                          "n_reasoning_tokens": reasoning, "n_answer_tokens": 3,
                          "reasoning_tokens": reasoning, "truncated": False})
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    resid = {}
    for site in sites:
        for layer in range(n_layers + 1):
            X = rng.standard_normal((n, d))
            if layer == signal_layer:
                X += strength * np.outer(diff, w)
            resid[(layer, site)] = X.astype(np.float32)
    ent = {}
    for variant in ("raw", "norm", "nosink"):
        E = rng.standard_normal((n, n_layers, n_heads)) * 0.1 + 2.0
        E[:, 1, 0] += 0.3 * diff  # head (1, 0) tracks difficulty
        ent[("reasoning", variant)] = E
        ent[("prompt", variant)] = E[:, :, ::-1].copy()
    labels = pd.Series(diff, index=ids, name="difficulty")
    return FakeCache(items, resid, ent, {"model": model}), labels
