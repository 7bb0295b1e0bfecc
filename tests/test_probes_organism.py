"""Validation on the model organism: the verdict separates mastery from both mimics, 3 seeds.

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
    from mimicry.organism import ROLES, STUDENT_ROLES, checkpoint_path, organism_suite
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


def test_verdict_on_the_organism(organism_run):
    from experiments.inputs import from_run

    run, suite = organism_run
    v = from_run(run, tasks=suite, alignment={"n_boot": 2000, "n_perm": 2000}, n_perm=20,
                 n_boot=500, progress_bar=False)
    calls = dict(zip(v.tables["calls"]["student"], v.tables["calls"]["call"]))
    assert calls == EXPECTED, v.tables["calls"].to_string()
    ev = v.table.set_index(["student", "evidence"])
    # the deciding evidence separates mastery from both mimics with non-overlapping CIs,
    # and the mimics lose nothing when their reasoning is scrambled (McNemar n.s.)
    mastery = ev.loc[("student_mastery", "reliance")]
    assert mastery["p"] < 0.05
    for mimic in ("student_mimic_content", "student_mimic_length"):
        r = ev.loc[(mimic, "reliance")]
        assert r["ci_high"] < mastery["ci_low"], (mimic, r.to_dict(), mastery.to_dict())
        assert r["p"] >= 0.05 or r["value"] <= 0, (mimic, r.to_dict())
