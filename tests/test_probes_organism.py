"""Validation on the model organism: the verdict separates mastery from both mimics.

Ground truth by construction (docs/organism.md): ``student_mastery`` = policy transfer,
``student_mimic_content`` and ``student_mimic_length`` = surface mimicry. The run folder is
built with the experiments runner from the committed checkpoints (generate, align, capture
with cross captures), then ``probes.suite.from_run`` runs every probe and the verdict.
Skipped, with the reason, when the organism checkpoints are not in the package.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

EXPECTED = {"student_mastery": "policy transfer", "student_mimic_content": "surface mimicry",
            "student_mimic_length": "surface mimicry"}


@pytest.fixture(scope="module")
def organism_run(tmp_path_factory):
    from mimicry.errors import ModelNotFoundError
    from mimicry.organism import ROLES, checkpoint_path

    try:
        for r in ROLES:
            checkpoint_path(r)
    except ModelNotFoundError as e:
        pytest.skip(f"organism checkpoints not shipped yet: {e.render()}")
    from pathlib import Path

    from mimicry.cli import main

    cfg = Path(__file__).resolve().parents[1] / "experiments" / "organism.toml"
    if not cfg.exists():
        pytest.skip("experiments/organism.toml not found")
    out = tmp_path_factory.mktemp("organism-run")
    rc = main(["run", str(cfg), "--stages", "generate,align,capture", "--out", str(out)])
    assert rc == 0
    return out


def test_verdict_on_the_organism(organism_run):
    from probes.suite import from_run

    v = from_run(organism_run, tasks="organism", n_perm=20, n_boot=300, progress_bar=False)
    calls = dict(zip(v.tables["calls"]["student"], v.tables["calls"]["call"]))
    assert calls == EXPECTED, v.tables["calls"].to_string()
