"""No L×L block: the largest single allocation of a capture is one query chunk, not a layer."""

from __future__ import annotations

import numpy as np
import pytest
from torch.profiler import ProfilerActivity, profile

from mimicry.capture.base import EncodedItem
from mimicry.capture.config import CaptureConfig
from mimicry.capture.hf import HFBackend


@pytest.mark.parametrize("arch,mode,window", [
    ("qwen2", "exact", None),  # CPU flash-attention path
    ("qwen2", "sampled", None),
    ("mistral", "exact", 256),  # sliding window: the chunked torch path
])
def test_largest_allocation_is_a_query_chunk(arch, mode, window, tiny_tokenizer):
    from mimicry.testing import build_tiny_model

    kw = {"sliding_window": window} if window else {}
    model, tok = build_tiny_model(arch, tokenizer=tiny_tokenizer, **kw)
    n, chunk, heads = 1024, 64, model.config.num_attention_heads
    ids = np.random.RandomState(0).randint(10, len(tok), size=n)
    item = EncodedItem("a", ids, n_prompt=20, reasoning_end=n - 8, think_end=n - 9, row=0)
    if mode == "sampled":
        item.entropy_positions = np.sort(np.random.RandomState(1).choice(n, 128, replace=False))
    biggest = {}
    for m in ("off", mode):
        backend = HFBackend(model, tok, CaptureConfig(entropy=m, query_chunk=chunk))
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            acts = backend.run([item])
        biggest[m] = max(e.cpu_memory_usage for e in prof.events())
    assert np.isfinite(acts[0].entropy["raw"]["reasoning"]).all()
    # the model's own forward may build an L×L mask (sliding window: HF's mask, which SDPA
    # turns into float); the capture must add nothing larger than one query chunk
    model_own = biggest["off"]
    biggest = biggest[mode]
    # a layer's fp32 attention matrix would be heads * n * n * 4 bytes (16 MiB here); the
    # largest block must be one fp32 score chunk of `chunk` query rows (1 MiB), counted by the
    # profiler together with the contiguous copy of K that the chunk's matmul makes
    layer_lxl = heads * n * n * 4
    k_copy = model.config.num_key_value_heads * (model.config.hidden_size // heads) * n * 4
    assert biggest <= max(model_own, heads * chunk * n * 4 + k_copy), biggest
    assert heads * chunk * n * 4 + k_copy <= layer_lxl / 8
