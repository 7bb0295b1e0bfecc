"""Run the fused entropy kernel under Triton's interpreter and print max errors as JSON.

Used by ``tests/test_triton_entropy.py`` in a subprocess, because ``TRITON_INTERPRET=1`` must
be set before triton is first imported. Each case compares the kernel with (a) a dense
float64 softmax computed here from scratch and (b) the chunked torch reference
``mimicry.capture.entropy.entropy_stats``. Not a test module itself (leading underscore).
"""

from __future__ import annotations

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
from _entropy_dense import dense, make_inputs  # noqa: E402

from mimicry.capture import triton_entropy as te  # noqa: E402
from mimicry.capture.entropy import entropy_stats as reference  # noqa: E402


def run_case(name, dtype, lq, lk, *, window=None, softcap=None, sampled=False, sink_boost=0.0,
             hq=4, hkv=2, dh=24, starts=(0, 9)):
    q, k, start, qidx = make_inputs(name, dtype, lq, lk, sampled=sampled,
                                    sink_boost=sink_boost, hq=hq, hkv=hkv, dh=dh, starts=starts)
    key_valid = torch.arange(lk)[None, :] >= start[:, None]
    scale = dh ** -0.5
    got = te.fused_entropy_stats(q, k, scaling=scale, key_start=start,
                                 query_index=qidx if sampled else None, sliding_window=window,
                                 softcap=softcap, block_m=32, block_n=32)
    ref = reference(q, k, scaling=scale, attn_mask=key_valid.long(),
                    query_index=qidx if sampled else None, sliding_window=window,
                    softcap=softcap)
    raw, nos, nvis = dense(q, k, scale, start, qidx, window, softcap)
    out = {"case": name}
    for var, want in (("raw", raw), ("nosink", nos), ("n_visible", nvis)):
        out[f"{var}_vs_dense"] = float((getattr(got, var).double() - want).abs().max())
        out[f"{var}_vs_ref"] = float((getattr(got, var) - getattr(ref, var)).abs().max())
    out["norm_vs_ref"] = float((got.norm - ref.norm).abs().max())
    out["finite"] = bool(torch.isfinite(got.raw).all() and torch.isfinite(got.nosink).all())
    out["median_raw"] = float(raw[raw > 0].median()) if bool((raw > 0).any()) else 0.0
    return out


def dispatcher_cases():
    """Check that the drop-in picks the kernel for standard masks and falls back otherwise."""
    g = torch.Generator().manual_seed(7)
    b, h, lk, dh = 2, 2, 40, 16
    q = torch.randn(b, h, lk, dh, generator=g)
    k = torch.randn(b, 1, lk, dh, generator=g)
    start = torch.tensor([0, 5])
    kidx = torch.arange(lk)
    vis = (kidx[None, None, :] <= kidx[None, :, None]) & (kidx[None, None, :]
                                                          >= start[:, None, None])
    neg = torch.finfo(torch.float32).min
    hf_mask = torch.where(vis, 0.0, neg)[:, None]  # HF eager-style additive 4-D mask
    ref = reference(q, k, attn_mask=hf_mask)
    fused = te.entropy_stats(q, k, attn_mask=hf_mask, use_triton=True)
    # A packed (block-diagonal) mask is not causal + left padding: must fall back.
    packed = vis.clone()
    packed[:, 20:, :20] = False
    packed4 = packed[:, None]
    fell_back = te.entropy_stats(q, k, attn_mask=packed4)
    ref_packed = reference(q, k, attn_mask=packed4)
    try:
        te.entropy_stats(q, k, attn_mask=packed4, use_triton=True)
        refused = False
    except RuntimeError:
        refused = True
    # An additive bias on visible keys is not a pure mask: must fall back too.
    biased = hf_mask + torch.where(vis[:, None], 0.5 * torch.randn(b, 1, lk, lk, generator=g),
                                   0.0)
    biased_fb = te.entropy_stats(q, k, attn_mask=biased)
    return {
        "case": "dispatcher",
        "hf_mask_vs_ref": float((fused.raw - ref.raw).abs().max()),
        "hf_mask_nosink_vs_ref": float((fused.nosink - ref.nosink).abs().max()),
        "packed_vs_ref": float((fell_back.raw - ref_packed.raw).abs().max()),
        "packed_refused": refused,
        "biased_vs_ref": float((biased_fb.raw - reference(q, k, attn_mask=biased).raw)
                               .abs().max()),
    }


def main() -> None:
    f32, bf16, f16 = torch.float32, torch.bfloat16, torch.float16
    cases = [
        run_case("fp32_causal", f32, 80, 80),
        run_case("fp32_window", f32, 72, 72, window=16),
        run_case("fp32_softcap", f32, 64, 64, softcap=5.0),
        run_case("fp32_sampled", f32, 12, 90, sampled=True),
        run_case("fp32_sink_dominant", f32, 48, 48, sink_boost=200.0),
        run_case("bf16_causal", bf16, 70, 70),
        run_case("fp16_causal_mha", f16, 40, 40, hq=2, hkv=2, dh=16),
        run_case("fp32_headdim_80", f32, 40, 40, hq=2, hkv=1, dh=80, starts=(3,)),
    ]
    print(json.dumps({"cases": cases, "dispatcher": dispatcher_cases()}))


if __name__ == "__main__":
    sys.exit(main())
