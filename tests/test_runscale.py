"""Scale-out settings of experiment configs: capture launcher, reliance backend, dry-run cost."""

from __future__ import annotations

import pytest
from test_runner_config import items_file

from experiments.config import config_from_dict
from experiments.cost import (
    estimate_model,
    format_estimates,
    human_bytes,
    human_count,
    per_rank_lines,
)
from experiments.scale import capture_argv, launch_capture, reliance_kwargs
from experiments.shapes import KNOWN_SHAPES
from mimicry.capture import CaptureConfig
from mimicry.capture.cli import register
from mimicry.errors import InputError
from mimicry.models import ModelSpec


def _cfg(tmp_path, **sections):
    base = {"name": "s", "suites": [str(items_file(tmp_path))],
            "models": [{"key": "qwq", "name": "Qwen/QwQ-32B", "role": "teacher",
                        "device_map": "auto"},
                       {"key": "base", "name": "Qwen/Qwen2.5-32B", "role": "base"}]}
    return config_from_dict({**base, **sections})


def test_launcher_and_backend_are_validated(tmp_path):
    for bad, msg in [({"capture": {"ranks_per_node": 0}}, r"ranks_per_node must be .* >= 1"),
                     # the config schema (issue 15) refuses a float before scale's own check
                     ({"capture": {"gpus_per_rank": 1.5}},
                      r"gpus_per_rank is 1\.5 \(float\); expected a whole number"),
                     ({"reliance": {"backend": "vllm"}}, "backend 'vllm' is not valid"),
                     ({"reliance": {"backend": "openai"}}, "needs \\[generation\\] base_url")]:
        with pytest.raises(InputError, match=msg):
            _cfg(tmp_path, **bad)


def test_launcher_does_not_change_the_capture_stage_hash(tmp_path):
    one = _cfg(tmp_path)
    many = _cfg(tmp_path, capture={"ranks_per_node": 4, "nodes": 2, "gpus_per_rank": 2})
    assert one.stage_hash("capture") == many.stage_hash("capture")
    assert one.stage_hash("capture") != _cfg(tmp_path, capture={"batch_tokens": 8}) \
        .stage_hash("capture")


def test_openai_reliance_needs_no_local_weights(tmp_path):
    gen = {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "concurrency": 3}
    hf = _cfg(tmp_path, generation=gen, capture={"cross": False})
    for m in hf.models:
        m.capture = False
    assert hf.reliance_models() == []  # API traces, no weights here: the hf path skips
    srv = _cfg(tmp_path, generation=gen, reliance={"backend": "openai"})
    assert [m.key for m in srv.reliance_models()] == ["qwq"]  # base is not a reliance role
    assert reliance_kwargs(srv) == {"backend": "openai", "base_url": gen["base_url"],
                                    "concurrency": 3}
    assert reliance_kwargs(hf) == {}


def test_dry_run_shows_per_rank_cost(tmp_path):
    cfg = _cfg(tmp_path, gpus=8, capture={"ranks_per_node": 4, "nodes": 1, "gpus_per_rank": 2})
    shape = KNOWN_SHAPES["Qwen/QwQ-32B"]
    ests = [estimate_model(cfg, m, KNOWN_SHAPES[m.name], 12, 300) for m in cfg.models]
    (line,) = per_rank_lines(cfg, ests, 12)
    tok = sum(e.captures * 12 * e.seq_len for e in ests) / 4
    disk = sum(e.cache_bytes for e in ests) / 4
    gpu = shape.params * 2 // 2 + ests[0].capture_work_bytes // 2  # bf16 weights over 2 GPUs
    assert "1 node(s) × 4 ranks × 2 GPU(s) = 4 ranks on 8 GPUs" in line
    assert f"≤ {human_count(tok)} tokens" in line and f"{human_bytes(disk)} of shards" in line
    assert f"GPU {human_bytes(gpu)} per GPU" in line
    assert line in format_estimates(cfg, ests, 12, ["capture"])
    assert per_rank_lines(_cfg(tmp_path), ests, 12) == []  # one process: nothing to add


def test_capture_argv_reproduces_the_config_through_the_cli(tmp_path):
    import argparse

    conf = CaptureConfig(sites=("last_prompt", "mean_reasoning"), entropy="sampled",
                         n_sampled=64, seed=3, per_token_stride=4, dtype="float16",
                         batch_tokens=4096, query_chunk=128)
    spec = ModelSpec("models/qwq", revision="abc", dtype="bfloat16", device_map="auto")
    argv = capture_argv(spec, tmp_path / "t.jsonl", tmp_path / "c.h5", conf)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    a = parser.parse_args(argv)
    got = CaptureConfig(sites=a.sites, entropy=a.entropy, n_sampled=a.n_sampled, seed=a.seed,
                        per_token_stride=a.per_token_stride, dtype=a.store_dtype,
                        batch_tokens=a.batch_tokens, query_chunk=a.query_chunk,
                        backend=a.backend, chat_template=a.chat_template)
    assert got.to_json() == conf.to_json()
    assert (a.model, a.revision, a.dtype, a.device_map) == ("models/qwq", "abc", "bfloat16",
                                                            "auto")


def test_two_nodes_give_the_command_to_run_on_each(tmp_path):
    cfg = _cfg(tmp_path, capture={"ranks_per_node": 8, "nodes": 2})
    note = launch_capture(cfg, ModelSpec("Qwen/QwQ-32B"), tmp_path / "t.jsonl",
                          tmp_path / "qwq.h5", CaptureConfig())
    assert "nodes = 2: run on every node" in note
    assert "torchrun --nproc_per_node 8 --nnodes 2 --rdzv_backend c10d" in note
    assert f"-m mimicry capture --model Qwen/QwQ-32B --traces {tmp_path / 't.jsonl'}" in note


@pytest.mark.slow
def test_one_node_launcher_runs_torchrun_and_resumes(tmp_path, tiny_model_dir):
    """The runner's launcher on one node: torchrun with 2 ranks writes a complete cache over
    both ranks' shards, equal to an in-process capture; a second launch has nothing to do."""
    import json

    import numpy as np

    from mimicry import open_cache
    from mimicry.capture import capture
    from mimicry.store.shards import list_parts

    model = tiny_model_dir("qwen2")
    traces = tmp_path / "t.jsonl"
    with open(traces, "w") as f:
        for i in range(6):
            f.write(json.dumps(dict(item_id=f"q{i}", model="teacher", prompt=f"Item {i}?",
                                    reasoning="step " * (5 + 7 * i), answer_text="north")) + "\n")
    cfg = _cfg(tmp_path, capture={"ranks_per_node": 2})
    conf = CaptureConfig(batch_tokens=64)
    out = tmp_path / "c.h5"
    assert launch_capture(cfg, ModelSpec(model), traces, out, conf) is None
    assert {p.rank for p in list_parts(out)} == {0, 1}
    ref = capture(model, traces, tmp_path / "ref.h5", conf, progress=False, log=lambda s: None)
    with open_cache(out) as a, open_cache(ref) as b:
        assert list(a.items.item_id) == list(b.items.item_id) == [f"q{i}" for i in range(6)]
        np.testing.assert_allclose(a.resid(-1, "mean_reasoning"), b.resid(-1, "mean_reasoning"),
                                   atol=1e-5)
    before = sorted(p.path.name for p in list_parts(out))
    assert launch_capture(cfg, ModelSpec(model), traces, out, conf) is None
    assert sorted(p.path.name for p in list_parts(out)) == before
