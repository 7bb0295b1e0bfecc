"""GPU benchmark: generation tokens/s (hf backend, batch 1/32/128) and capture vs the SDPA floor.

Random-init Qwen2 models with the real Qwen2-1.5B and Qwen2-7B shapes (bf16; no download),
so the numbers are about compute, not about what the weights say. For each shape:

1. **generation** through mimicry's ``hf`` backend (``HFBackend.run``: left padding, greedy,
   the same code path as ``mimicry generate``) at batch 1, 32 and 128: generated tokens / s;
2. **capture** through ``mimicry.capture.capture`` (entropy off / sampled / exact) against the
   floor, a plain SDPA forward with all hidden states over the same sequences: tokens / s and
   the ratio to the floor (targets from issue 3 at 32k tokens: off ≤ 1.1×, sampled ≤ 1.3×,
   exact ≤ 2×).

Budget: ≤ 5 minutes on one H100 with the defaults; a ``--budget-s`` guard skips what is left
(and says so) rather than overrun. ``--device cpu --tiny`` runs the same logic on a tiny
config in seconds (the test suite does this).

    python benchmarks/gpu.py                      # one lent GPU, defaults
    python benchmarks/gpu.py --json out.json      # also write the numbers
    python benchmarks/gpu.py --device cpu --tiny  # smoke test of the logic
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHAPES = {"1.5b": "Qwen2-1.5B-shape", "7b": "Qwen2-7B-shape"}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build_model(shape_key: str, device: str, tiny: bool, vocab: int):
    """Return a random-init Qwen2ForCausalLM with the named shape (bf16 on GPU, fp32 on CPU)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from experiments.shapes import KNOWN_SHAPES

    s = KNOWN_SHAPES[SHAPES[shape_key]]
    if tiny:
        kw = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2)
    else:
        kw = dict(hidden_size=s.hidden, intermediate_size=s.intermediate,
                  num_hidden_layers=s.layers, num_attention_heads=s.heads,
                  num_key_value_heads=s.kv_heads)
    cfg = Qwen2Config(vocab_size=vocab, tie_word_embeddings=s.tied,
                      max_position_embeddings=s.max_positions, **kw)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    return model.eval()


def words(tok, n_tokens: int) -> str:
    """Return filler text that the tokenizer turns into about ``n_tokens`` tokens."""
    unit = "carry the seven, add three, then compare the sums. "
    per = max(1, len(tok(unit, add_special_tokens=False)["input_ids"]))
    return unit * max(1, n_tokens // per)


def bench_generate(model, tok, device: str, batches: list[int], new_tokens: int,
                   prompt_tokens: int, deadline: float) -> list[dict[str, Any]]:
    """Return one row per batch size: generated tokens, seconds, tokens/s."""
    from mimicry.generate.hf import HFBackend
    from mimicry.models import ModelSpec
    from mimicry.tasks.items import Item

    backend = HFBackend(ModelSpec("random-init"), model=model, tokenizer=tok)
    prompt = words(tok, prompt_tokens)
    rows = []
    warm = [Item("w", "bench", prompt)]
    for _ in backend.run(warm, batch_size=1, max_new_tokens=4, temperature=0.0, top_p=1.0,
                         seed=0, chat_template="auto"):
        pass
    for b in batches:
        if time.time() > deadline:
            rows.append({"batch": b, "status": "skipped (time budget)"})
            continue
        items = [Item(f"i{j}", "bench", prompt) for j in range(b)]
        _sync(device)
        t0 = time.perf_counter()
        n = 0
        for done in backend.run(items, batch_size=b, max_new_tokens=new_tokens,
                                temperature=0.0, top_p=1.0, seed=0, chat_template="auto"):
            n += sum(len(c.ids) + (c.finish_reason == "stop") for c in done)
        _sync(device)
        dt = time.perf_counter() - t0
        rows.append({"batch": b, "generated_tokens": n, "seconds": round(dt, 6),
                     "tokens_per_s": round(n / dt, 1), "status": "ok"})
    return rows


def make_traces(tok, n_items: int, seq_tokens: int):
    """Return ``n_items`` traces of about ``seq_tokens`` tokens (prompt 1/8, reasoning 7/8)."""
    from mimicry.traces import Trace

    p, r = words(tok, seq_tokens // 8), words(tok, seq_tokens * 7 // 8)
    return [Trace(item_id=f"b{i}", model="random-init", task="bench", prompt=f"Q{i}. {p}",
                  reasoning=r, answer_text="42", finish_reason="stop") for i in range(n_items)]


def floor_forward(model, tok, traces, device: str) -> tuple[int, float]:
    """Return ``(tokens, seconds)`` of a plain SDPA forward with all hidden states, batch 1.

    The token ids are exactly those capture feeds the model (its own encoder), so the two
    timings cover the same tokens.
    """
    import torch

    from mimicry.capture import CaptureConfig
    from mimicry.capture.segments import encode_traces

    encs = [torch.as_tensor(it.input_ids, device=device)[None]
            for it in encode_traces(tok, traces, CaptureConfig())]
    with torch.inference_mode():
        model.model(encs[0][:, :64], output_hidden_states=True)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        for ids in encs:
            out = model.model(ids, output_hidden_states=True)
            del out
        _sync(device)
    return sum(int(e.shape[1]) for e in encs), time.perf_counter() - t0


def bench_capture(model, tok, device: str, n_items: int, seq_tokens: int,
                  deadline: float) -> list[dict[str, Any]]:
    """Return rows: the SDPA floor, then capture with entropy off / sampled / exact."""
    from mimicry.capture import CaptureConfig, capture

    traces = make_traces(tok, n_items, seq_tokens)
    tokens, floor_s = floor_forward(model, tok, traces, device)
    rows = [{"mode": "SDPA forward + hidden states (floor)", "tokens": tokens,
             "seconds": round(floor_s, 6), "tokens_per_s": round(tokens / floor_s, 1),
             "x_floor": 1.0, "status": "ok"}]
    quiet = lambda s: None  # noqa: E731
    with tempfile.TemporaryDirectory() as d:
        for mode in ("off", "sampled", "exact"):
            if time.time() > deadline:
                rows.append({"mode": f"capture, entropy {mode}", "status": "skipped (time budget)"})
                continue
            cfg = CaptureConfig(entropy=mode, batch_tokens=max(seq_tokens, 1024))
            capture(model, traces[:1], Path(d) / f"warm-{mode}.h5", cfg, tokenizer=tok,
                    device=device, progress=False, log=quiet)  # compile / warm-up
            _sync(device)
            t0 = time.perf_counter()
            capture(model, traces, Path(d) / f"{mode}.h5", cfg, tokenizer=tok, device=device,
                    progress=False, log=quiet)
            _sync(device)
            dt = time.perf_counter() - t0
            rows.append({"mode": f"capture, entropy {mode}", "tokens": tokens,
                         "seconds": round(dt, 6), "tokens_per_s": round(tokens / dt, 1),
                         "x_floor": round(dt / floor_s, 3), "status": "ok"})
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every benchmark; return the results (also printed as tables)."""
    import torch

    from mimicry.testing import build_tokenizer

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda but no GPU is visible; use --device cpu --tiny")
    deadline = time.time() + args.budget_s
    tok = build_tokenizer()
    vocab = len(tok) if args.tiny else None
    res: dict[str, Any] = {
        "machine": {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda")
                    else platform.processor() or "cpu", "torch": torch.__version__,
                    "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items()}, "shapes": {}}
    for key in args.shapes.split(","):
        from experiments.shapes import KNOWN_SHAPES

        v = vocab or KNOWN_SHAPES[SHAPES[key]].vocab
        t0 = time.time()
        model = build_model(key, args.device, args.tiny, v)
        print(f"\n== Qwen2-{key} shape{' (tiny)' if args.tiny else ''}, random init, "
              f"{next(model.parameters()).dtype}, {args.device}; built in "
              f"{time.time() - t0:.1f} s", flush=True)
        gen = bench_generate(model, tok, args.device, [int(b) for b in args.batches.split(",")],
                             args.new_tokens, args.prompt_tokens, deadline)
        _print("generation (hf backend, greedy)", gen)
        cap = bench_capture(model, tok, args.device, args.items, args.seq_tokens, deadline)
        _print(f"capture over {args.items} × ~{args.seq_tokens} tokens", cap)
        res["shapes"][key] = {"generate": gen, "capture": cap}
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


def _print(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"-- {title}")
    for r in rows:
        print("   " + "  ".join(f"{k}={v}" for k, v in r.items()), flush=True)


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--tiny", action="store_true", help="tiny config (CPU smoke test)")
    p.add_argument("--shapes", default="1.5b,7b", help="comma list of 1.5b,7b")
    p.add_argument("--batches", default="1,32,128", help="generation batch sizes")
    p.add_argument("--new-tokens", type=int, default=256, help="tokens generated per prompt")
    p.add_argument("--prompt-tokens", type=int, default=128, help="prompt length")
    p.add_argument("--items", type=int, default=4, help="sequences captured")
    p.add_argument("--seq-tokens", type=int, default=8192, help="tokens per captured sequence")
    p.add_argument("--budget-s", type=float, default=270.0,
                   help="skip what is left after this many seconds")
    p.add_argument("--json", help="also write the results to this JSON file")
    return p


if __name__ == "__main__":
    run(parser().parse_args())
