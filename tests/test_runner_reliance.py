"""The runner's reliance stage on a tiny random model: files, notes, resume, probe glue.

The models' own traces are written here (imported), so which items were right is known; the
tiny model answers after its scrambled reasoning (random weights: its answers are junk, but
every one is scored), and the reliance table is checked against counts made here.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.config import config_from_dict
from experiments.layout import RunFolder
from experiments.runner import _needs_weights, run_experiment
from mimicry.traces import read_traces

N = 12
REASONING = "Step 1: take {a} and add {b}\nStep 2: that gives {c}\nso the sum is {c}"


def reliance_paths(run, key):
    """Return (own traces scrambled, answers after them) of ``key`` (RunFolder's paths)."""
    f = RunFolder(run)
    return f.self_scrambled(key), f.after_scrambled(key)


def make_inputs(root: Path, model_dir: str, api: bool = True) -> dict:
    """Write 12 items and own traces (teacher, student, a no-reasoning student, base, api)."""
    rng = np.random.default_rng(0)
    with open(root / "items.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "task", "prompt", "answer", "human_rt_ms"])
        for i in range(N):
            w.writerow([f"i{i}", "add", f"What is {i} plus {i + 1}?", str(2 * i + 1),
                        900 + 50 * i])

    def write(key: str, reasoning: bool, truncate: int = 0) -> str:
        p = root / f"{key}.jsonl"
        with open(p, "w") as f:
            for i in range(N):
                cut = i < truncate
                f.write(json.dumps({
                    "item_id": f"i{i}", "model": f"ext/{key}", "task": "add",
                    "prompt": f"What is {i} plus {i + 1}?",
                    "reasoning": REASONING.format(a=i, b=i + 1, c=2 * i + 1) if reasoning
                    else "",
                    "answer_text": "" if cut else str(2 * i + 1),
                    "correct": bool(not cut and rng.random() < 0.8),
                    "reasoning_tokens": 20 + i if reasoning else 0,
                    "finish_reason": "length" if cut else "stop"}) + "\n")
        return str(p)

    local = {"local_path": model_dir, "dtype": "float32", "capture": False, "generate": False}
    models = [
        {"key": "teacher", "name": "ext/teacher", "role": "teacher",
         "traces": write("teacher", True, truncate=1), **local},
        {"key": "student", "name": "ext/student", "role": "student",
         "traces": write("student", True), **local},
        {"key": "nothink", "name": "ext/nothink", "role": "student",
         "traces": write("nothink", False), **local},
        {"key": "base", "name": "ext/base", "role": "base", "traces": write("base", False),
         **local},
    ]
    if api:  # traces from an API, no weights here
        models.append({"key": "api", "name": "ext/api", "role": "student", "generate": False,
                       "capture": False, "traces": write("api", True)})
    return {"name": "rel", "suites": [str(root / "items.csv")], "out": str(root / "run"),
            "generation": {"batch_size": 4}, "reliance": {"max_answer_tokens": 3},
            "probes": {"names": ["reliance"], "options": {"reliance": {"n_boot": 200}}},
            "models": models}


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("reliance")
    cfg = config_from_dict(make_inputs(root, tiny_model_dir("qwen2")))
    status = run_experiment(cfg, stages=["generate", "reliance", "probe"])
    return root, cfg, status


def test_stage_writes_both_files_and_notes_what_it_skipped(partial_run):
    root, cfg, status = partial_run
    run = root / "run"
    st = status["reliance"]
    notes = " | ".join(st["notes"])
    # the API-only student cannot be answered with: noted, and the stage is not complete
    assert st["status"] == "partial" and not (run / ".stages" / "reliance.json").exists()
    assert "api: no local weights" in notes and "set local_path" in notes
    assert "nothink: skipped, its traces have no reasoning" in notes
    assert "teacher: 1 traces cut before </think>" in notes
    assert "base" not in notes  # not a reasoning role: not tested, nothing to say
    for key in ("nothink", "base", "api"):
        assert not any(p.exists() for p in reliance_paths(run, key)), key
    for key, answered in (("teacher", N - 1), ("student", N)):
        scrambled, forced = reliance_paths(run, key)
        own = {t.item_id: t for t in read_traces(run / "traces" / f"{key}.jsonl")}
        sc = read_traces(scrambled)
        assert [t.item_id for t in sc] == list(own)
        assert all(t.meta["scrambled"]["mode"] == "within" and t.meta["scrambled"]["seed"] == 0
                   for t in sc)
        # form kept (same step markers and line count), content moved
        assert all(t.reasoning.count("\n") == own[t.item_id].reasoning.count("\n")
                   and t.reasoning.startswith("Step 1:") for t in sc)
        assert sum(t.reasoning != own[t.item_id].reasoning for t in sc) >= N - 2
        fo = read_traces(forced)
        assert len(fo) == answered and {t.model for t in fo} == {key}
        assert all(t.meta["max_answer_tokens"] == 3 and t.answer_tokens <= 3 for t in fo)
        # answered after the scrambled text, not the own one
        by_id = {t.item_id: t for t in sc}
        assert all(t.reasoning == by_id[t.item_id].reasoning for t in fo)


def control_paths(run, key):
    """Return [(control, given traces, answers after them)] of ``key`` (RunFolder's paths)."""
    f = RunFolder(run)
    return [(c, f.self_control(key, c), f.after_control(key, c)) for c in ("empty", "filler")]


def test_stage_answers_after_both_controls_as_answer_after_does_directly(partial_run, tmp_path):
    from experiments.support import load_suites, model_spec
    from mimicry.generate.forced import answer_after
    from mimicry.models import load_tokenizer
    from mimicry.traces.controls import control_file

    root, cfg, _ = partial_run
    run = root / "run"
    suite = load_suites(cfg)
    for key in ("nothink", "base", "api"):
        assert not any(p.exists() for _, *ps in control_paths(run, key) for p in ps), key
    for key, answered in (("teacher", N - 1), ("student", N)):
        m = next(x for x in cfg.models if x.key == key)
        own = run / "traces" / f"{key}.jsonl"
        tok = load_tokenizer(model_spec(m))
        for c, given, forced in control_paths(run, key):
            # independently: the control file from the own traces, answered after directly
            ref_in = control_file(own, tmp_path / f"{key}_{c}.jsonl", c, tokenizer=tok)
            answer_after(model_spec(m), ref_in, suite, tmp_path / f"{key}_{c}_after.jsonl",
                         name=key, batch_size=4, max_answer_tokens=3, progress=False)
            ref = read_traces(tmp_path / f"{key}_{c}_after.jsonl")
            got = read_traces(forced)
            assert len(got) == answered == len(ref)
            fields = ("item_id", "model", "reasoning", "answer_text", "correct",
                      "answer_tokens", "finish_reason")
            assert ([[getattr(t, f) for f in fields] for t in got]
                    == [[getattr(t, f) for f in fields] for t in ref]), (key, c)
            g = read_traces(given)
            assert all(t.meta["control"] == c for t in g) and len(g) == N
            by_own = {t.item_id: t for t in read_traces(own)}
            if c == "empty":
                assert all(t.reasoning == "" for t in g)
            else:  # the filler is as long as the own reasoning, in the model's tokens
                assert all(len(tok(t.reasoning, add_special_tokens=False)["input_ids"])
                           == by_own[t.item_id].reasoning_tokens for t in g)
                assert all(set(t.reasoning.split()) <= {"."} for t in g)


def test_weights_check_covers_the_models_the_stage_loads(partial_run):
    root, cfg, _ = partial_run
    # before any traces exist every reasoning role with weights is checked; once nothink's
    # traces show no reasoning, it is not; base (role) and api (no weights) never are
    assert [m.key for m in _needs_weights(cfg, root / "nowhere", ["reliance"])] == [
        "teacher", "student", "nothink"]
    assert [m.key for m in _needs_weights(cfg, root / "run", ["reliance"])] == [
        "teacher", "student"]
    assert list(_needs_weights(cfg, root / "run", ["align", "probe"])) == []


def test_probe_reads_traces_and_matches_counts_made_here(partial_run):
    root, _, status = partial_run
    run = root / "run"
    assert status["probe"]["status"] == "done", status["probe"]  # no caches: not blocked
    t = pd.read_csv(run / "probes" / "reliance.csv")
    assert set(t.model) == {"teacher", "student"}  # keys, though the traces say ext/...
    assert (run / "probes" / "reliance__all.png").exists()
    for key in ("teacher", "student"):
        own = pd.read_json(run / "traces" / f"{key}.jsonl", lines=True)
        own = own[~((own.finish_reason == "length") & (own.answer_text == ""))]
        forced = pd.read_json(reliance_paths(run, key)[1], lines=True)
        m = own.merge(forced, on="item_id", suffixes=("_own", "_forced"))
        a, b = m.correct_own.to_numpy(bool), m.correct_forced.to_numpy(bool)
        row = t[(t.model == key) & (t.task == "all")].iloc[0]
        assert row.n == len(m) == (N - 1 if key == "teacher" else N)
        assert row.acc_own == pytest.approx(a.mean())
        assert row.acc_forced == pytest.approx(b.mean())
        assert row.reliance == pytest.approx(a.mean() - b.mean())
        k, n_disc = int((a & ~b).sum()), int((a ^ b).sum())
        assert (row.own_only, row.forced_only) == (k, n_disc - k)
        p = stats.binomtest(k, n_disc, 0.5).pvalue if n_disc else 1.0  # < 25 discordant
        assert row.p == pytest.approx(p)
        assert row.ci_low <= row.reliance <= row.ci_high


def test_resume_skips_and_changed_settings_redo_the_answers(tmp_path, tiny_model_dir, caplog):
    data = make_inputs(tmp_path, tiny_model_dir("qwen2"), api=False)
    run = tmp_path / "run"
    st = run_experiment(config_from_dict(data), stages=["generate", "reliance"])
    assert st["reliance"]["status"] == "done"
    marker = json.loads((run / ".stages" / "reliance.json").read_text())
    assert marker["config_hash"] == config_from_dict(data).stage_hash("reliance")
    files = [p for k in ("teacher", "student") for p in reliance_paths(run, k)]
    files += [p for k in ("teacher", "student") for _, *ps in control_paths(run, k) for p in ps]
    assert all(p.exists() for p in files)
    before = {p: p.read_bytes() for p in files}
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    # same config: the marker says done, nothing is touched
    caplog.set_level(logging.INFO)
    st = run_experiment(config_from_dict(data), stages=["generate", "reliance"])
    assert st["reliance"]["status"] == "skipped (done)"
    assert "already done (config hash matches): generate, reliance" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    # forced: the stage runs, but every answer is already there (answer_after resumes)
    st = run_experiment(config_from_dict(data), stages=["reliance"], force=True)
    assert st["reliance"]["status"] == "done"
    assert {p: p.read_bytes() for p in files} == before
    # a new answer budget: the old answers are stale, made anew with it
    data["reliance"] = {"max_answer_tokens": 2}
    st = run_experiment(config_from_dict(data), stages=["generate", "reliance"])
    assert st["generate"]["status"] == "skipped (done)"
    assert any("made with other settings" in n for n in st["reliance"]["notes"])
    sc, fo = reliance_paths(run, "teacher")
    assert sc.read_bytes() == before[sc]  # the scrambled text did not change
    assert {t.meta["max_answer_tokens"] for t in read_traces(fo)} == {2}
    assert len(read_traces(fo)) == N - 1
    for _, given, after in control_paths(run, "teacher"):  # the controls' answers too
        assert given.read_bytes() == before[given]
        assert {t.meta["max_answer_tokens"] for t in read_traces(after)} == {2}
    controls = {p: p.read_bytes() for _, *ps in control_paths(run, "teacher") for p in ps}
    # another scramble mode: the scrambled traces are rewritten and answered after anew
    data["reliance"] = {"max_answer_tokens": 2, "mode": "across"}
    st = run_experiment(config_from_dict(data), stages=["generate", "reliance"])
    assert any("rewritten" in n for n in st["reliance"]["notes"])
    new = read_traces(sc)
    assert {t.meta["scrambled"]["mode"] for t in new} == {"across"}
    by_id = {t.item_id: t.reasoning for t in new}
    assert all(t.reasoning == by_id[t.item_id] for t in read_traces(fo))
    assert len(read_traces(fo)) == N - 1
    # the controls do not depend on the scramble mode: kept as they were
    assert {p: p.read_bytes() for p in controls} == controls
    # other own traces: the control traces are stale, rewritten and answered after anew
    own = run / "traces" / "teacher.jsonl"
    rows = [json.loads(x) for x in own.read_text().splitlines()]
    own.write_text("".join(json.dumps({**r, "reasoning_tokens": r["reasoning_tokens"] + 1})
                           + "\n" for r in rows))
    from experiments.stage_reliance import stage_reliance
    from experiments.support import load_suites

    cfg = config_from_dict(data)
    res = stage_reliance(cfg, run, load_suites(cfg))
    assert any("teacher__self_filler.jsonl was made from other traces" in n for n in res.notes)
    filler = read_traces(RunFolder(run).self_control("teacher", "filler"))
    assert [t.reasoning_tokens for t in filler] == [r["reasoning_tokens"] + 1 for r in rows]


def test_unloadable_weights_are_noted_and_the_stage_is_partial(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    src = Path(tiny_model_dir("qwen2"))
    for f in src.iterdir():  # config and tokenizer, but no weights
        if "safetensors" not in f.name and f.is_file():
            (broken / f.name).write_bytes(f.read_bytes())
    data = make_inputs(tmp_path, str(broken), api=False)
    data["models"] = [m for m in data["models"] if m["key"] in ("teacher", "base")]
    st = run_experiment(config_from_dict(data), stages=["generate", "reliance"])
    assert st["reliance"]["status"] == "unavailable"
    assert any(n.startswith("teacher: could not be loaded") for n in st["reliance"]["notes"])
    assert not reliance_paths(tmp_path / "run", "teacher")[1].exists()


def test_model_whose_every_trace_was_cut_is_skipped_with_a_note(tmp_path, tiny_model_dir):
    from experiments.stage_reliance import stage_reliance
    from experiments.support import load_suites

    data = make_inputs(tmp_path, tiny_model_dir("qwen2"), api=False)
    data["models"] = [m for m in data["models"] if m["key"] == "teacher"]
    cfg = config_from_dict(data)
    own = tmp_path / "run" / "traces" / "teacher.jsonl"
    own.parent.mkdir(parents=True)
    rows = [json.loads(x) for x in Path(data["models"][0]["traces"]).read_text().splitlines()]
    own.write_text("".join(json.dumps({**r, "answer_text": "", "finish_reason": "length"})
                           + "\n" for r in rows))
    res = stage_reliance(cfg, tmp_path / "run", load_suites(cfg))
    assert res.status == "done"  # nothing the stage could do: not retried forever
    assert res.notes[0].startswith("teacher: skipped, nothing in "
                                   "teacher__self_scrambled.jsonl to answer after")
    assert f"{N} cut before </think>" in res.notes[0]
    assert not reliance_paths(tmp_path / "run", "teacher")[1].exists()


def test_controls_off_writes_none_and_a_bad_name_is_one_config_line(tmp_path, tiny_model_dir):
    from mimicry.errors import InputError

    data = make_inputs(tmp_path, tiny_model_dir("qwen2"), api=False)
    data["models"] = [m for m in data["models"] if m["key"] == "student"]
    data["reliance"] = {"max_answer_tokens": 3, "controls": []}
    st = run_experiment(config_from_dict(data), stages=["generate", "reliance"])
    assert st["reliance"]["status"] == "done"
    run = tmp_path / "run"
    assert all(p.exists() for p in reliance_paths(run, "student"))
    assert not any(p.exists() for _, *ps in control_paths(run, "student") for p in ps)
    data["reliance"] = {"controls": ["empty", "blank"]}
    with pytest.raises(InputError) as e:
        config_from_dict(data)
    msg = e.value.render()
    assert "[reliance] controls ['empty', 'blank']: unknown ['blank']" in msg
    assert "use some of empty, filler" in msg and "\n" not in msg.strip()
