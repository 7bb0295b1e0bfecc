"""Benchmark activation capture: the SDPA floor vs mimicry capture vs TransformerLens / nnsight.

    .venv/bin/python benchmarks/capture.py --device cpu                 # full CPU run (10-20 min)
    .venv/bin/python benchmarks/capture.py --device cpu --quick         # smoke run (~1 min)
    python benchmarks/capture.py --device cuda                          # Qwen2-1.5B/7B shapes

Same random-init model and the same items (one trace per length, tokenised by the core's
``encode_traces``) for every method:

- ``a_sdpa``: the floor, ``model.model(input_ids, output_hidden_states=True)`` with SDPA;
- ``b_off`` / ``b_sampled`` / ``b_exact``: ``mimicry.capture.driver.capture`` (the Python entry
  behind ``mimicry capture``: encode, forward with hooks, entropy side-car, HDF5 write), with
  the entropy function the hf backend ships (CPU: chunked torch reference; CUDA: the fused
  Triton kernel); ``b_exact@IMPL`` swaps it for one run: ``@reference`` (chunked torch),
  ``@blockwise`` (:mod:`mimicry.capture.entropy_blockwise`), ``@triton`` (the kernel);
- ``c_tl``: the same entry with ``backend="tl"`` (TransformerBridge ``run_with_cache`` of
  resid_post + every pattern, entropy from patterns, same HDF5 writer);
- ``d_nnsight``: ``backend="nnsight"`` (trace saving every layer's output and pattern).

Each method runs in its own process (clean peak memory; a crash or OOM is recorded, not fatal),
lengths ascending; a length that exceeds ``--timeout`` seconds is killed and longer lengths of
that method are marked skipped; ``c``/``d`` are skipped up front where their patterns
(``n_layers * n_heads * L^2`` values) would exceed ``--mem-budget-gib``. Peak memory: CPU = peak
RSS sampled every 2 ms (psutil) minus RSS before the call; CUDA = ``max_memory_allocated``
minus memory allocated before. Seconds = the fastest of ``--repeats`` runs (CPU: lengths above
2048 run once), after one warm-up call at 128 tokens. Ratios are against ``a_sdpa`` at the same length in the same
run. CPU runs use ``--threads`` torch threads (default 1: on a shared, oversubscribed machine two
OpenMP threads that wait on each other made the entropy path up to 4x slower, noise that has
nothing to do with the method).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# this file is named like a module it measures: keep its folder off the import path
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]

METHODS_CPU = ["a_sdpa", "b_off", "b_sampled", "b_exact", "b_exact@blockwise", "c_tl",
               "d_nnsight"]
SHORT_ONLY_CPU = ("b_exact@blockwise",)  # cpu: not run above --short-max (keeps the run short)
METHODS_CUDA = ["a_sdpa", "b_off", "b_sampled", "b_exact", "b_exact@reference", "c_tl",
                "d_nnsight"]
# Public config.json values (hidden, layers, heads, kv heads, intermediate, vocab, tied).
CUDA_SHAPES = {
    "qwen2-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, intermediate_size=8960, vocab_size=151936,
                       tie_word_embeddings=True),
    "qwen2-7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
                     num_key_value_heads=4, intermediate_size=18944, vocab_size=152064,
                     tie_word_embeddings=False),
}
CPU_SHAPE = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=1024, vocab_size=512,
                 tie_word_embeddings=False)
QUICK_SHAPE = dict(CPU_SHAPE, hidden_size=128, num_hidden_layers=2, intermediate_size=256)


def build_model(shape: dict, device: str, dtype: str):
    """Return a seeded random-init Qwen2 model of ``shape`` on ``device`` (eval, SDPA)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(max_position_embeddings=131072, rope_theta=1e6, **shape)
    torch.manual_seed(0)
    with torch.device(device):  # init directly on the device, in the target dtype
        model = Qwen2ForCausalLM._from_config(cfg, dtype=getattr(torch, dtype),
                                              attn_implementation="sdpa")
    return model.eval()


def make_trace(tok, n_tokens: int):
    """Return a Trace whose templated text is about ``n_tokens`` tokens long."""
    from mimicry.testing import _CORPUS
    from mimicry.traces import Trace

    unit = " ".join(_CORPUS) + " "
    per = max(1, len(tok(unit, add_special_tokens=False)["input_ids"]))
    reasoning = unit * max(1, (n_tokens - 40) // per)
    return Trace(item_id=f"len{n_tokens}", model="bench", task="bench",
                 prompt="A is left of B. B is left of C. Is A left of C?",
                 reasoning=reasoning, answer_text="yes")


class PeakMemory:
    """Context manager measuring extra peak memory (bytes) of a block on ``device``."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.extra = 0

    def __enter__(self):
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            import psutil

            self.proc = psutil.Process()
            self.base = self.peak = self.proc.memory_info().rss
            self.stop = threading.Event()
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            self.extra = torch.cuda.max_memory_allocated() - self.base
        else:
            self.stop.set()
            self.thread.join()
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self.extra = self.peak - self.base


def run_method(method: str, model, tok, trace, item, device: str, tmp: Path) -> None:
    """Run ``method`` once on one item (the timed unit)."""
    import torch

    if method == "a_sdpa":
        ids = torch.as_tensor(item.input_ids, device=device)[None]
        with torch.no_grad():
            model.model(input_ids=ids, output_hidden_states=True, use_cache=False)
        return
    from mimicry.capture.config import CaptureConfig
    from mimicry.capture.driver import capture

    backend = {"c_tl": "tl", "d_nnsight": "nnsight"}.get(method, "hf")
    entropy = {"b_off": "off", "b_sampled": "sampled"}.get(method.split("@")[0], "exact")
    cfg = CaptureConfig(entropy=entropy, backend=backend, batch_tokens=1 << 20)
    out = tmp / f"{method}-{time.monotonic_ns()}.h5"
    capture(model, [trace], out, cfg, tokenizer=tok, progress=False, log=lambda s: None)
    out.unlink(missing_ok=True)


def worker(args) -> None:
    """Measure one method at every length; print one JSON line per length."""
    import torch

    from mimicry.capture.config import CaptureConfig
    from mimicry.capture.segments import encode_traces
    from mimicry.testing import build_tokenizer

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if "@" in args.worker:  # swap the entropy function the hf backend calls
        import functools

        import mimicry.capture.hf as hf
        from mimicry.capture import triton_entropy as te

        hf.entropy_stats = functools.partial(te.entropy_stats, impl=args.worker.split("@")[1])
    shape = CUDA_SHAPES[args.model] if args.device == "cuda" else (
        QUICK_SHAPE if args.quick else CPU_SHAPE)
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    model = build_model(shape, args.device, dtype)
    tok = build_tokenizer()
    n_layers, n_heads = shape["num_hidden_layers"], shape["num_attention_heads"]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        warm = make_trace(tok, 128)
        warm_item = encode_traces(tok, [warm], CaptureConfig())[0]
        run_method(args.worker, model, tok, warm, warm_item, args.device, tmp)
        for n in args.lengths:
            trace = make_trace(tok, n)
            item = encode_traces(tok, [trace], CaptureConfig())[0]
            rec = {"method": args.worker, "length": n, "tokens": item.length}
            if args.max_len and n > args.max_len:
                rec.update(status="not run", note=f"only run up to {args.max_len} tokens")
                print(json.dumps(rec), flush=True)
                continue
            pattern_gib = n_layers * n_heads * item.length ** 2 * (
                2 if dtype == "bfloat16" else 4) / 2**30
            if args.worker in ("c_tl", "d_nnsight") and pattern_gib > args.mem_budget_gib:
                rec.update(status="skipped", note=f"patterns need ~{pattern_gib:.1f} GiB "
                           f"> budget {args.mem_budget_gib} GiB")
                print(json.dumps(rec), flush=True)
                continue
            times, extra = [], 0
            reps = args.repeats if (args.device == "cuda" or n <= 2048) else 1
            try:
                for _ in range(reps):
                    with PeakMemory(args.device) as pm:
                        t0 = time.perf_counter()
                        run_method(args.worker, model, tok, trace, item, args.device, tmp)
                        if args.device == "cuda":
                            torch.cuda.synchronize()
                        times.append(time.perf_counter() - t0)
                    extra = max(extra, pm.extra)
            except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as e:
                rec.update(status="failed", note=f"{type(e).__name__}: {str(e)[:120]}")
                print(json.dumps(rec), flush=True)
                if args.device == "cuda":
                    torch.cuda.empty_cache()
                continue
            sec = min(times)  # the least disturbed run (the CPUs are shared)
            rec.update(status="ok", seconds=sec, runs=len(times), tokens_per_s=item.length / sec,
                       peak_extra_mib=extra / 2**20)
            print(json.dumps(rec), flush=True)


def run_all(args) -> list[dict]:
    """Run every method in its own worker process; return all records."""
    results: list[dict] = []
    for method in args.methods:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", method,
               "--device", args.device, "--lengths", ",".join(map(str, args.lengths)),
               "--repeats", str(args.repeats), "--mem-budget-gib", str(args.mem_budget_gib),
               "--model", args.model, "--threads", str(args.threads),
               "--max-len", str(args.short_max if (not args.device == "cuda"
                                                   and method in SHORT_ONLY_CPU) else 0)]
        if args.quick:
            cmd.append("--quick")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        lines: list[str] = []

        def read(p=proc, out=lines) -> None:
            out.extend(iter(p.stdout.readline, ""))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        done = 0
        # setup (model build, warm-up) gets one timeout; each length then gets its own
        deadline = time.monotonic() + args.timeout * (args.repeats + 1)
        while proc.poll() is None or reader.is_alive():
            if len(lines) > done:
                for ln in lines[done:]:
                    rec = json.loads(ln)
                    results.append(rec)
                    print(_fmt(rec), file=sys.stderr, flush=True)
                done = len(lines)
                deadline = time.monotonic() + args.timeout * args.repeats
            if time.monotonic() > deadline:
                os.killpg(proc.pid, 9)
                proc.wait()
                break
            time.sleep(0.2)
        for ln in lines[done:]:
            results.append(json.loads(ln))
        measured = {r["length"] for r in results if r["method"] == method}
        missing = [n for n in args.lengths if n not in measured]
        if missing:
            err = (proc.stderr.read() or "").strip().splitlines()[-1:] if proc.stderr else []
            why = (f"killed after {args.timeout:.0f} s x {args.repeats} run(s)"
                   if proc.returncode in (-9, 137) else f"worker exited: {err}")
            for i, n in enumerate(missing):
                rec = {"method": method, "length": n, "status": "timeout" if i == 0 and
                       proc.returncode in (-9, 137) else "skipped", "note": why}
                results.append(rec)
                print(_fmt(rec), file=sys.stderr, flush=True)
    return results


def _fmt(r: dict) -> str:
    if r.get("status") != "ok":
        return f"{r['method']:>10} {r['length']:>6}: {r.get('status')} ({r.get('note', '')})"
    return (f"{r['method']:>10} {r['length']:>6}: {r['seconds']:8.3f} s "
            f"{r['tokens_per_s']:9.0f} tok/s  +{r['peak_extra_mib']:8.1f} MiB")


def table(results: list[dict], lengths: list[int], methods: list[str]) -> str:
    """Return a markdown table: seconds, ratio to a_sdpa and extra peak MiB per method/length."""
    by = {(r["method"], r["length"]): r for r in results}
    head = "| method | " + " | ".join(f"{n} tok" for n in lengths) + " |"
    rows = [head, "|---" * (len(lengths) + 1) + "|"]
    for m in methods:
        cells = []
        for n in lengths:
            r, a = by.get((m, n)), by.get(("a_sdpa", n))
            if r is None or r.get("status") != "ok":
                st = r.get("status", "-") if r else "-"
                cells.append(f"{st}: {r['note']}" if r and st in ("failed", "timeout")
                             and r.get("note") else st)
                continue
            ratio = (f" ({r['seconds'] / a['seconds']:.2f}x)" if a and a.get("status") == "ok"
                     else "")
            cells.append(f"{r['seconds']:.2f} s{ratio}, +{r['peak_extra_mib']:.0f} MiB")
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def machine() -> dict:
    """Return CPU model, cores, load average and (if any) GPU name."""
    cpu = platform.processor()
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "loadavg": os.getloadavg(),
            "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--lengths", default=None,
                    help="comma-separated token counts (cpu: 1024..16384, cuda: 8192,32768)")
    ap.add_argument("--quick", action="store_true", help="tiny model, short lengths")
    ap.add_argument("--methods", default=None, help="comma-separated; default: all for --device")
    ap.add_argument("--model", default="qwen2-1.5b", choices=sorted(CUDA_SHAPES),
                    help="cuda: which shape (run twice for both)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per cell (median)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run before kill")
    ap.add_argument("--mem-budget-gib", type=float, default=None,
                    help="skip c/d where all-layer patterns exceed this")
    ap.add_argument("--threads", type=int, default=1, help="cpu: torch threads per worker")
    ap.add_argument("--out", default=None, help="write results JSON here")
    ap.add_argument("--short-max", type=int, default=4096,
                    help=f"cpu: longest length for {', '.join(SHORT_ONLY_CPU)}")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--max-len", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cuda = args.device == "cuda"
    if args.lengths is None:
        args.lengths = "512,1024" if args.quick else ("8192,32768" if cuda else
                                                      "1024,2048,4096,8192,16384")
    args.lengths = sorted(int(x) for x in str(args.lengths).split(",") if x)
    args.methods = ([m for m in str(args.methods).split(",") if m] if args.methods
                    else (METHODS_CUDA if cuda else METHODS_CPU))
    args.repeats = args.repeats or (3 if cuda else 2)  # cpu: lengths > 4096 run once
    args.timeout = args.timeout or (300.0 if cuda else 150.0)
    args.mem_budget_gib = args.mem_budget_gib or (60.0 if cuda else 6.0)
    if cuda and not args.worker:
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda needs a CUDA GPU (torch.cuda.is_available() is False)",
                  file=sys.stderr)
            return 2
    if args.worker:
        worker(args)
        return 0
    info = machine()
    info["torch_threads"] = args.threads if not cuda else None
    print(f"machine: {json.dumps(info)}", file=sys.stderr)
    t0 = time.time()
    results = run_all(args)
    info["loadavg_end"] = os.getloadavg()
    info["wall_s"] = round(time.time() - t0, 1)
    print(table(results, args.lengths, args.methods))
    print(f"\nmachine: {json.dumps(info)}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": info, "args": vars(args),
                                              "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
