"""The fused Triton entropy kernel against a dense float64 softmax and the torch reference.

Without a GPU the kernel runs under Triton's interpreter (``TRITON_INTERPRET=1``, CPU
tensors) in a subprocess, since the variable must be set before triton is imported; the
subprocess prints max errors per case (``tests/_triton_entropy_check.py``). With CUDA the
compiled kernel is checked directly at a longer length. Both skip, with the reason, where
triton is missing (it is not a dependency of the CPU install).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mimicry.capture import triton_entropy as te
from mimicry.capture.entropy import entropy_stats as reference

HAVE_TRITON = importlib.util.find_spec("triton") is not None
CHECK = Path(__file__).with_name("_triton_entropy_check.py")
CASES = ["fp32_causal", "fp32_window", "fp32_softcap", "fp32_sampled", "fp32_sink_dominant",
         "bf16_causal", "fp16_causal_mha", "fp32_headdim_80"]


@pytest.fixture(scope="module")
def interpreted():
    if not HAVE_TRITON:
        pytest.skip("triton is not installed (pip install triton to run the kernel tests)")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, str(CHECK)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {c["case"]: c for c in out["cases"]}, out["dispatcher"]


@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_dense_softmax_and_reference(interpreted, case):
    res = interpreted[0][case]
    assert res["finite"]
    for var in ("raw", "nosink"):
        assert res[f"{var}_vs_dense"] < 1e-5, (var, res)
        assert res[f"{var}_vs_ref"] < 1e-5, (var, res)
    assert res["n_visible_vs_dense"] == 0 and res["n_visible_vs_ref"] == 0
    assert res["norm_vs_ref"] < 1e-5


def test_sink_dominant_case_really_is(interpreted):
    # The sink takes ~all the mass (raw entropy ~0) while nosink stays exact (checked above):
    # a single-accumulator "subtract the sink" formula would underflow here.
    assert interpreted[0]["fp32_sink_dominant"]["median_raw"] < 1e-3


def test_dispatcher_accepts_hf_mask_and_falls_back_on_others(interpreted):
    d = interpreted[1]
    assert d["hf_mask_vs_ref"] < 1e-5 and d["hf_mask_nosink_vs_ref"] < 1e-5
    assert d["packed_vs_ref"] == 0.0  # fell back to the reference itself
    assert d["packed_refused"]  # use_triton=True refuses a packed mask instead
    assert d["biased_vs_ref"] == 0.0


def test_dispatcher_without_kernel_is_the_reference():
    """On CPU without the interpreter the drop-in must return the reference's numbers."""
    if te.triton_available("cpu"):
        pytest.skip("TRITON_INTERPRET is set in this process")
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 4, 30, 16, generator=g)
    k = torch.randn(2, 2, 30, 16, generator=g)
    mask = torch.ones(2, 30, dtype=torch.long)
    mask[1, :6] = 0
    got = te.entropy_stats(q, k, attn_mask=mask, sliding_window=8)
    want = reference(q, k, attn_mask=mask, sliding_window=8)
    for var in ("raw", "nosink", "n_visible"):
        assert torch.equal(getattr(got, var), getattr(want, var))
    with pytest.raises(RuntimeError):
        te.entropy_stats(q, k, attn_mask=mask, use_triton=True)


@pytest.mark.skipif(not (HAVE_TRITON and torch.cuda.is_available()), reason="needs CUDA + triton")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_kernel_matches_reference(dtype):
    g = torch.Generator(device="cuda").manual_seed(0)
    b, h, hkv, length, dh = 2, 8, 2, 2048, 128
    q = torch.randn(b, h, length, dh, device="cuda", generator=g).to(dtype)
    k = torch.randn(b, hkv, length, dh, device="cuda", generator=g).to(dtype)
    mask = torch.ones(b, length, dtype=torch.long, device="cuda")
    mask[1, :300] = 0
    got = te.entropy_stats(q, k, attn_mask=mask, use_triton=True)
    want = reference(q, k, attn_mask=mask)
    for var in ("raw", "nosink", "n_visible"):
        torch.testing.assert_close(getattr(got, var), getattr(want, var), atol=2e-5, rtol=0)
