"""The committed organism v2 models (development seed) behave as designed, per family.

Greedy decoding of the 288 ``organism_v2`` items (``mimicry.organism.v2.evaluate``); r and
accuracy are recomputed here from the rows with scipy/numpy. Skipped when no v2 checkpoints
ship in the package.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from mimicry.organism.v2 import CHECKPOINTS, ROLES
from mimicry.organism.v2 import families as F

pytestmark = pytest.mark.skipif(not (CHECKPOINTS / "teacher" / "config.json").exists(),
                                reason="no organism v2 checkpoints in the package")


@pytest.fixture(scope="module")
def rows():
    from mimicry.organism.v2 import load
    from mimicry.organism.v2.evaluate import behaviour

    out = {}
    for role in ROLES:
        model, tok = load(role)
        out[role] = behaviour(model, tok)["rows"]
    return out


def _per_family(rs, fam):
    rs = [r for r in rs if r["family"] == fam]
    tokens = np.array([r["reasoning_tokens"] for r in rs], float)
    k = np.array([r["difficulty"] for r in rs], float)
    acc = float(np.mean([r["correct"] for r in rs]))
    ok = tokens > 0
    r = sps.pearsonr(np.log(tokens[ok]), np.log(300 + 500 * k[ok])).statistic \
        if ok.sum() > 2 and tokens[ok].std() > 0 else float("nan")
    return r, acc, rs


def test_checkpoints_record_seed_and_fit_the_size_budget():
    total = sum(f.stat().st_size for f in CHECKPOINTS.rglob("*") if f.is_file())
    assert total < 20e6
    for role in ROLES:
        info = json.loads((CHECKPOINTS / role / "organism.json").read_text())
        assert info["role"] == role and info["version"] == 2 and info["synthetic"] is True


@pytest.mark.slow
@pytest.mark.parametrize("fam", F.FAMILIES)
def test_rl_teacher_learned_a_difficulty_sensitive_length(rows, fam):
    r, acc, _ = _per_family(rows["teacher"], fam)  # the design target, every family
    assert r >= 0.8 and acc >= 0.9, (fam, r, acc)


@pytest.mark.slow
def test_rl_teacher_length_is_learned_not_copied():
    info = json.loads((CHECKPOINTS / "train_summary.json").read_text())
    warm = info["teacher_behaviour"]["teacher_warm"]["greedy"]
    for fam in F.FAMILIES:  # the warm start: one length for every k (chain, search) or r ~ 0
        toks = list(warm[fam]["tokens_by_k"].values())
        assert max(toks) - min(toks) < 1.5, fam
    for fam in F.FAMILIES:
        assert info["teacher_behaviour"]["teacher"]["greedy"][fam]["r"] >= 0.8, fam


@pytest.mark.slow
@pytest.mark.parametrize("fam", F.FAMILIES)
def test_mastery_copies_the_policy_and_beats_the_base(rows, fam):
    r, acc, _ = _per_family(rows["student_mastery"], fam)
    r_teacher, _, _ = _per_family(rows["teacher"], fam)
    _, base_acc, _ = _per_family(rows["base"], fam)
    assert r >= 0.8 and abs(r - r_teacher) < 0.1 and acc > base_acc + 0.3, (fam, r, acc)


@pytest.mark.slow
def test_posthoc_student_writes_teacher_length_steps_that_do_not_compute(rows):
    gold = {it.item_id: it.answer for it in F.organism_v2_suite()}
    for fam in F.FAMILIES:
        _, _, post = _per_family(rows["student_posthoc"], fam)
        _, _, teach = _per_family(rows["teacher"], fam)
        lp = np.array([r["reasoning_tokens"] for r in post], float)
        lt = np.array([r["reasoning_tokens"] for r in teach], float)
        if fam == "chain":  # the stop is in the prompt's form: teacher length, item by item
            assert sps.pearsonr(lp, lt).statistic > 0.9
            assert abs(lp.mean() - lt.mean()) < 0.25 * lt.mean() + 1
        else:  # the stop needs the computation its steps lack: a length in the teacher's range
            by_k = [lt[[r["difficulty"] == k for r in teach]].mean() for k in range(1, 7)]
            assert min(by_k) - 1 <= lp.mean() <= max(by_k) + 1, fam
        # the answer its own steps imply is right about as often as chance, not as the teacher
        implied = [F.conclude(fam, r["completion"].split("</think>")[0]
                              .replace("<think>", "")) for r in post]
        hits = np.mean([i == gold[r["item_id"]] for i, r in zip(implied, post)])
        assert hits < 0.35, fam
