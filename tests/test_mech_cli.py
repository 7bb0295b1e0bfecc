"""``mimicry probe compute|steer|patch`` on the organism: files written, numbers == run().

Small: 30 items, short budgets. The CLI's CSVs must hold the same numbers as the probes'
``run()`` called here directly with the same settings; user mistakes print one error line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mimicry import open_cache
from mimicry.capture import CaptureConfig, capture
from mimicry.generate import generate
from mimicry.tasks.registry import load_suite
from probes import compute, patch, steer

ORG = Path(__file__).resolve().parents[1] / "src/mimicry/organism/checkpoints"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.cli", "probe", *map(str, args)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("mechcli")
    suite = list(load_suite("organism"))[::3]
    out = {}
    for k in ("teacher", "student_mastery"):
        tr = d / f"{k}.jsonl"
        generate(str(ORG / k), suite, tr, max_new_tokens=40, batch_size=32, progress=False,
                 name=k)
        out[k] = capture(str(ORG / k), tr, d / f"{k}.h5",
                         CaptureConfig(sites=("last_prompt",), entropy="off",
                                       per_token_stride=1, per_token_segment="reasoning"),
                         progress=False, log=lambda s: None)
    return d, suite, out


def test_compute_cli_equals_run(data, tmp_path):
    d, suite, caches = data
    r = _cli("compute", f"s={caches['student_mastery']}", "--tasks", "organism", "--out",
             tmp_path, "--n-perm", 5, "--n-boot", 100)
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(tmp_path / "compute_rise.csv")
    ref = compute.run(open_cache(caches["student_mastery"]), tasks=load_suite("organism"),
                      target="answer", n_perm=5, n_boot=100, name="s").tables["rise"]
    pd.testing.assert_frame_equal(got[["layer", "rise", "ci_low", "ci_high"]],
                                  ref[["layer", "rise", "ci_low", "ci_high"]])


def test_patch_and_steer_cli_equal_run(data, tmp_path):
    d, suite, caches = data
    model = ORG / "student_mastery"
    r = _cli("patch", "--model", model, "--tasks", "organism", "--layers", "1", "--n-pairs",
             4, "--max-new-tokens", 40, "--n-boot", 100, "--out", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(tmp_path / "p" / "patch.csv")
    ref = patch.run(str(model), tasks="organism", layers=[1], n_pairs=4, max_new_tokens=40,
                    n_boot=100).table
    assert got["effect"].tolist() == pytest.approx(ref["effect"].tolist(), nan_ok=True)
    r = _cli("steer", caches["student_mastery"], caches["teacher"], "--model", model,
             "--tasks", "organism", "--alphas=-1,1", "--n-random", 3, "--max-new-tokens",
             40, "--n-boot", 100, "--out", tmp_path / "s")
    assert r.returncode == 0, r.stderr
    got = pd.read_csv(tmp_path / "s" / "steer_effects.csv")
    ref = steer.run(str(model), open_cache(caches["student_mastery"]), tasks="organism",
                    teacher_cache=open_cache(caches["teacher"]), alphas=(-1, 1), n_random=3,
                    max_new_tokens=40, n_boot=100).tables["effects"]
    assert got["slope"].tolist() == pytest.approx(ref["slope"].tolist())
    assert "teacher_mapped" in set(got["kind"])


def test_user_errors(tmp_path):
    r = _cli("patch", "--tasks", "organism", "--out", tmp_path)
    assert r.returncode == 2 and "--model" in r.stderr and not any(tmp_path.iterdir())
    r = _cli("compute", "--out", tmp_path)
    assert r.returncode == 2 and "--tasks" in r.stderr


def test_run_models_plumbing(data, tmp_path):
    from probes import mechanistic

    d, suite, caches = data
    models = {k: str(ORG / k) for k in ("teacher", "student_mastery")}
    traces = {k: d / f"{k}.jsonl" for k in models}
    res = mechanistic.run_models(
        models, traces, tasks=load_suite("organism"), teacher="teacher",
        students=["student_mastery"], out=tmp_path,
        caches={k: open_cache(v) for k, v in caches.items()},
        steer_kw={"alphas": (-1.0, 1.0), "n_random": 2, "max_new_tokens": 40, "n_boot": 50},
        patch_kw={"n_pairs": 3, "layers": [1], "max_new_tokens": 40, "n_boot": 50},
        compute_kw={"n_perm": 5, "n_boot": 50})
    assert set(res["compute"]) == {"teacher", "student_mastery"} and not res["skipped"]
    assert (tmp_path / "student_mastery__tokens.h5").exists()
    ref = compute.run(open_cache(caches["student_mastery"]), tasks=load_suite("organism"),
                      target="answer", n_perm=5, n_boot=50).tables["rise"]
    got = res["compute"]["student_mastery"].tables["rise"]
    assert got["rise"].tolist() == pytest.approx(ref["rise"].tolist())
    assert "teacher_mapped" in set(res["steer"]["student_mastery"].table["kind"])
    assert list(res["patch"]["student_mastery"].table["layer"].unique()) == [1]
