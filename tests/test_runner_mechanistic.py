"""compute / steer / patch through the intervene and probe stages, the verdict's row M, the dry run.

The organism config on 36 items: the intervene stage runs the models (each reasoning model's
per-token residuals along its reasoning, steering, patching), the probe stage writes the three
probes' tables and figures, and the verdict gets
``compute_rise`` (with the teacher's) and the steering/patching rows; the numbers in the
verdict equal those in ``probes/compute_rise.csv``. The dry run lists the steering and
patching cost (generations, tokens).
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from experiments.runner import organism_config, run_experiment

N_ITEMS = 36


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    org = pytest.importorskip("mimicry.organism")
    if not (org.CHECKPOINTS / "teacher" / "config.json").exists():
        pytest.skip("organism checkpoints not committed")
    out = tmp_path_factory.mktemp("mech") / "run"
    cfg = organism_config(
        out=str(out), max_items_per_task=N_ITEMS,
        models=[m for m in organism_config().to_dict()["models"]
                if m["key"] in ("teacher", "base", "student_mastery", "student_mimic_content")],
        capture={"backend": "hf", "sites": ["last_prompt"], "entropy": "off",
                 "store_dtype": "float32", "batch_tokens": 4096, "cross": False},
        probes={"names": ["compute", "steer", "patch", "verdict"],
                "options": {"compute": {"n_perm": 20, "n_boot": 200},
                            "steer": {"alphas": [-1.0, 1.0], "n_random": 10,
                                      "max_new_tokens": 40, "n_boot": 200},
                            "patch": {"n_pairs": 6, "layers": [1], "max_new_tokens": 40,
                                      "n_boot": 200}}})
    status = run_experiment(cfg, stages=["generate", "capture", "intervene", "probe"])
    return out, cfg, status


def test_stage_writes_tables_and_figures(run):
    out, _, status = run
    for name in ("compute", "steer", "patch"):
        assert (out / "probes" / f"{name}.csv").exists(), status
    assert (out / "caches" / "student_mastery__tokens.h5").exists()
    figs = {p.name for p in (out / "probes").glob("*.png")}
    assert {"compute__student_mastery.png", "steer__student_mastery.png",
            "patch__student_mastery.png"} <= figs


def test_verdict_gets_row_m(run):
    out, _, _ = run
    v = pd.read_csv(out / "probes" / "verdict.csv")
    rise = pd.read_csv(out / "probes" / "compute_rise.csv")
    for s in ("student_mastery", "student_mimic_content"):
        r = v[(v["student"] == s) & (v["evidence"] == "compute_rise")].iloc[0]
        mine = rise[rise["unit"] == s]
        want = mine[mine["layer"] == mine["layer"].max()].iloc[0]
        assert r["value"] == pytest.approx(want["rise"])
        assert r["ci_low"] == pytest.approx(want["ci_low"])
    ev = set(v["evidence"])
    assert {"teacher_compute_rise", "steer_teacher_mapped", "patch_effect"} <= ev
    m = v[(v["student"] == "student_mastery") & (v["evidence"] == "compute_rise")].iloc[0]
    c = v[(v["student"] == "student_mimic_content") & (v["evidence"] == "compute_rise")]
    assert m["ci_low"] > 0 and c.iloc[0]["ci_low"] <= 0


def test_dry_run_lists_intervention_cost(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cfg = organism_config(out=str(tmp_path / "dry"))
    run_experiment(cfg, dry_run=True)
    text = caplog.text
    assert "steer student_mastery:" in text and "patch student_mastery:" in text
    assert "compute: one capture forward" in text
