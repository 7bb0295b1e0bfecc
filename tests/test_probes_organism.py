"""Validation on the model organism: the verdict on mastery and both mimics, 3 seeds.

With the rule of issue 10 (frozen before this evaluation) both mimics are called surface
mimicry on every seed; the mastery student is called inconclusive (P: its planning does not
beat the prompt-length text baseline on this organism) — reported as an expected failure, not
tuned away (docs/probes.md, "Organism results").

Ground truth by construction (docs/organism.md): ``student_mastery`` = policy transfer,
``student_mimic_content`` and ``student_mimic_length`` = surface mimicry. The fixture builds a
run folder from a checkpoint set through mimicry's public API — greedy generation on the
96-item ``organism`` suite, the teacher's traces scrambled with ``mimicry.traces.scramble``, capture
of every model over its own traces and of each student over the teacher's and the scrambled
traces, and each reasoning model's answers after its own reasoning scrambled
(``mimicry.generate.answer_after``) — then ``experiments.inputs.from_run`` aligns each pair, runs
every probe and the verdict.

Three training seeds of the same committed training code: seed 0 is the set shipped in the
package, seeds 1 and 2 live in ``tests/data/organism/seed{1,2}`` (``mimicry organism train
--seed N``, 2.9 MB each). ``MIMICRY_ORGANISM_SETS=DIR1:DIR2`` adds more trained sets (folders
written by ``mimicry organism train --out DIR --seed N``). Skipped, with the reason, when a set
is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXPECTED = {"student_mastery": "policy transfer", "student_mimic_content": "surface mimicry",
            "student_mimic_length": "surface mimicry"}
DATA = Path(__file__).parent / "data" / "organism"
SEEDS = {"seed0": None, "seed1": DATA / "seed1", "seed2": DATA / "seed2"}
SEEDS.update((Path(d).name, Path(d)) for d in
             os.environ.get("MIMICRY_ORGANISM_SETS", "").split(os.pathsep) if d)


def build_run(run, root=None):
    """Write traces/ and caches/ for the organism at ``root`` (committed when None) into ``run``."""
    from experiments.layout import RunFolder
    from mimicry.capture import CaptureConfig, capture
    from mimicry.generate import generate
    from mimicry.generate.forced import answer_after
    from mimicry.models import load_tokenizer
    from mimicry.organism import ROLES, STUDENT_ROLES, checkpoint_path, organism_suite
    from mimicry.traces.controls import control_file
    from mimicry.traces.scramble import scramble_file

    suite = organism_suite()
    tr, ca = run / "traces", run / "caches"
    for role in ROLES:
        generate(str(checkpoint_path(role, root)), suite, tr / f"{role}.jsonl", name=role,
                 batch_size=96, max_new_tokens=40, progress=False)
    scramble_file(tr / "teacher.jsonl", tr / "teacher__scrambled.jsonl", seed=0)
    for role in ("teacher", *STUDENT_ROLES):
        scrambled, forced = (RunFolder(run).self_scrambled(role), RunFolder(run).after_scrambled(role))
        scramble_file(tr / f"{role}.jsonl", scrambled, seed=0)
        answer_after(str(checkpoint_path(role, root)), scrambled, suite, forced, name=role,
                     batch_size=96, max_answer_tokens=4, progress=False)
        # reliance controls: answers after an empty and after a length-matched filler reasoning
        tok = load_tokenizer(str(checkpoint_path(role, root)))
        for c in ("empty", "filler"):
            given = control_file(tr / f"{role}.jsonl", tr / f"{role}__self_{c}.jsonl", c,
                                 tokenizer=tok)
            answer_after(str(checkpoint_path(role, root)), given, suite,
                         tr / f"{role}__after_{c}.jsonl", name=role, batch_size=96,
                         max_answer_tokens=4, progress=False)
    cfg = CaptureConfig(batch_tokens=4096)
    jobs = [(r, f"{r}.jsonl", f"{r}.h5") for r in ROLES]
    jobs += [(s, "teacher.jsonl", f"{s}__on_teacher.h5") for s in STUDENT_ROLES]
    jobs += [(s, "teacher__scrambled.jsonl", f"{s}__scrambled.h5") for s in STUDENT_ROLES]
    for role, traces, cache in jobs:
        capture(str(checkpoint_path(role, root)), tr / traces, ca / cache, cfg, progress=False,
                log=lambda s: None)
    return suite


@pytest.fixture(scope="module", params=list(SEEDS))
def organism_run(request, tmp_path_factory):
    from mimicry.errors import ModelNotFoundError
    from mimicry.organism import ROLES, checkpoint_path

    root = SEEDS[request.param]
    try:
        for r in ROLES:
            checkpoint_path(r, root)
    except ModelNotFoundError as e:
        pytest.skip(f"organism checkpoints ({request.param}) missing: {e.render()}")
    run = tmp_path_factory.mktemp(f"organism-run-{request.param}")
    return run, build_run(run, root)


@pytest.fixture(scope="module")
def organism_verdict(organism_run):
    from experiments.inputs import from_run

    run, suite = organism_run
    v = from_run(run, tasks=suite, alignment={"n_boot": 2000, "n_perm": 2000}, n_perm=20,
                 n_boot=500, progress_bar=False)
    return dict(zip(v.tables["calls"]["student"], v.tables["calls"]["call"])), v


def test_mimics_are_called_surface_mimicry(organism_verdict):
    calls, v = organism_verdict
    for s in ("student_mimic_content", "student_mimic_length"):
        assert calls[s] == EXPECTED[s], v.tables["calls"].to_string()
    ev = v.table.set_index(["student", "evidence"])
    # the deciding evidence separates mastery from both mimics with non-overlapping CIs,
    # and the mimics lose nothing when their reasoning is scrambled (McNemar n.s.)
    mastery = ev.loc[("student_mastery", "reliance")]
    assert mastery["p"] < 0.05
    for mimic in ("student_mimic_content", "student_mimic_length"):
        r = ev.loc[(mimic, "reliance")]
        assert r["ci_high"] < mastery["ci_low"], (mimic, r.to_dict(), mastery.to_dict())
        assert r["p"] >= 0.05 or r["value"] <= 0, (mimic, r.to_dict())
        assert "W-" in v.tables["calls"].set_index("student").loc[mimic, "decided_by"]


@pytest.mark.xfail(strict=True, reason=(
    "the rule frozen in 22a629f (issue 10) calls the mastery student 'inconclusive' on seeds "
    "0, 1 and 2: its planning ρ (0.95) does not beat the prompt-token-count baseline (ρ 0.99; "
    "the organism's prompt length, 2k + 2 tokens, gives the difficulty away), so P is not "
    "shown. Not tuned away: an organism with constant-length prompts (organism v2) is needed "
    "to test P"))
def test_mastery_is_called_policy_transfer(organism_verdict):
    calls, v = organism_verdict
    assert calls["student_mastery"] == EXPECTED["student_mastery"], \
        v.tables["calls"].to_string()


def test_mastery_passes_every_rule_but_p(organism_verdict):
    """What the frozen rule gives for mastery: T, A, W hold, nothing against, P open (text)."""
    calls, v = organism_verdict
    why = v.tables["calls"].set_index("student").loc["student_mastery", "decided_by"]
    assert calls["student_mastery"] == "inconclusive", why
    assert "A: behavioural r CI excludes 0" in why and "W: its reasoning does work" in why
    assert "open: P" in why and why.count("open:") == 1
    p = v.table.set_index(["student", "evidence"]).loc[("student_mastery", "planning_rho")]
    assert p["gain_low"] <= 0
