"""The intervene stage: its outputs, the probe stage reading them, resume after a crash, config.

On the organism (teacher + student_mastery, 16 items): the stage's steering and patching
Results (made from its rows by the probe stage) equal ``probes.steer.run`` /
``probes.patch.run`` called directly on the same caches; a rerun with outputs present skips;
a crash in the middle of steering keeps every finished run, and the resumed stage makes only
the missing runs and ends with the same rows as an uninterrupted run; settings changed after
the runs make them anew; ``[intervene]`` keys are checked; a changed ``token_rows`` recaptures
the token caches at the new stride.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from experiments.config import config_from_dict
from experiments.layout import RunFolder
from experiments.runner import organism_config, run_experiment
from mimicry.errors import InputError

N_ITEMS = 16
STEER = {"alphas": [1.0], "n_random": 2, "max_new_tokens": 24, "n_boot": 100}
PATCH = {"n_pairs": 3, "layers": [1], "max_new_tokens": 24, "n_boot": 100}


def small_config(out, **over):
    models = [m for m in organism_config().to_dict()["models"]
              if m["key"] in ("teacher", "student_mastery")]
    over = {"probes": {"names": ["steer", "patch"],
                       "options": {"steer": dict(STEER), "patch": dict(PATCH)}}, **over}
    return organism_config(
        out=str(out), max_items_per_task=N_ITEMS, models=models,
        capture={"backend": "hf", "sites": ["last_prompt"], "entropy": "off",
                 "store_dtype": "float32", "batch_tokens": 4096, "cross": False}, **over)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    org = pytest.importorskip("mimicry.organism")
    if not (org.CHECKPOINTS / "teacher" / "config.json").exists():
        pytest.skip("organism checkpoints not committed")
    out = tmp_path_factory.mktemp("itv") / "run"
    cfg = small_config(out)
    status = run_experiment(cfg, stages=["generate", "capture", "intervene", "probe"])
    return RunFolder(out), cfg, status


def test_stage_writes_plans_and_rows_and_the_probe_stage_reads_them(done):
    run, _, status = done
    assert status["intervene"]["status"] == "done", status
    assert status["probe"]["status"] == "done", status
    for name in ("steer", "patch"):
        assert run.intervene_plan(name, "student_mastery").exists()
        assert run.intervene_rows(name, "student_mastery").exists()
        assert run.probe_table(name).exists()
    plan = json.loads(run.intervene_plan("steer", "student_mastery").read_text())
    rows = [json.loads(x) for x in run.intervene_rows("steer", "student_mastery").open()]
    # one row per held-out item and run: the unsteered run, then each direction at α = 1
    assert plan["jobs"][0] == ["none", 0.0] and {a for _, a in plan["jobs"][1:]} == {1.0}
    dirs = [d for d, _ in plan["jobs"][1:]]
    assert {"own_meandiff", "teacher_mapped", "random_0", "random_1"} <= set(dirs)
    assert len(dirs) == len(set(dirs)) == 2 + 2 + ("own_ridge" in dirs)
    assert len(rows) == plan["meta"]["n_test"] * len(plan["jobs"])


def test_results_equal_the_probes_run_directly(done):
    from experiments.support import load_suites, model_source
    from mimicry import open_cache
    from probes import patch, steer

    run, cfg, _ = done
    suite = load_suites(cfg)
    m = cfg.model("student_mastery")
    ref = steer.run(model_source(m), open_cache(run.cache(m.key)), tasks=suite,
                    teacher_cache=open_cache(run.cache("teacher")), seed=cfg.seed,
                    name=m.key, **STEER)
    got = pd.read_csv(run.probe_table("steer", "effects")).drop(columns="unit")
    want = pd.read_csv(pd.io.common.StringIO(ref.tables["effects"].to_csv(index=False)))
    pd.testing.assert_frame_equal(got, want)
    ref = patch.run(model_source(m), tasks=suite, seed=cfg.seed, name=m.key, **PATCH)
    got = pd.read_csv(run.probe_table("patch")).drop(columns="unit")
    want = pd.read_csv(pd.io.common.StringIO(ref.table.to_csv(index=False)))
    pd.testing.assert_frame_equal(got, want)


def _count_generations(monkeypatch):
    from mimicry.intervene import generation

    calls = {"n": 0}
    real = generation.generate_rows

    def counted(*a, **k):
        calls["n"] += 1
        if calls.get("crash_at") == calls["n"]:
            raise RuntimeError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(generation, "generate_rows", counted)
    return calls


def test_rerun_skips_and_forced_rerun_makes_nothing_again(done, tmp_path, monkeypatch):
    src, cfg, _ = done
    run = RunFolder(tmp_path / "run")
    shutil.copytree(src.root, run.root)
    cfg = small_config(run.root)
    files = sorted(run.intervene_dir.iterdir())
    before = {p: p.read_bytes() for p in files}
    calls = _count_generations(monkeypatch)
    st = run_experiment(cfg, stages=["intervene"])
    assert st["intervene"]["status"] == "skipped (done)"
    st = run_experiment(cfg, stages=["intervene"], force=True)
    assert st["intervene"]["status"] == "done"
    assert calls["n"] == 0
    assert {p: p.read_bytes() for p in files} == before


def test_crash_mid_stage_loses_nothing_and_resume_ends_the_same(done, tmp_path, monkeypatch):
    src, _, _ = done
    run = RunFolder(tmp_path / "run")
    shutil.copytree(src.root, run.root)
    shutil.rmtree(run.intervene_dir)
    run.marker("intervene").unlink()
    cfg = small_config(run.root)
    calls = _count_generations(monkeypatch)
    calls["crash_at"] = 4  # steering: the unsteered run and 2 directions are made, then crash
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(cfg, stages=["intervene"])
    assert not run.marker("intervene").exists()
    rows_path = run.intervene_rows("steer", "student_mastery")
    kept = rows_path.read_text().splitlines()
    plan = json.loads(run.intervene_plan("steer", "student_mastery").read_text())
    assert len(kept) == 3 * plan["meta"]["n_test"]  # three finished runs, nothing lost
    cut = [json.loads(x) | {"direction": plan["jobs"][3][0], "alpha": plan["jobs"][3][1]}
           for x in kept[:2]]
    with open(rows_path, "a") as f:  # a write cut short by the crash: 2 whole lines, 1 cut
        f.write("".join(json.dumps(r) + "\n" for r in cut) + '{"direction": "own_me')
    calls.update(n=0, crash_at=None)
    st = run_experiment(cfg, stages=["intervene"])
    assert st["intervene"]["status"] == "done"
    n_steer = len(plan["jobs"]) - 3
    n_patch = 2 * (2 + 1)  # per direction: the two own runs + one patched layer
    assert calls["n"] == n_steer + n_patch
    assert rows_path.read_text().splitlines()[:len(kept)] == kept
    from experiments.intervene_runs import load_runs

    for name in ("steer", "patch"):
        got, _ = load_runs(run, name, "student_mastery")
        want, _ = load_runs(src, name, "student_mastery")
        pd.testing.assert_frame_equal(got, want)


def test_changed_options_make_the_runs_anew_and_stale_runs_are_not_read(done, tmp_path):
    from experiments.inputs import run_inputs
    from experiments.probing import run_probe
    from experiments.support import load_suites

    src, _, _ = done
    run = RunFolder(tmp_path / "run")
    shutil.copytree(src.root, run.root)
    cfg = small_config(run.root)
    cfg.probes.options["patch"]["max_new_tokens"] = 20
    inp = run_inputs(cfg, run, load_suites(cfg))
    units, note = run_probe("patch", inp)
    assert units == [] and "other settings" in note and "--stages intervene" in note
    st = run_experiment(cfg, stages=["intervene"])
    assert any("patch student_mastery" in n and "made anew" in n
               for n in st["intervene"]["notes"])
    plan = json.loads(run.intervene_plan("patch", "student_mastery").read_text())
    assert plan["settings"]["options"]["max_new_tokens"] == 20
    steer_plan = run.intervene_plan("steer", "student_mastery")
    assert steer_plan.read_bytes() == src.intervene_plan("steer", "student_mastery").read_bytes()


def test_intervene_keys_are_checked(tmp_path):
    base = small_config(tmp_path / "r").to_dict()
    base.pop("source", None)
    with pytest.raises(InputError, match=r"unknown key 'rows' in \[intervene\]"):
        config_from_dict({**base, "intervene": {"rows": 3}})
    with pytest.raises(InputError, match="token_rows is 0"):
        config_from_dict({**base, "intervene": {"token_rows": 0}})
    with pytest.raises(InputError, match=r"\[intervene\] models \['teacher'\]"):
        config_from_dict({**base, "intervene": {"models": ["teacher"]}})
    cfg = config_from_dict({**base, "intervene": {"models": ["student_mastery"]}})
    assert cfg.intervene.models == ["student_mastery"]
    # the intervene settings are part of its hash (and the probe stage's), not generate's
    other = config_from_dict({**base, "intervene": {"token_rows": 64}})
    assert other.stage_hash("intervene") != cfg.stage_hash("intervene")
    assert other.stage_hash("probe") != cfg.stage_hash("probe")
    assert other.stage_hash("reliance") == cfg.stage_hash("reliance")


def test_token_caches_follow_token_rows(done, tmp_path):
    from experiments.intervene_runs import models_for
    from mimicry import open_cache
    from mimicry.traces import read_traces

    src, _, _ = done
    run = RunFolder(tmp_path / "run")
    shutil.copytree(src.root, run.root)
    probes = {"names": ["compute"], "options": {"compute": {"n_perm": 5, "n_boot": 50}}}
    cfg = small_config(run.root, probes=probes)
    assert [m.key for m in models_for(cfg, run, "compute")] == ["teacher", "student_mastery"]
    st = run_experiment(cfg, stages=["intervene", "probe"])
    assert st["intervene"]["status"] == "done" and st["probe"]["status"] == "done", st
    path = run.cache(RunFolder.tokens_stem("student_mastery"))
    assert open_cache(path).config["per_token_stride"] == 1  # ≤ 128 rows: every token
    longest = max(t.reasoning_tokens for t in read_traces(run.traces("student_mastery")))
    cfg = small_config(run.root, probes=probes, intervene={"token_rows": 8})
    st = run_experiment(cfg, stages=["intervene"])
    assert any("captured at stride 1, not" in n for n in st["intervene"]["notes"])
    assert open_cache(path).config["per_token_stride"] == -(-(longest + 2) // 8)
