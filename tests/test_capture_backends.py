"""Three capture backends (hf, tl, nnsight) against an eager HF forward, item by item.

The reference is computed here from scratch: each item runs *alone* (no padding) through a
freshly loaded eager model with ``output_attentions``; the residual stream comes from
``output_hidden_states`` (plus a hook for the last layer, whose hidden state HF returns after
the final norm); entropies are ``-Σ p log p`` of the returned probabilities, the no-sink
variant renormalises them without key 0, and segment means are plain numpy means over the
segment's token range. The backends see the same items as one left-padded batch of three
different lengths, each on its own freshly loaded model (TransformerLens rewires the model
it wraps). Tolerance 1e-5 in float32. Architectures: Qwen2, Llama, and Mistral and Gemma2
with a sliding window shorter than the traces.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimicry.capture.config import ALL_SITES, ENTROPY_SEGMENTS, CaptureConfig
from mimicry.capture.segments import encode_traces
from mimicry.models import load_model
from mimicry.traces import Trace

pytest.importorskip("transformer_lens")
pytest.importorskip("nnsight")

ATOL = 1e-5
BACKENDS = ["hf", "tl", "nnsight"]
# (arch, config overrides): a window of 8 < the traces' lengths makes sliding windows bite
# (Gemma2 alternates sliding/full layers and soft-caps logits; Mistral windows every layer).
ARCHS = [("qwen2", {}), ("llama", {}), ("mistral", {"sliding_window": 8}),
         ("gemma2", {"sliding_window": 8})]


def _traces() -> list[Trace]:
    base = "Let me think step by step. First, compose the relations. "
    return [
        Trace(item_id="a", model="teacher", task="t", prompt="A is left of B. Is A left of C?",
              reasoning=base * 3 + "So the answer is", answer_text="yes"),
        Trace(item_id="b", model="teacher", task="t", prompt="All models are managers.",
              reasoning="carry step add", answer_text="No valid conclusion."),
        # truncated: no </think>, no answer
        Trace(item_id="c", model="teacher", task="t", prompt="Compute 12 + 7 * 3 - 5 = ?",
              reasoning=base * 2 + "multiply result", finish_reason="length"),
    ]


def _entropy_rows(p: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-token entropies ``[h, L]`` of one item's eager pattern ``p [h, L, L]`` (no padding)."""
    p = p.double()
    h, n, _ = p.shape

    def ent(q):
        return -(q * torch.log(torch.where(q > 0, q, torch.ones_like(q)))).sum(-1)

    raw = ent(p)
    # visible keys = where eager put any probability (exactly 0 on masked keys; with these
    # small random models no visible key underflows): covers causal and sliding windows
    nvis = (p[0] > 0).sum(-1).double()
    norm = torch.where(nvis > 1, raw / torch.log(nvis.clamp_min(2)), torch.zeros_like(raw))
    rest = p[:, :, 1:]
    tot = rest.sum(-1, keepdim=True)
    nos = torch.where(tot[..., 0] > 0, ent(rest / tot.clamp_min(1e-300)), torch.zeros_like(raw))
    return {"raw": raw.numpy(), "norm": norm.numpy(), "nosink": nos.numpy()}


def _segment_mean(x: np.ndarray, item, name: str, axis: int,
                  positions: np.ndarray | None = None) -> np.ndarray:
    a, b = item.segment_range(name)
    idx = np.arange(a, b)
    if positions is not None:
        idx = np.intersect1d(idx, positions)
    if len(idx) == 0:
        shape = list(x.shape)
        del shape[axis]
        return np.full(shape, np.nan)
    return np.take(x, idx, axis=axis).mean(axis=axis)


def eager_reference(model_dir: str, items, config: CaptureConfig) -> dict:
    """Return ``{item_id: {"resid": {site: [n_layers+1, d]}, "entropy": {var: {seg: [n_layers, h]}}}}``."""
    model, _ = load_model(model_dir, attn_implementation="eager", dtype="float32")
    last = {}
    handle = model.model.layers[-1].register_forward_hook(
        lambda m, a, o: last.__setitem__("h", o[0] if isinstance(o, tuple) else o))
    ref = {}
    try:
        for it in items:
            ids = torch.as_tensor(it.input_ids)[None]
            with torch.no_grad():
                out = model(input_ids=ids, output_hidden_states=True, output_attentions=True)
            hs = torch.stack(list(out.hidden_states[:-1]) + [last["h"]])[:, 0].double().numpy()
            resid = {s: _segment_mean(hs, it, s, axis=1) for s in config.sites}
            pos = it.entropy_positions if config.entropy == "sampled" else None
            ent = {}
            if config.entropy != "off":
                rows = [_entropy_rows(a[0]) for a in out.attentions]  # per layer: var -> [h, L]
                ent = {v: {seg: np.stack([_segment_mean(r[v], it, seg, axis=1, positions=pos)
                                          for r in rows])
                           for seg in ENTROPY_SEGMENTS}
                       for v in ("raw", "norm", "nosink")}
            ref[it.item_id] = {"resid": resid, "entropy": ent}
    finally:
        handle.remove()
    return ref


def run_backend(name: str, model_dir: str, items, config: CaptureConfig) -> dict:
    from mimicry.capture.driver import make_backend

    model, tok = load_model(model_dir, dtype="float32")  # SDPA, as the runner loads it
    backend = make_backend(name, model, tok, config)
    return {a.item_id: a for a in backend.run(items)}


@pytest.fixture(scope="module", params=ARCHS, ids=[a for a, _ in ARCHS])
def setup(request, tiny_model_dir, tiny_tokenizer):
    arch, overrides = request.param
    model_dir = tiny_model_dir(arch, **overrides)
    config = CaptureConfig(sites=ALL_SITES, entropy="exact", per_token_stride=4)
    items = encode_traces(tiny_tokenizer, _traces(), config)
    lengths = sorted({it.length for it in items})
    assert len(lengths) == 3, lengths  # three different lengths -> real left padding
    ref = eager_reference(model_dir, items, config)
    got = {b: run_backend(b, model_dir, items, config) for b in BACKENDS}
    return arch, items, config, ref, got


def _close(a, b, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert np.array_equal(np.isnan(a), np.isnan(b)), what
    err = np.nanmax(np.abs(a - b)) if np.isfinite(a).any() else 0.0
    assert err <= ATOL, f"{what}: max abs diff {err:.3g}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_residuals_match_eager_reference(setup, backend):
    arch, items, config, ref, got = setup
    for it in items:
        for s in config.sites:
            _close(got[backend][it.item_id].resid[s], ref[it.item_id]["resid"][s],
                   f"{arch}/{backend}/{it.item_id}/{s}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_entropy_matches_eager_output_attentions(setup, backend):
    arch, items, config, ref, got = setup
    for it in items:
        for v in ("raw", "norm", "nosink"):
            for seg in ENTROPY_SEGMENTS:
                _close(got[backend][it.item_id].entropy[v][seg],
                       ref[it.item_id]["entropy"][v][seg],
                       f"{arch}/{backend}/{it.item_id}/{v}/{seg}")


def test_backends_agree_with_each_other(setup):
    arch, items, config, _, got = setup
    for it in items:
        a = got["hf"][it.item_id]
        for other in ("tl", "nnsight"):
            b = got[other][it.item_id]
            for s in config.sites:
                _close(a.resid[s], b.resid[s], f"{arch}/hf-vs-{other}/{it.item_id}/{s}")
            _close(a.token_resid, b.token_resid, f"{arch}/hf-vs-{other}/{it.item_id}/tokens")
            assert np.array_equal(a.token_positions, b.token_positions)


def test_truncated_item_has_nan_answer_everywhere(setup):
    _, items, _, _, got = setup
    trunc = [it for it in items if it.truncated]
    assert trunc, "the fixture must contain a truncated trace"
    for b in BACKENDS:
        acts = got[b][trunc[0].item_id]
        assert np.isnan(acts.resid["mean_answer"]).all() and np.isnan(acts.resid["think_end"]).all()
        assert np.isnan(acts.entropy["raw"]["answer"]).all()


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_sampled_and_off_modes(tiny_model_dir, tiny_tokenizer, backend):
    model_dir = tiny_model_dir("qwen2")
    sampled = CaptureConfig(entropy="sampled", n_sampled=5, seed=3)
    items = encode_traces(tiny_tokenizer, _traces(), sampled)
    assert all(it.entropy_positions is not None and len(it.entropy_positions) < it.length
               for it in items)
    ref = eager_reference(model_dir, items, sampled)
    got = run_backend(backend, model_dir, items, sampled)
    for it in items:
        for seg in ENTROPY_SEGMENTS:
            _close(got[it.item_id].entropy["raw"][seg], ref[it.item_id]["entropy"]["raw"][seg],
                   f"sampled/{backend}/{it.item_id}/{seg}")
    off = CaptureConfig(entropy="off")
    items = encode_traces(tiny_tokenizer, _traces(), off)
    got = run_backend(backend, model_dir, items, off)
    ref = eager_reference(model_dir, items, off)
    for it in items:
        assert got[it.item_id].entropy == {}
        for s in off.sites:
            _close(got[it.item_id].resid[s], ref[it.item_id]["resid"][s], f"off/{backend}/{s}")


def test_capture_writes_same_cache_for_every_backend(tiny_model_dir, tmp_path):
    """The Python entry point with --backend tl/nnsight writes what hf writes (same layout)."""
    from mimicry import open_cache
    from mimicry.capture.driver import capture

    model_dir = tiny_model_dir("llama")
    paths = {}
    for b in BACKENDS:
        cfg = CaptureConfig(entropy="exact", backend=b, batch_tokens=256)
        paths[b] = capture(model_dir, _traces(), tmp_path / f"{b}.h5", cfg, progress=False,
                           log=lambda s: None)
    with open_cache(paths["hf"]) as ref:
        n_layers = ref.n_layers
        for b in ("tl", "nnsight"):
            with open_cache(paths[b]) as c:
                assert list(c.items["item_id"]) == list(ref.items["item_id"])
                assert c.items.equals(ref.items)
                for layer in range(n_layers + 1):
                    for s in ALL_SITES:
                        _close(c.resid(layer, s), ref.resid(layer, s), f"{b}/L{layer}/{s}")
                for seg in ENTROPY_SEGMENTS:
                    for v in ("raw", "norm", "nosink"):
                        _close(c.entropy(seg, v), ref.entropy(seg, v), f"{b}/{seg}/{v}")
