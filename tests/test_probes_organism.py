"""Validation on the model organism: the verdict separates mastery from both mimics.

Ground truth by construction (docs/organism.md): ``student_mastery`` = policy transfer,
``student_mimic_content`` and ``student_mimic_length`` = surface mimicry. The fixture builds a
run folder from the committed checkpoints through mimicry's public API — greedy generation
on the 96-item ``organism`` suite, the teacher's traces scrambled with ``mimicry.scramble``,
capture of every model over its own traces and of each student over the teacher's and the
scrambled traces — then ``probes.suite.from_run`` aligns each pair, runs every probe and the
verdict. Skipped, with the reason, when the organism checkpoints are not in the package.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

EXPECTED = {"student_mastery": "policy transfer", "student_mimic_content": "surface mimicry",
            "student_mimic_length": "surface mimicry"}


def build_run(run, root=None):
    """Write traces/ and caches/ for the organism at ``root`` (committed when None) into ``run``."""
    from mimicry.capture import CaptureConfig, capture
    from mimicry.generate import generate
    from mimicry.organism import ROLES, STUDENT_ROLES, checkpoint_path, organism_suite
    from mimicry.scramble import scramble_file

    suite = organism_suite()
    tr, ca = run / "traces", run / "caches"
    for role in ROLES:
        generate(str(checkpoint_path(role, root)), suite, tr / f"{role}.jsonl", name=role,
                 batch_size=96, max_new_tokens=40, progress=False)
    scramble_file(tr / "teacher.jsonl", tr / "teacher__scrambled.jsonl", seed=0)
    cfg = CaptureConfig(batch_tokens=4096)
    jobs = [(r, f"{r}.jsonl", f"{r}.h5") for r in ROLES]
    jobs += [(s, "teacher.jsonl", f"{s}__on_teacher.h5") for s in STUDENT_ROLES]
    jobs += [(s, "teacher__scrambled.jsonl", f"{s}__scrambled.h5") for s in STUDENT_ROLES]
    for role, traces, cache in jobs:
        capture(str(checkpoint_path(role, root)), tr / traces, ca / cache, cfg, progress=False,
                log=lambda s: None)
    return suite


@pytest.fixture(scope="module")
def organism_run(tmp_path_factory):
    from mimicry.errors import ModelNotFoundError
    from mimicry.organism import ROLES, checkpoint_path

    try:
        for r in ROLES:
            checkpoint_path(r)
    except ModelNotFoundError as e:
        pytest.skip(f"organism checkpoints not shipped yet: {e.render()}")
    run = tmp_path_factory.mktemp("organism-run")
    return run, build_run(run)


def test_verdict_on_the_organism(organism_run):
    from probes.suite import from_run

    run, suite = organism_run
    v = from_run(run, tasks=suite, n_perm=20, n_boot=500, progress_bar=False)
    calls = dict(zip(v.tables["calls"]["student"], v.tables["calls"]["call"]))
    assert calls == EXPECTED, v.tables["calls"].to_string()
