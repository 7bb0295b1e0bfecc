"""Planning probe: transfer through Procrustes recovers a rotation; run() orders the models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _probes_fake import FakeCache
from scipy.stats import ortho_group

from probes import planning


def test_transfer_recovers_a_rotated_student():
    rng = np.random.default_rng(0)
    n, d = 120, 10
    Xt = rng.standard_normal((n, d))
    y = Xt[:, 0] + 0.3 * rng.standard_normal(n)
    folds = np.arange(n) % 4
    Q = ortho_group.rvs(d, random_state=1)
    same = planning.transfer_predict(Xt, y, Xt, folds)          # the teacher scored on itself
    rot = planning.transfer_predict(Xt, y, 5.0 * Xt @ Q, folds)  # rotated + rescaled copy
    np.testing.assert_allclose(rot, same, atol=1e-8)
    noise = planning.transfer_predict(Xt, y, rng.standard_normal((n, 7)), folds)
    assert abs(np.corrcoef(noise, y)[0, 1]) < 0.35 < np.corrcoef(same, y)[0, 1]


def _model(seed, plan_strength, n=100, d=16, tokens=None, ids=None):
    rng = np.random.default_rng(seed)
    tokens = tokens if tokens is not None else np.exp(3 + rng.standard_normal(n))
    lt = np.log1p(tokens)
    z = (lt - lt.mean()) / lt.std()
    resid = {}
    for layer in range(3):
        X = rng.standard_normal((n, d))
        if layer == 2:
            X[:, 0] += plan_strength * z
        resid[(layer, "last_prompt")] = X
    items = pd.DataFrame({"item_id": ids, "task": "t", "reasoning_tokens": tokens.round(),
                          "n_prompt_tokens": 10})
    return FakeCache(items, resid)


def test_planning_run_teacher_student_base():
    n = 100
    ids = [f"i{k}" for k in range(n)]
    tokens = np.exp(3 + np.random.default_rng(9).standard_normal(n))
    caches = {"teacher": _model(1, 3.0, tokens=tokens, ids=ids),
              "student": _model(2, 3.0, tokens=tokens, ids=ids),
              "base": _model(3, 0.0, tokens=tokens, ids=ids)}
    res = planning.run(caches, n_perm=20, n_boot=200, progress_bar=False)
    assert res.meta["targets"] == ["log_reasoning_tokens"]   # no tasks: human target skipped
    s = planning.summary(res).set_index("model")
    assert s.loc["teacher", "rho_ci_low"] > 0.5 and s.loc["student", "layer"] == 2
    assert s.loc["base", "rho"] < 0.35
    tr = res.tables["transfer"]
    row = tr[(tr.student == "student") & (tr.teacher_layer == 2)].iloc[0]
    assert row["rho"] > 0.5 and row["p_perm"] < 0.01
    assert tr[(tr.student == "base") & (tr.teacher_layer == 2)].iloc[0]["rho"] < 0.35
    assert s.loc["student (teacher probe)", "rho"] == pytest.approx(row["rho"])
    res.plot()
