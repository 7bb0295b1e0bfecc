"""Benchmark data-parallel capture: 1 rank vs N ranks under torchrun, same run, same items.

    .venv/bin/python benchmarks/capture_ranks.py --device cpu --out benchmarks/capture_ranks_cpu.json
    python benchmarks/capture_ranks.py --device cuda --ranks 8 --model qwen2-1.5b \\
        --out capture_ranks_cuda.json                       # one node, 8 GPUs (see README)

A random-init model (CPU: a small Qwen2, hidden 256 × 4 layers; CUDA: the Qwen2-1.5B shape
in bf16) is saved to a temp folder with a locally built tokenizer; ``--items`` traces of
seeded random lengths are captured by ``torchrun --standalone --nproc_per_node R -m mimicry
capture`` for R = 1 and R = ``--ranks``, alternating, ``--repeats`` times. Reported per R:
wall seconds of the whole command (start-up included: every rank imports torch and loads
the model) and the capture phase (from rank 0's cost line, printed before the model loads,
to the end), the fastest repeat; the speed-up is 1-rank time ÷ R-rank time of the same run. The two caches are
compared item by item (max |Δ| of every residual and entropy row). CPU ranks use one torch
thread each, so R ranks use R cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CUDA_SHAPE = dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                  num_key_value_heads=2, intermediate_size=8960)
CPU_SHAPE = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=512)


def _model(dirpath: Path, device: str) -> str:
    from mimicry.testing import build_tiny_model, build_tokenizer

    tok = build_tokenizer()
    shape = CUDA_SHAPE if device == "cuda" else CPU_SHAPE
    build_tiny_model("qwen2", dirpath, tokenizer=tok, seed=0, **shape)
    return str(dirpath)


def _traces(path: Path, n: int, lo: int, hi: int) -> Path:
    rs = random.Random(0)
    words = "the mall is north of station bar south east west step first answer so".split()
    with open(path, "w") as f:
        for i in range(n):
            r = " ".join(rs.choice(words) for _ in range(rs.randint(lo, hi)))
            f.write(json.dumps(dict(item_id=f"q{i}", model="teacher", prompt=f"Item {i}?",
                                    reasoning=r, answer_text="north")) + "\n")
    return path


def _run(ranks: int, model: str, traces: Path, out: Path, device: str, batch_tokens: int):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(ranks), "-m", "mimicry", "capture", "--model", model, "--traces", str(traces),
           "--out", str(out), "--batch-tokens", str(batch_tokens), "--no-progress",
           "--entropy", "exact"]
    if device == "cuda":
        cmd += ["--device", "cuda", "--dtype", "bfloat16"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    t_first = None
    for line in proc.stdout:
        if t_first is None and line.startswith("capture:"):
            t_first = time.perf_counter()
    rc = proc.wait()
    t1 = time.perf_counter()
    if rc != 0:
        raise SystemExit(f"torchrun with {ranks} ranks failed ({rc}): {' '.join(cmd)}")
    return t1 - t0, t1 - (t_first or t0)


def _max_diff(a: Path, b: Path) -> float:
    import h5py

    worst = 0.0
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert list(fa["items/item_id"].asstr()[()]) == list(fb["items/item_id"].asstr()[()])
        names: list[str] = []
        fa.visit(lambda n: names.append(n) if n.startswith(("resid/", "entropy/")) and
                 isinstance(fa[n], h5py.Dataset) else None)
        for n in names:
            x, y = fa[n][()].astype(np.float64), fb[n][()].astype(np.float64)
            ok = ~(np.isnan(x) & np.isnan(y))
            worst = max(worst, float(np.max(np.abs(x[ok] - y[ok]), initial=0.0)))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--min-words", type=int, default=150)
    ap.add_argument("--max-words", type=int, default=600)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the results JSON here")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="capture_ranks_"))
    model = _model(tmp / "model", a.device)
    traces = _traces(tmp / "traces.jsonl", a.items, a.min_words, a.max_words)
    times: dict[int, list[tuple[float, float]]] = {1: [], a.ranks: []}
    for rep in range(a.repeats):
        for r in ((1, a.ranks) if rep % 2 == 0 else (a.ranks, 1)):
            out = tmp / f"r{r}-{rep}.h5"
            times[r].append(_run(r, model, traces, out, a.device, a.batch_tokens))
            print(f"repeat {rep}: {r} rank(s): {times[r][-1][0]:.1f} s total, "
                  f"{times[r][-1][1]:.1f} s capture", flush=True)
    best = {r: (min(t[0] for t in v), min(t[1] for t in v)) for r, v in times.items()}
    res = {
        "device": a.device, "ranks": a.ranks, "items": a.items,
        "words": [a.min_words, a.max_words], "batch_tokens": a.batch_tokens,
        "repeats": a.repeats, "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "load_avg_at_end": os.getloadavg(),
        "model_shape": CUDA_SHAPE if a.device == "cuda" else CPU_SHAPE,
        "seconds_total": {str(r): round(v[0], 2) for r, v in best.items()},
        "seconds_capture": {str(r): round(v[1], 2) for r, v in best.items()},
        "speedup_total": round(best[1][0] / best[a.ranks][0], 2),
        "speedup_capture": round(best[1][1] / best[a.ranks][1], 2),
        "max_abs_diff_1_vs_n": _max_diff(tmp / "r1-0.h5", tmp / f"r{a.ranks}-0.h5"),
    }
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
