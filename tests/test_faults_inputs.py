"""Fault injection, hostile inputs: configs, output paths, model folders, devices, templates,
trace rows and CSV files. Each is one ``error:`` line, exit 2, before a model is loaded and
with nothing written.

Read-only outputs use a real read-only tmpfs mount (as root, permission bits are ignored, so
``chmod`` proves nothing); the test is skipped where mounting is not allowed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _faults import tmpfs, write_items, write_traces

from experiments.cli import main
from experiments.config_schema import inside_run
from mimicry.errors import InputError
from mimicry.traces import read_traces


def _err(capsys, rc: int, *words: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    for w in words:
        assert w in err, (w, err)
    return err


def _config(tmp_path: Path, model: str, top: str = "", models: str = "",
            gen: str = "") -> Path:
    items = write_items(tmp_path / "items.csv")
    p = tmp_path / "exp.toml"
    budget = "" if "max_new_tokens" in gen else "max_new_tokens = 4\n"
    p.write_text(f'name = "x"\nsuites = ["{items}"]\n{top}\n[generation]\n{budget}'
                 f'{gen}\n[[models]]\nkey = "teacher"\nname = "tiny"\nrole = "teacher"\n'
                 f'local_path = "{model}"\n{models}\n')
    return p


@pytest.mark.parametrize("top, models, gen, words", [
    ("", "", 'batch_size = 1.5', ["batch_size is 1.5 (float); expected a whole number"]),
    ("", "", 'max_new_tokens = "96"', ['max_new_tokens is \'96\' (str)']),
    ('seed = "zero"', "", "", ["seed is 'zero'"]),
    ("gpus = 0", "", "", ["gpus is 0; expected a whole number >= 1"]),
    ('suites = "organism"', "", "", ["suites is 'organism' (str); expected a list of strings"]),
    ("", "", "temperature = -1.0", ["temperature is -1.0; expected a number >= 0"]),
])
def test_config_types_and_ranges(top, models, gen, words, tmp_path, tiny_model_dir, capsys):
    cfg = _config(tmp_path, tiny_model_dir("qwen2"), top, models, gen)
    text = cfg.read_text()
    if top.startswith("suites"):  # replace the suites line instead of adding a second one
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("suites = ["))
    cfg.write_text(text)
    _err(capsys, main(["run", str(cfg), "--out", str(tmp_path / "run")]), *words)
    assert not (tmp_path / "run").exists()


def test_config_lists_every_error_one_per_line(tmp_path, tiny_model_dir, capsys):
    cfg = _config(tmp_path, tiny_model_dir("qwen2"), 'seed = "zero"\ngpus = 0', "",
                  "batch_size = 1.5")
    rc = main(["run", str(cfg), "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 3 and err[0].startswith("error: ")
    assert all(str(cfg) in ln for ln in err)


@pytest.mark.parametrize("field, value", [("key", "../../../pwned"), ("name", "../../../x")])
def test_config_keys_and_names_cannot_leave_the_run_folder(field, value, tmp_path,
                                                           tiny_model_dir, capsys):
    cfg = _config(tmp_path, tiny_model_dir("qwen2"))
    text = cfg.read_text()
    text = text.replace('key = "teacher"', f'key = "{value}"') if field == "key" else \
        text.replace('name = "x"', f'name = "{value}"')
    cfg.write_text(text)
    run = tmp_path / "a" / "b" / "run"
    args = ["run", str(cfg), "--stages", "generate"] + (["--out", str(run)] if field == "key"
                                                        else [])
    _err(capsys, main(args), field, "plain identifier" if field == "key" else "no '/' or '..'")
    assert not list(tmp_path.rglob("pwned*")) and not (tmp_path / "a").exists()
    with pytest.raises(InputError, match="outside the run folder"):
        inside_run(run, "traces", "../../../pwned.jsonl")
    assert inside_run(run, "traces", "t.jsonl") == run / "traces" / "t.jsonl"


@pytest.fixture
def bad_outs(tmp_path):
    """Return ``{kind: path}``: a directory, a path under a regular file."""
    d = tmp_path / "adir"
    d.mkdir()
    f = tmp_path / "afile"
    f.write_text("x")
    return {"directory": (d, "is a directory"), "under a file": (f / "o.jsonl", "is a file")}


def _commands(tmp_path: Path, model: str, out: Path) -> dict[str, list[str]]:
    items = write_items(tmp_path / "items.csv")
    traces = write_traces(tmp_path / "t.jsonl")
    return {
        "generate": ["generate", "--model", model, "--tasks", str(items), "--out", str(out),
                     "--max-new-tokens", "4", "--quiet"],
        "traces import": ["traces", "import", str(traces), "--out", str(out)],
        "scramble": ["scramble", str(traces), "--out", str(out)],
        "tasks export": ["tasks", "export", str(items), "--out", str(out)],
        "run": ["run", str(_config(tmp_path, model)), "--out", str(out), "--stages",
                "generate"],
        "capture": ["capture", "--model", model, "--traces", str(traces), "--out", str(out)],
    }


@pytest.mark.parametrize("cmd", ["generate", "traces import", "scramble", "tasks export", "run",
                                 "capture"])
def test_bad_output_paths(cmd, bad_outs, tmp_path, tiny_model_dir, capsys):
    for out, words in bad_outs.values():
        if cmd == "run" and words == "is a directory":
            continue  # a run's --out IS a folder
        args = _commands(tmp_path, tiny_model_dir("qwen2"), out)[cmd]
        _err(capsys, main(args), words)
    if cmd == "run":  # a run folder that is a regular file
        args = _commands(tmp_path, tiny_model_dir("qwen2"), tmp_path / "afile")[cmd]
        _err(capsys, main(args), "exists and is not a folder")
    assert list((tmp_path / "adir").iterdir()) == []  # nothing written into the directory


@pytest.mark.parametrize("cmd", ["generate", "traces import", "scramble", "tasks export", "run",
                                 "capture"])
def test_read_only_filesystem(cmd, tmp_path, tiny_model_dir, capsys):
    with tmpfs(tmp_path / "ro", "1m", ro=True) as mnt:
        out = mnt / ("run" if cmd == "run" else "out.jsonl")
        args = _commands(tmp_path, tiny_model_dir("qwen2"), out)[cmd]
        rc = main(args)
        _err(capsys, rc, "Read-only file system")


def test_demo_checks_its_out_first(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    _err(capsys, main(["demo", "--out", str(blocker / "demo")]), "is a file, not a folder")


@pytest.fixture
def no_tokenizer(tmp_path, tiny_model_dir):
    d = Path(shutil.copytree(tiny_model_dir("qwen2"), tmp_path / "half"))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (d / name).unlink(missing_ok=True)
    return d


@pytest.mark.parametrize("cmd", ["generate", "capture", "run"])
def test_model_folder_without_tokenizer(cmd, no_tokenizer, tmp_path, capsys):
    out = tmp_path / ("run" if cmd == "run" else "o.h5")
    args = _commands(tmp_path, str(no_tokenizer), out)[cmd]
    _err(capsys, main(args), "has no tokenizer files")
    assert not out.exists()


@pytest.mark.parametrize("cmd", ["generate", "capture"])
@pytest.mark.parametrize("extra, words", [
    (["--device", "tpu9"], "--device 'tpu9' is not a device torch knows"),
    (["--chat-template", "{% for x in %}"], "--chat-template is not a valid Jinja template"),
])
def test_device_and_template_checked_up_front(cmd, extra, words, tmp_path, tiny_model_dir,
                                              capsys):
    out = tmp_path / "o.jsonl"
    args = _commands(tmp_path, tiny_model_dir("qwen2"), out)[cmd] + extra
    _err(capsys, main(args), words)
    assert not out.exists()


@pytest.mark.parametrize("bad, words", [
    ({"meta": "x"}, "meta is 'x'"),
    ({"reasoning": 5}, "reasoning is 5"),
    ({"reasoning_tokens": float("inf")}, "reasoning_tokens is inf"),
    ({"reasoning_tokens": -5}, "reasoning_tokens is -5"),
    ({"reasoning_tokens": 2.5}, "reasoning_tokens is 2.5"),
    ({"correct": "maybe"}, "correct is 'maybe'"),
    ({"seconds": "fast"}, "seconds is 'fast'"),
    ({"model": ["a"]}, "model is ['a']"),
])
def test_trace_rows_are_type_checked(bad, words, tmp_path, capsys):
    p = tmp_path / "t.jsonl"
    good = {"item_id": "a", "model": "m", "reasoning": "x y", "reasoning_tokens": 2}
    p.write_text(json.dumps(good) + "\n" + json.dumps({**good, "item_id": "b", **bad}) + "\n")
    with pytest.raises(InputError, match="row 2") as e:
        read_traces(p)
    assert words in e.value.render()
    _err(capsys, main(["scramble", str(p), "--out", str(tmp_path / "s.jsonl")]), words)


@pytest.mark.parametrize("text, words", [
    ("item_id,task,item_id,human_rt_ms\na,t,b,900\n", "appear twice in the header"),
    ("item_id,task,human_rt_ms\na,t,900,extra\n", "4 fields but the header has 3 columns"),
])
def test_csv_duplicate_header_and_extra_fields(text, words, tmp_path, capsys):
    p = tmp_path / "items.csv"
    p.write_text(text)
    _err(capsys, main(["tasks", "check", str(p)]), words)
    t = tmp_path / "traces.csv"
    t.write_text(text.replace("task", "model").replace("human_rt_ms", "reasoning_tokens"))
    _err(capsys, main(["traces", "import", str(t), "--out", str(tmp_path / "o.jsonl")]), words)


@pytest.mark.parametrize("cmd", ["scramble", "tasks export", "traces import"])
def test_existing_output_needs_force(cmd, tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "exists.jsonl"
    out.write_text("keep\n")
    args = _commands(tmp_path, tiny_model_dir("qwen2"), out)[cmd]
    _err(capsys, main(args), "already exists", "--force")
    assert out.read_text() == "keep\n"
    assert main([*args, "--force"]) == 0
    assert out.read_text() != "keep\n"
