"""The committed organism models behave as designed, measured through mimicry's own
``generate`` (hf backend) and ``align`` — the known ground truth every probe is checked on.

Thresholds are the design targets (docs/organism.md); the independent cross-checks recompute
r with scipy from the trace files and accuracy from the scorer.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from mimicry.organism import ROLES, checkpoint_path, model_specs
from mimicry.organism.task import organism_suite

N_BOOT = 2000


@pytest.fixture(scope="module")
def organism_traces(tmp_path_factory):
    """Greedy traces of all five committed models on the organism suite (one JSONL each)."""
    from mimicry.generate import generate

    out = tmp_path_factory.mktemp("organism-traces")
    suite = organism_suite()
    paths = {}
    for role in ROLES:
        paths[role] = out / f"{role}.jsonl"
        generate(str(checkpoint_path(role)), suite, paths[role], backend="hf",
                 batch_size=96, max_new_tokens=40, name=role, progress=False,
                 dtype="float32")
    return suite, paths


@pytest.fixture(scope="module")
def aligned(organism_traces):
    """``align`` results: one per student (teacher/student/base roles) and one for all."""
    from mimicry.alignment import align

    suite, paths = organism_traces
    res = {}
    for s in ("student_mastery", "student_mimic_content", "student_mimic_length"):
        res[s] = align([paths["teacher"], paths[s], paths["base"]], suite,
                       roles={"teacher": "teacher", "student": s, "base": "base"},
                       n_boot=N_BOOT, n_perm=N_BOOT, progress=False)
    return res


def _row(result, model):
    t = result.table
    return t[t.model == model].iloc[0]


def test_checkpoints_load_and_record_their_training():
    from mimicry.models import load_model

    sizes = {}
    for role in ROLES:
        p = checkpoint_path(role)
        model, tok = load_model(str(p))
        assert type(model).__name__ == "LlamaForCausalLM"
        sizes[role] = sum(x.numel() for x in model.parameters())
        info = json.loads((p / "organism.json").read_text())
        assert info["role"] == role and info["seed"] == 0 and info["synthetic"] is True
        assert "config" in info and info["train"]["steps"] > 0
    for s in ("student_mastery", "student_mimic_content", "student_mimic_length"):
        assert sizes[s] == sizes["base"] < sizes["teacher"]
    total = sum(f.stat().st_size for f in checkpoint_path("teacher").parent.rglob("*")
                if f.is_file())
    assert total < 20e6
    specs = model_specs()
    assert specs["teacher"].role == "teacher" and specs["student_mastery"].role == "student"


def test_align_r_matches_scipy_on_the_trace_files(organism_traces, aligned):
    from mimicry.traces import read_traces

    suite, paths = organism_traces
    for role in ("teacher", "student_mastery", "student_mimic_length"):
        tr = [t for t in read_traces(paths[role]) if t.reasoning_tokens and
              t.finish_reason != "length"]
        x = np.log([t.reasoning_tokens for t in tr])
        y = np.log([suite[t.item_id].human.rt_ms for t in tr])
        res = aligned["student_mimic_length"] if role != "student_mastery" else \
            aligned["student_mastery"]
        row = _row(res, role)
        assert row.n == len(tr)
        assert row.r == pytest.approx(sps.pearsonr(x, y).statistic, abs=1e-9)


def test_teacher_reasons_in_proportion_to_difficulty(aligned):
    row = _row(aligned["student_mastery"], "teacher")
    assert row.n >= 90 and row.r >= 0.8 and row.ci_low > 0.6 and row.p_perm < 0.01
    assert row.accuracy >= 0.95


def test_base_answers_directly_and_fails_on_hard_items(organism_traces):
    from mimicry.traces import read_traces

    suite, paths = organism_traces
    tr = read_traces(paths["base"])
    assert all(t.reasoning_tokens == 0 for t in tr)
    k = [suite[t.item_id].meta["difficulty"] for t in tr]
    c = [float(t.correct) for t in tr]
    rho = sps.spearmanr(k, c)
    assert rho.statistic < -0.3 and rho.pvalue < 0.01
    easy = np.mean([ci for ki, ci in zip(k, c) if ki <= 2])
    hard = np.mean([ci for ki, ci in zip(k, c) if ki >= 6])
    assert easy > hard + 0.3


def test_mastery_keeps_the_teachers_policy(aligned):
    res = aligned["student_mastery"]
    row = _row(res, "student_mastery")
    assert row.r >= 0.8
    dr = res.extra["delta_r"].iloc[0]  # r_student - r_teacher on shared items
    assert abs(dr.delta_r) < 0.1
    assert row.accuracy > _row(res, "base").accuracy


def test_length_mimic_loses_the_policy(aligned):
    res = aligned["student_mimic_length"]
    row = _row(res, "student_mimic_length")
    if math.isnan(row.r):
        # greedy decoding gives every item the same length: align excludes the cell as
        # "constant values" — length carries no difficulty information at all
        ex = res.exclusions
        assert ((ex.model == "student_mimic_length") & (ex.reason == "constant values")).any()
    else:
        assert row.r < 0.4
        dr = res.extra["delta_r"].iloc[0]  # r_student - r_teacher, paired bootstrap
        assert dr.ci_high < -0.3


def test_content_mimic_keeps_the_form_but_shows_negative_transfer(aligned):
    res = aligned["student_mimic_content"]
    row = _row(res, "student_mimic_content")
    assert row.r >= 0.8  # its length still follows difficulty: r alone cannot tell
    nt = res.extra["negative_transfer"].iloc[0]
    assert nt.acc_student < nt.acc_base and nt.p < 0.05
