"""Probes through a real HDF5 cache (tiny model capture) and the `mimicry probe`/`scramble` CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from mimicry import open_cache

WORDS = "the mall is north of station bar south east west step first answer so".split()
N = 30


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory, tiny_model_dir):
    from mimicry.capture import CaptureConfig, capture

    tmp = tmp_path_factory.mktemp("probe-cli")
    rs = random.Random(0)
    rows, items = [], []
    for i in range(N):
        k = rs.randint(3, 30)
        r = " ".join(rs.choice(WORDS) for _ in range(k))
        rows.append(dict(item_id=f"i{i}", model="teacher", task="t", prompt=f"Question {i}?",
                         reasoning=r, answer_text="north", reasoning_tokens=k,
                         finish_reason="stop"))
        items.append({"item_id": f"i{i}", "task": "t", "human_rt_ms": 1000 + 50 * k
                      + rs.random() * 300})
    traces = tmp / "traces.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(items).to_csv(tmp / "items.csv", index=False)
    out = capture(tiny_model_dir("qwen2"), traces, tmp / "c.h5", CaptureConfig(),
                  progress=False, log=lambda s: None)
    return out, tmp


def test_probes_read_a_real_cache(real_cache):
    from probes import difficulty, entropy, similarity
    from probes.base import cache_layers

    path, tmp = real_cache
    c = open_cache(path)
    assert cache_layers(c) == list(range(c.n_layers + 1))
    res = difficulty.run(c, tasks=str(tmp / "items.csv"), sites=["mean_reasoning"], n_perm=5,
                         n_boot=50, progress_bar=False)
    assert len(res.table) == c.n_layers + 1 and res.meta["n"] == N
    # the reasoning length drives RT here: the length-only baseline sees it
    assert res.table["length_rho"].iloc[0] > 0.5
    ent = entropy.run(c, tasks=str(tmp / "items.csv"), n_boot=50, n_perm=50)
    assert ent.tables["heads"].shape[0] == c.n_layers * c.n_heads
    sim = similarity.run(c, c, n_perm=5, n_boot=5, progress_bar=False, procrustes=False)
    # layer 0 at last_prompt is the same template token for every item: CKA undefined (NaN)
    np.testing.assert_allclose(np.diag(sim.arrays["cka"])[1:], 1.0, atol=1e-9)
    assert np.isnan(sim.arrays["cka"][0, 0])
    d0 = difficulty.run(c, tasks=str(tmp / "items.csv"), sites=["last_prompt"], layers=[0],
                        n_perm=3, n_boot=20, progress_bar=False)
    assert np.isnan(d0.table["rho"].iloc[0])


def test_cli_difficulty_and_errors(real_cache, tmp_path, capsys):
    path, tmp = real_cache
    out = tmp_path / "d"
    rc = main(["probe", "difficulty", f"tiny={path}", "--tasks", str(tmp / "items.csv"),
               "--out", str(out), "--n-perm", "5", "--n-boot", "50", "--site", "last_prompt"])
    assert rc == 0
    t = pd.read_csv(out / "difficulty.csv")  # the format `mimicry run` writes: a unit column
    assert set(t["model"]) == {"tiny"} == set(t["unit"]) and (out / "difficulty__tiny.png").exists()
    assert json.loads((out / "difficulty.json").read_text())["seed"] == 0
    capsys.readouterr()
    bad = tmp_path / "bad"
    for argv, msg in [
        (["probe", "difficulty", str(tmp_path / "nope.h5"), "--out", str(bad)], "not found"),
        (["probe", "difficulty", str(path), "--out", str(bad)], "needs --tasks"),
        (["probe", "similarity", str(path), "--out", str(bad)], "two caches"),
        (["probe", "planning", str(path), "--teacher", "x", "--out", str(bad)], "--teacher"),
        (["probe", "ablation", str(path), "--tasks", str(tmp / "items.csv"), "--n-perm", "5",
          "--out", str(bad)], "has no option(s) ['n_perm']"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and msg in err and "\n" not in err
    assert not bad.exists()


def test_cli_scramble(tmp_path, capsys):
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps({"item_id": "a", "model": "m", "reasoning":
                               "Step 1: add 3 and 4\nStep 2: get 7 now"}) + "\n")
    assert main(["scramble", str(src), "--out", str(tmp_path / "s.jsonl"), "--seed", "2"]) == 0
    row = json.loads((tmp_path / "s.jsonl").read_text())
    assert row["meta"]["scrambled"]["seed"] == 2 and row["reasoning"].startswith("Step 1:")
    assert main(["scramble", str(src), "--out", str(src)]) == 2
    assert Path(src).read_text().startswith('{"item_id": "a"')


def test_cli_verdict_writes_every_component(real_cache, tmp_path, capsys):
    path, tmp = real_cache
    out = tmp_path / "v"
    rc = main(["probe", "verdict", f"teacher={path}", f"student={path}", "--tasks",
               str(tmp / "items.csv"), "--out", str(out), "--n-perm", "3", "--n-boot", "30"])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    for stem in ("verdict", "planning", "difficulty", "similarity", "entropy"):
        assert f"{stem}.csv" in names, names
    assert set(pd.read_csv(out / "difficulty.csv")["unit"]) == {"teacher", "student"}
    calls = pd.read_csv(out / "verdict_calls.csv")
    assert list(calls["student"]) == ["student"] and "call" in capsys.readouterr().out
    # --roles: the base is never a student; a saved reliance.csv beside is picked up
    pd.DataFrame({"model": ["student", "teacher"], "task": "all", "n": 40,
                  "acc_own": [0.8, 0.9], "acc_forced": [0.5, 0.4], "reliance": [0.3, 0.5],
                  "ci_low": [0.1, 0.2], "ci_high": [0.5, 0.7], "p": 0.01,
                  "test": "chi2-cc"}).to_csv(
        out / "reliance.csv", index=False)
    rc = main(["probe", "verdict", f"teacher={path}", f"student={path}", f"base={path}",
               "--roles", "teacher=teacher,student=student,base=base", "--tasks",
               str(tmp / "items.csv"), "--out", str(out), "--n-perm", "3", "--n-boot", "30"])
    assert rc == 0
    calls = pd.read_csv(out / "verdict_calls.csv")
    assert list(calls["student"]) == ["student"]
    ev = pd.read_csv(out / "verdict.csv").set_index("evidence")
    assert ev.loc["reliance", "value"] == 0.3 and ev.loc["teacher_reliance", "value"] == 0.5
    assert main(["probe", "verdict", f"teacher={path}", "--roles", "teacher=nope",
                 "--out", str(out)]) == 2
