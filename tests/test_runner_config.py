"""Experiment configs, shapes and the dry-run cost estimate, against hand computations."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.config import config_from_dict, load_config
from experiments.cost import cache_bytes_per_item, estimate_model, human_bytes
from experiments.runner import parse_stages, run_experiment
from experiments.shapes import KNOWN_SHAPES, shape_from_config_json
from mimicry.errors import InputError, ModelNotFoundError

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments" / "configs"

# Published sizes (model cards / hub "Model size"): the shapes must imply them.
PUBLISHED_PARAMS = {
    "Qwen/Qwen2.5-Math-1.5B": 1.54e9,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": 1.78e9,
    "Qwen/Qwen2.5-Math-7B": 7.62e9,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": 7.62e9,
    "Qwen/Qwen2.5-32B": 32.8e9,
    "Qwen/QwQ-32B": 32.8e9,
    "meta-llama/Llama-3.1-8B": 8.03e9,
}


def items_file(tmp_path: Path, n_per_task: int = 6, prompt_len: int = 300) -> Path:
    """Write a small user items file (two tasks, RT norms)."""
    p = tmp_path / "items.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "task", "prompt", "answer", "human_rt_ms"])
        for t in ("a", "b"):
            for i in range(n_per_task):
                w.writerow([f"{t}{i}", t, "x" * prompt_len, "1", 1000 + 100 * i])
    return p


@pytest.mark.parametrize("name,published", sorted(PUBLISHED_PARAMS.items()))
def test_shapes_imply_published_sizes(name, published):
    assert KNOWN_SHAPES[name].params == pytest.approx(published, rel=0.005)


def test_shape_from_config_json_matches_model(tiny_model_dir):
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM

    d = tiny_model_dir("qwen2")
    shape = shape_from_config_json(d)
    model = AutoModelForCausalLM.from_pretrained(d)
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert (shape.layers, shape.hidden, shape.kv_heads) == (2, 64, 2)


def test_every_experiment_config_loads():
    names = sorted(p.stem for p in EXPERIMENTS.glob("*.toml"))
    assert names == ["llama-8b", "organism", "organism-v2", "qwen-1.5b", "qwen-32b", "qwen-7b"]
    hub = set()
    for p in EXPERIMENTS.glob("*.toml"):
        cfg = load_config(p)
        hub |= {m.name for m in cfg.models if not m.is_organism}
        for m in cfg.models:
            if not m.is_organism:
                assert m.dtype == "bfloat16"
                assert m.name in KNOWN_SHAPES, m.name  # dry-run works without downloads
        if cfg.name == "qwen-32b":
            assert {m.device_map for m in cfg.models} == {"auto"}
    assert hub == set(PUBLISHED_PARAMS) | {"deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
                                           "agentica-org/DeepScaleR-1.5B-Preview",
                                           "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"}


def test_demo_config_is_package_data():
    from importlib.resources import files

    from experiments.runner import organism_config

    toml = files("experiments") / "configs" / "organism.toml"  # what a wheel ships
    assert toml.is_file()
    assert organism_config().to_dict() == load_config(EXPERIMENTS / "organism.toml").to_dict()


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('name = "x"\n[generation]\nmax_new_token = 5\n'
                 '[[models]]\nname = "Qwen/Qwen2.5-Math-7B"\nrole = "base"\n')
    with pytest.raises(InputError, match=r"c.toml: unknown key 'max_new_token' in \[generation\]"):
        load_config(p)
    assert main(["run", str(p), "--dry-run"]) == 2


def test_dry_run_numbers_match_hand_computation(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    items = items_file(tmp_path, n_per_task=6, prompt_len=300)
    cfg = config_from_dict({
        "name": "hand", "suites": [str(items)], "out": str(tmp_path / "run"),
        "generation": {"max_new_tokens": 1000, "batch_size": 4},
        "capture": {"entropy": "exact", "store_dtype": "float16"},
        "models": [{"key": "teacher", "name": "Qwen/Qwen2.5-Math-7B", "role": "teacher"},
                   {"key": "student", "name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
                    "role": "student"}]})
    status = run_experiment(cfg, dry_run=True)
    out = caplog.text
    assert status == {s: "planned" for s in ("generate", "align", "capture", "reliance",
                                             "intervene", "probe", "report")}
    assert not (tmp_path / "run").exists()  # a dry run writes nothing
    # Hand computation for Qwen2.5-Math-7B: 28 layers, d 3584, 28 heads, 4 KV heads × 128,
    # MLP 18944, 12 items, prompt ≈ 300 chars / 3 + 32 template tokens = 132, seq 1132.
    n, seq = 12, 132 + 1000
    weights = 7_615_616_512 * 2
    kv = 2 * 28 * 4 * 128 * 2 * seq * 4
    work = 29 * seq * 3584 * 2 + 3 * seq * 18944 * 2
    per_item = 5 * 29 * 3584 * 2 + 3 * 28 * 28 * 4 * 3
    est = estimate_model(cfg, cfg.models[0], KNOWN_SHAPES["Qwen/Qwen2.5-Math-7B"], n, 132)
    assert est.tokens_to_generate == n * 1000
    assert est.generate_gpu_bytes == weights + kv
    assert est.capture_gpu_bytes == weights + work
    assert cache_bytes_per_item(cfg, KNOWN_SHAPES["Qwen/Qwen2.5-Math-7B"]) == per_item
    assert est.cache_bytes == n * per_item
    student = estimate_model(cfg, cfg.models[1], KNOWN_SHAPES["Qwen/Qwen2.5-Math-7B"], n, 132)
    assert student.captures == 3 and student.cache_bytes == 3 * n * per_item  # + cross
    line = next(x for x in out.splitlines() if x.startswith("teacher "))
    assert human_bytes(weights + kv) in line and human_bytes(n * per_item) in line
    assert "12.0k" in line  # tokens to generate
    assert "≤ 24.0k tokens to generate" in out
    assert "stages to run: generate, align, capture, reliance, intervene, probe, report" in out
    # intervene (default probes and options), the student only: steering 6 held-out items ×
    # (1 + 4 α × (3 + 20 random) directions) = 558 generations of ≤ 1132 tokens; patching
    # 2 directions × 24 pairs × (29 layers + 2 own runs) = 1488 generations
    st_min = 558 * seq / (1500 * 7e9 / 7_615_616_512) / 60
    assert (f"steer student: 558 generations (6 held-out items × 93 runs), ≤ "
            f"{558 * seq / 1e3:.1f}k tokens (prefill + decode forwards), ≤ {st_min:.1f} GPU-min"
            in out)
    assert (f"patch student: 1.5k generations (2 directions × 24 pairs × (29 layers + 2 own "
            f"runs)), ≤ {1488 * seq / 1e6:.2f}M tokens + 48 prompt forwards" in out)
    assert "steer teacher" not in out and "patch teacher" not in out
    # reliance: each of the 2 reasoning models answers 3 times (after its scrambled
    # reasoning, an empty and a filler one: the default controls), each time prefilling
    # ≤ 12 × (132 + 1000) tokens and decoding 12 × 2 × 32 answer tokens (the "auto" default:
    # 2 × the longest own answer, assumed 32 tokens before any trace exists; never more
    # than 2 × max_new_tokens)
    assert (est.reliance_prefill_tokens, est.reliance_decode_tokens) == (3 * n * seq, 3 * n * 64)
    assert (f"reliance: ≤ {2 * 3 * n * seq / 1e3:.1f}k tokens prefilled (prompt + own "
            f"reasoning) + {2 * 3 * n * 64 / 1e3:.1f}k decoded (answers × 3 (after the "
            "scrambled reasoning, after an empty one, after a filler one), " in out)
    e2 = estimate_model(cfg, cfg.models[0], KNOWN_SHAPES["Qwen/Qwen2.5-Math-7B"], n, 132,
                        longest_answer=10)
    assert e2.reliance_decode_tokens == 3 * n * 20  # read from the model's own traces
    import dataclasses

    off = dataclasses.replace(cfg, reliance=dataclasses.replace(cfg.reliance, controls=[]))
    e3 = estimate_model(off, off.models[0], KNOWN_SHAPES["Qwen/Qwen2.5-Math-7B"], n, 132)
    assert (e3.reliance_prefill_tokens, e3.reliance_decode_tokens) == (n * seq, n * 64)
    # wall clock: the stated assumptions, by hand (7.6B params → 7e9/7.6e9 of the 7B speed)
    from experiments.cost import DECODE_TOK_S_7B, PREFILL_TOK_S_7B, wall_clock_hours

    scale = 7e9 / 7_615_616_512
    want = (n * 1000 / (DECODE_TOK_S_7B * scale) + n * seq / (PREFILL_TOK_S_7B * scale)
            + 3 * n * seq / (PREFILL_TOK_S_7B * scale)
            + 3 * n * 64 / (DECODE_TOK_S_7B * scale)) / 3600
    assert wall_clock_hours(est, ["generate", "capture", "reliance"]) == pytest.approx(want)
    assert "wall clock ≈" in out and "(bfloat16; split" in out  # the models' dtype
    assert "for teacher, student;" in out


def test_reliance_section_is_validated_and_hashed(tmp_path):
    items = items_file(tmp_path)
    base = {"name": "r", "suites": [str(items)],
            "models": [{"name": "Qwen/Qwen2.5-Math-7B", "role": "teacher"},
                       {"name": "Qwen/Qwen2.5-Math-1.5B", "role": "base"},
                       {"key": "api", "name": "x/y", "role": "student", "generate": False,
                        "capture": False, "traces": "t.jsonl"}]}
    cfg = config_from_dict(base)
    assert (cfg.reliance.max_answer_tokens, cfg.reliance.mode) == ("auto", "within")
    # the base (no reasoning role) and an API-only student (no weights) are not loaded
    assert [m.key for m in cfg.reliance_models()] == ["teacher"]
    p = tmp_path / "c.toml"
    p.write_text('name = "x"\n[reliance]\nmax_answer_token = 5\n'
                 '[[models]]\nname = "Qwen/Qwen2.5-Math-7B"\nrole = "teacher"\n')
    with pytest.raises(InputError, match=r"c.toml: unknown key 'max_answer_token' in "
                                         r"\[reliance\].*valid keys: backend, controls, max_answer_tokens, "
                                         r"mode"):
        load_config(p)
    for bad, msg in (({"mode": "shuffle"}, "mode 'shuffle' is not valid"),
                     ({"max_answer_tokens": 0}, "max_answer_tokens must be \"auto\" or a whole"),
                     ({"max_answer_tokens": "lots"}, "got 'lots'"),
                     ({"controls": ["empty", "noise"]}, r"controls \['empty', 'noise'\]: "
                                                        r"unknown \['noise'\].*empty, filler"),
                     ({"controls": ["empty", "empty"]}, "named twice"),
                     ({"controls": "empty"}, "controls is 'empty'.*expected a list")):
        with pytest.raises(InputError, match=msg):
            config_from_dict({**base, "reliance": bad})
    assert parse_stages("probe,reliance") == ["reliance", "probe"]  # pipeline order
    assert cfg.reliance.controls == ["empty", "filler"]  # both by default
    for change in ({"max_answer_tokens": 32}, {"controls": []}, {"controls": ["empty"]}):
        other = config_from_dict({**base, "reliance": change})
        # the setting decides the reliance stage and everything after it, nothing before it
        for stage, same in (("capture", True), ("reliance", False), ("probe", False),
                            ("report", False)):
            assert (cfg.stage_hash(stage) == other.stage_hash(stage)) is same, (change, stage)


def test_dry_run_warns_when_context_too_short(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    items = items_file(tmp_path)
    cfg = config_from_dict({"name": "ctx", "suites": [str(items)],
                            "generation": {"max_new_tokens": 32768},
                            "models": [{"name": "Qwen/Qwen2.5-Math-1.5B", "role": "base"}]})
    run_experiment(cfg, dry_run=True, out=tmp_path / "r")
    assert "exceeds the model's max_position_embeddings 4096" in caplog.text


def test_dry_run_checks_per_gpu_memory_against_the_declared_gpu(tmp_path, capsys):
    items = items_file(tmp_path)
    base = {"name": "fit", "suites": [str(items)], "generation": {"max_new_tokens": 8192},
            "models": [{"name": "Qwen/Qwen2.5-32B", "role": "base", "device_map": "auto"}]}
    cfg = config_from_dict(base)
    assert cfg.gpu_memory_gb == 80
    e = estimate_model(cfg, cfg.models[0], KNOWN_SHAPES["Qwen/Qwen2.5-32B"], 10, 100)
    need = e.generate_gpu_bytes / 1e9
    assert need > 72  # 32B bf16 weights alone are ~65 GB
    w = [x for x in e.warnings if x.startswith("generation needs")]
    assert w and f"{need:.1f} GB per GPU" in w[0] and "set gpus = 2" in w[0]
    run_experiment(cfg, dry_run=True, out=tmp_path / "r")
    assert "more than the 80 GB declared" in capsys.readouterr().out
    big = config_from_dict({**base, "gpu_memory_gb": 141})
    e = estimate_model(big, big.models[0], KNOWN_SHAPES["Qwen/Qwen2.5-32B"], 10, 100)
    assert not [x for x in e.warnings if "needs" in x]


def test_multi_gpu_split(tmp_path):
    items = items_file(tmp_path)
    base = {"name": "g", "suites": [str(items)],
            "models": [{"name": "Qwen/Qwen2.5-32B", "role": "base", "device_map": "auto"}]}
    one = config_from_dict({**base, "gpus": 1})
    four = config_from_dict({**base, "gpus": 4})
    s = KNOWN_SHAPES["Qwen/Qwen2.5-32B"]
    e1 = estimate_model(one, one.models[0], s, 10, 100)
    e4 = estimate_model(four, four.models[0], s, 10, 100)
    assert e4.generate_gpu_bytes == (e1.weights_bytes + e1.kv_bytes) // 4
    assert e1.generate_gpu_bytes == e1.weights_bytes + e1.kv_bytes


def test_missing_local_path_fails_before_any_stage(tmp_path, capsys):
    items = items_file(tmp_path)
    cfg_path = tmp_path / "exp.toml"
    cfg_path.write_text(f'name = "m"\nsuites = ["{items}"]\nout = "{tmp_path / "run"}"\n'
                        '[[models]]\nkey = "student"\nname = "Qwen/Qwen2.5-Math-7B"\n'
                        'role = "student"\nlocal_path = "/nonexistent/qwen7b"\n')
    with pytest.raises(ModelNotFoundError, match="local_path") as ei:
        run_experiment(load_config(cfg_path))
    msg = str(ei.value)
    assert "/nonexistent/qwen7b" in msg and "exp.toml" in msg and 'key = "student"' in msg
    assert not (tmp_path / "run").exists()
    assert main(["run", str(cfg_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_offline_hub_model_not_cached_fails_early(tmp_path, monkeypatch):
    items = items_file(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    cfg = config_from_dict({"name": "o", "suites": [str(items)], "out": str(tmp_path / "run"),
                            "models": [{"name": "Qwen/Qwen2.5-Math-7B", "role": "base"}]})
    with pytest.raises(ModelNotFoundError, match="not in the local Hugging Face cache.*"
                       "local_path"):
        run_experiment(cfg, stages=["generate"])
    assert not (tmp_path / "run").exists()


def test_demo_prints_the_bundled_norms(capsys):
    from experiments.runner import print_norms_summary
    from mimicry.tasks.registry import list_suites, load_suite

    print_norms_summary()
    out = capsys.readouterr().out
    assert out.startswith("Bundled task suites and human norms:")
    rows = [line.split() for line in out.splitlines()[2:]]
    for name in list_suites():
        s = load_suite(name)
        for t in s.tasks:
            n = sum(1 for it in s if it.task == t)  # items per task, counted here
            assert any(r[:3] == [name, t, str(n)] for r in rows), (name, t, n)


@pytest.mark.parametrize("make,args,msg", [
    (None, ["run", "{d}/nope.toml"], "config file not found"),
    ("name = [", ["run", "{d}/c.toml"], "not valid TOML"),
    ('name = "x"\n', ["run", "{d}/c.toml"], "no [[models]] entries"),
    ('name = "x"\n[[models]]\nname = "a"\nrole = "boss"\n', ["run", "{d}/c.toml"],
     "role is 'boss'; expected teacher, student, base or control"),
    ('name = "x"\n[[models]]\nname = "Qwen/Qwen2.5-Math-7B"\nrole = "base"\n',
     ["run", "{d}/c.toml", "--stages", "generate,plot"], "unknown stage(s) ['plot']"),
    ('name = "x"\n[reliance]\nmode = "shuffle"\n[[models]]\nname = "Qwen/Qwen2.5-Math-7B"\n'
     'role = "teacher"\n', ["run", "{d}/c.toml", "--dry-run"], "mode 'shuffle' is not valid"),
])
def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys, make, args, msg):
    if make is not None:
        (tmp_path / "c.toml").write_text(make)
    rc = main([a.format(d=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and msg in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if make is None else ["c.toml"])
