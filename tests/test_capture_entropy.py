"""Entropy and residuals of the hf backend against independent eager computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimicry.capture.base import EncodedItem, reduce_item
from mimicry.capture.config import ENTROPY_SEGMENTS, CaptureConfig
from mimicry.capture.entropy import entropy_stats, sdpa_entropy_stats
from mimicry.capture.hf import HFBackend, entropy_attention

ARCHS = ["qwen2", "llama", "qwen3", "mistral", "gemma2"]


def _ref_entropy(p: torch.Tensor) -> torch.Tensor:
    """-Σ p log p over the last axis, float64, 0·log 0 = 0."""
    p = p.double()
    return -(p * torch.log(torch.where(p > 0, p, torch.ones_like(p)))).sum(-1)


def _softmax_ref(q, k, scale, vis, softcap=None):
    kk = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1).double()
    s = (q.double() @ kk.transpose(-1, -2)) * scale
    if softcap is not None:
        s = torch.tanh(s / softcap) * softcap
    return torch.softmax(s.masked_fill(~vis, float("-inf")), -1), s


@pytest.mark.parametrize("chunk", [1, 3, 64])
@pytest.mark.parametrize("window,softcap", [(None, None), (4, 2.5)])
def test_entropy_stats_matches_softmax(chunk, window, softcap):
    torch.manual_seed(0)
    b, h, hkv, n, dh = 2, 4, 2, 11, 8
    q, k = torch.randn(b, h, n, dh) * 2, torch.randn(b, hkv, n, dh)
    valid = torch.ones(b, n, dtype=torch.bool)
    valid[0, :4] = False  # left padding of item 0
    i = torch.arange(n)
    vis = (i[None, :] <= i[:, None])
    if window:
        vis &= i[None, :] > i[:, None] - window
    vis = vis[None, None] & valid[:, None, None, :]
    p, _ = _softmax_ref(q, k, dh ** -0.5, vis, softcap)
    for mask in (valid, vis, torch.zeros(vis.shape).masked_fill(~vis, torch.finfo(torch.float32).min)):
        st = entropy_stats(q, k, attn_mask=mask, sliding_window=window, softcap=softcap, chunk=chunk)
        rows = valid  # padded query rows are not compared
        ref = _ref_entropy(p)
        assert torch.allclose(st.raw.double()[rows[:, None].expand(b, h, n)],
                              ref[rows[:, None].expand(b, h, n)], atol=1e-5)
        nvis = vis.sum(-1).expand(b, h, n)
        assert torch.equal(st.n_visible.long()[rows[:, None].expand(b, h, n)],
                           nvis[rows[:, None].expand(b, h, n)])
        # nosink: drop the first real key and renormalise the same softmax
        sink = valid.float().argmax(-1)
        for bi in range(b):
            ps = p[bi].clone()
            ps[:, :, sink[bi]] = 0
            tot = ps.sum(-1, keepdim=True)
            ps = torch.where(tot > 0, ps / tot.clamp_min(1e-300), ps)
            r = valid[bi]
            assert torch.allclose(st.nosink[bi][:, r].double(), _ref_entropy(ps)[:, r], atol=1e-5)
        norm_ref = torch.where(nvis > 1, ref / torch.log(nvis.double().clamp_min(1)), 0)
        assert torch.allclose(st.norm.double()[rows[:, None].expand(b, h, n)],
                              norm_ref[rows[:, None].expand(b, h, n)], atol=1e-5)


def test_entropy_stats_query_subset_equals_full_rows():
    torch.manual_seed(1)
    q, k = torch.randn(1, 2, 9, 4), torch.randn(1, 1, 9, 4)
    full = entropy_stats(q, k)
    idx = torch.tensor([[0, 3, 8]])
    sub = entropy_stats(q[:, :, idx[0]], k, query_index=idx)
    assert torch.allclose(sub.raw, full.raw[:, :, idx[0]], atol=1e-6)
    assert torch.allclose(sub.nosink, full.nosink[:, :, idx[0]], atol=1e-6)


def _items(lengths, vocab, seed=0):
    rs = np.random.RandomState(seed)
    out = []
    for i, n in enumerate(lengths):
        ids = rs.randint(10, vocab, size=n).astype(np.int64)
        p = 3 + i
        trunc = i == 1  # one trace without </think>: empty answer
        r_end = n if trunc else n - 3
        out.append(EncodedItem(f"it{i}", ids, n_prompt=p, reasoning_end=r_end,
                               think_end=-1 if trunc else r_end - 1, row=i, truncated=trunc))
    return out


def _eager_reference(model, item):
    """Return (hidden_states, per-token entropies {variant: [layers, h, L]}) from eager attention."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor(item.input_ids)[None], output_attentions=True,
                    output_hidden_states=True)
    raw, nos, norm = [], [], []
    for p in out.attentions:
        p = p[0].double()  # [h, L, L]
        h = _ref_entropy(p)
        ps = p.clone()
        ps[:, :, 0] = 0
        tot = ps.sum(-1, keepdim=True)
        ps = torch.where(tot > 0, ps / tot.clamp_min(1e-300), ps)
        nvis = (p > 0).sum(-1).double()
        raw.append(h.numpy())
        nos.append(_ref_entropy(ps).numpy())
        norm.append(torch.where(nvis > 1, h / torch.log(nvis.clamp_min(1)), 0).numpy())
    ent = {"raw": np.stack(raw), "nosink": np.stack(nos), "norm": np.stack(norm)}
    return [x[0].numpy() for x in out.hidden_states], ent


def _check_against_eager(model, items, acts, cfg):
    model.set_attn_implementation("eager")
    for it, a in zip(items, acts):
        hs, ent = _eager_reference(model, it)
        n = len(hs) - 1
        for s in cfg.sites:
            w = it.weights([s])[0]
            for layer in range(n):  # HF's last hidden state is after the final norm
                ref = w @ hs[layer].astype(np.float64) if w.sum() else np.full(hs[0].shape[1], np.nan)
                np.testing.assert_allclose(a.resid[s][layer], ref, atol=1e-5, equal_nan=True)
            if w.sum() and not s.startswith("mean_"):  # norm(mean) != mean(norm)
                normed = model.model.norm(torch.tensor(a.resid[s][n])).detach().numpy()
                np.testing.assert_allclose(normed, w @ hs[n].astype(np.float64), atol=1e-4)
        pos = it.entropy_positions if cfg.entropy == "sampled" else None
        for v in ("raw", "norm", "nosink"):
            for seg in ENTROPY_SEGMENTS:
                w = it.weights([seg], pos)[0]
                ref = np.einsum("l,khl->kh", w, ent[v]) if w.sum() else np.nan
                np.testing.assert_allclose(a.entropy[v][seg], np.broadcast_to(
                    ref, a.entropy[v][seg].shape), atol=1e-5, equal_nan=True,
                    err_msg=f"{v}/{seg}")


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_backend_matches_eager_on_left_padded_batch(arch, tiny_tokenizer):
    from mimicry.testing import build_tiny_model

    kw = {"sliding_window": 6} if arch in ("mistral", "gemma2") else {}
    model, tok = build_tiny_model(arch, tokenizer=tiny_tokenizer, **kw)
    orig = model.config._attn_implementation
    items = _items([17, 12, 23], len(tok))  # different lengths -> left padding
    cfg = CaptureConfig(query_chunk=5)
    acts = HFBackend(model, tok, cfg).run(items)
    assert model.config._attn_implementation == orig  # switched back
    assert np.isnan(acts[1].entropy["raw"]["answer"]).all()  # truncated: empty answer
    assert np.isnan(acts[1].resid["think_end"]).all()
    _check_against_eager(model, items, acts, cfg)


def test_sampled_mode_equals_exact_at_sampled_positions(tiny_tokenizer):
    from mimicry.capture.segments import sampled_positions
    from mimicry.testing import build_tiny_model

    model, tok = build_tiny_model("qwen2", tokenizer=tiny_tokenizer)
    cfg = CaptureConfig(entropy="sampled", n_sampled=6, seed=3)
    items = _items([19, 9, 25], len(tok), seed=2)
    for it in items:
        it.entropy_positions = sampled_positions(it.length, 6, 3, it.key,
                                                 (it.last_prompt, it.think_end))
    assert len(items[0].entropy_positions) < items[0].length  # really a subset
    acts = HFBackend(model, tok, cfg).run(items)
    _check_against_eager(model, items, acts, cfg)


def test_reduce_item_equals_hf_backend(tiny_tokenizer):
    """The shared reduction (used by the tl/nnsight backends) agrees with the hf hooks."""
    from mimicry.testing import build_tiny_model

    model, tok = build_tiny_model("llama", tokenizer=tiny_tokenizer)
    cfg = CaptureConfig(per_token_stride=4)
    items = _items([14, 10], len(tok), seed=5)
    for it in items:
        it.token_positions = np.arange(0, it.length, 4)
    acts = HFBackend(model, tok, cfg).run(items)
    model.set_attn_implementation("eager")
    for it, a in zip(items, acts):
        hs, ent = _eager_reference(model, it)
        with torch.no_grad():
            last = model.model.layers[-1]  # pre-norm output of the last layer from a hook
            got: list = []

            def keep(m, i, o, got=got):
                got.append(o[0] if isinstance(o, tuple) else o)

            hdl = last.register_forward_hook(keep)
            model(input_ids=torch.tensor(it.input_ids)[None])
            hdl.remove()
        full = np.stack(hs[:-1] + [got[0][0].numpy()])  # [n_layers+1, L, d]
        r = reduce_item(it, cfg, full, ent)
        for s in cfg.sites:
            np.testing.assert_allclose(r.resid[s], a.resid[s], atol=1e-5, equal_nan=True)
        for seg in ENTROPY_SEGMENTS:
            np.testing.assert_allclose(r.entropy["nosink"][seg], a.entropy["nosink"][seg],
                                       atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(r.token_resid, a.token_resid, atol=1e-5)


def test_capture_leaves_sdpa_output_unchanged(tiny_tokenizer):
    from mimicry.testing import build_tiny_model

    model, tok = build_tiny_model("qwen2", tokenizer=tiny_tokenizer)
    assert model.config._attn_implementation == "sdpa"
    items = _items([15, 8], len(tok))
    backend = HFBackend(model, tok, CaptureConfig())
    from mimicry.capture.hf import pad_batch

    ids, mask, pos, pads = pad_batch(items, tok.pad_token_id, "cpu")
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        sink = backend._entropy_sink(items, ids.shape[1], pads)
        with entropy_attention(model, sink):
            assert model.config._attn_implementation == "mimicry_entropy_sdpa"
            side = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    assert model.config._attn_implementation == "sdpa"
    assert len(sink.out) == model.config.num_hidden_layers  # the side-car really ran
    assert torch.equal(plain, side)


def test_entropy_stats_stable_when_the_sink_takes_almost_all_attention():
    torch.manual_seed(2)
    v = torch.ones(8)
    q, k = v + 0.1 * torch.randn(1, 2, 12, 8), torch.randn(1, 2, 12, 8)
    k[:, :, 0] = v * 4  # key 0 scores far above the rest: p0 close to 1
    st = entropy_stats(q, k)
    i = torch.arange(12)
    vis = (i[None, :] <= i[:, None])[None, None]
    p, _ = _softmax_ref(q.double(), k.double(), 8 ** -0.5, vis)
    assert p[0, :, 5:, 0].min() > 0.99
    ps = p.clone()
    ps[..., 0] = 0
    ps = torch.where(ps.sum(-1, keepdim=True) > 0, ps / ps.sum(-1, keepdim=True).clamp_min(1e-300), ps)
    assert torch.allclose(st.raw.double(), _ref_entropy(p), atol=1e-5)
    assert torch.allclose(st.nosink.double(), _ref_entropy(ps), atol=1e-5)


@pytest.mark.parametrize("sink_heavy", [False, True])
def test_sdpa_entropy_stats_matches_float64_softmax(sink_heavy):
    """The CPU flash-attention path (V = K trick) on left-padded rows, all rows and a subset."""
    torch.manual_seed(3)
    b, h, hkv, n, dh = 3, 4, 2, 23, 8
    v = torch.ones(dh)
    q = (v if sink_heavy else 0) + torch.randn(b, h, n, dh)
    k = torch.randn(b, hkv, n, dh)
    starts = torch.tensor([0, 6, 22])  # item 2 has a single real token
    if sink_heavy:
        for i, st in enumerate(starts.tolist()):
            k[i, :, st] = v * 3
    i_ = torch.arange(n)
    valid = i_[None, :] >= starts[:, None]
    vis = (i_[None, :] <= i_[:, None])[None, None] & valid[:, None, None, :]
    p, _ = _softmax_ref(q.double(), k.double(), dh ** -0.5, vis)
    ps = p.clone()
    ps[torch.arange(b), :, :, starts] = 0
    ps = torch.where(ps.sum(-1, keepdim=True) > 0, ps / ps.sum(-1, keepdim=True).clamp_min(1e-300), ps)
    full = sdpa_entropy_stats(q, k, key_start=starts)
    rows = valid[:, None, :].expand(b, h, n)
    assert torch.allclose(full.raw.double()[rows], _ref_entropy(p)[rows], atol=1e-5)
    assert torch.allclose(full.nosink.double()[rows], _ref_entropy(ps)[rows], atol=1e-5)
    assert torch.equal(full.n_visible[rows], vis.sum(-1).expand(b, h, n).float()[rows])
    assert (full.raw[~rows] == 0).all()
    idx = torch.tensor([[0, 4, 9, 22], [6, 7, 15, 22], [22, 22, 22, 22]])
    sub = sdpa_entropy_stats(q[torch.arange(b)[:, None], :, idx].transpose(1, 2), k,
                             key_start=starts, query_index=idx)
    want = _ref_entropy(p)[torch.arange(b)[:, None], :, idx].transpose(1, 2)
    assert torch.allclose(sub.raw.double(), want, atol=1e-5)
