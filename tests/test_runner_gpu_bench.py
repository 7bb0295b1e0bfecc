"""benchmarks/gpu.py's logic on CPU with a tiny config (it was not run on a GPU here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_benchmark_logic_on_cpu_tiny(tmp_path):
    bench = load_bench()
    out = tmp_path / "gpu.json"
    args = bench.parser().parse_args(
        ["--device", "cpu", "--tiny", "--shapes", "1.5b", "--batches", "1,2",
         "--new-tokens", "5", "--items", "1", "--seq-tokens", "128", "--json", str(out)])
    res = bench.run(args)
    assert json.loads(out.read_text())["shapes"].keys() == {"1.5b"}
    gen = res["shapes"]["1.5b"]["generate"]
    assert [r["batch"] for r in gen] == [1, 2]
    for r in gen:
        # greedy on random weights rarely hits eos: each prompt yields ≤ new_tokens tokens
        assert 0 < r["generated_tokens"] <= r["batch"] * 5
        assert r["tokens_per_s"] == pytest.approx(r["generated_tokens"] / r["seconds"], rel=0.01)
    cap = res["shapes"]["1.5b"]["capture"]
    assert [r["mode"] for r in cap] == ["SDPA forward + hidden states (floor)",
                                        "capture, entropy off", "capture, entropy sampled",
                                        "capture, entropy exact"]
    floor = cap[0]
    assert floor["x_floor"] == 1.0 and floor["tokens"] > 100
    for r in cap[1:]:
        assert r["x_floor"] == pytest.approx(r["seconds"] / floor["seconds"], rel=0.01)  # rounded to 3 decimals


def test_budget_guard_skips_and_says_so():
    bench = load_bench()
    from mimicry.testing import build_tiny_model

    model, tok = build_tiny_model("qwen2")
    rows = bench.bench_generate(model, tok, "cpu", [1, 32], 4, 8, deadline=0.0)
    assert rows == [{"batch": 1, "status": "skipped (time budget)"},
                    {"batch": 32, "status": "skipped (time budget)"}]
