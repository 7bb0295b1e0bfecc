"""Dense float64 attention entropy from scratch: the independent check of the fast paths."""

from __future__ import annotations

import torch


def dense(q, k, scale, start, qidx, window=None, softcap=None):
    """Return (raw, nosink, n_visible) ``[b, h, Lq]`` from a dense float64 softmax."""
    b, h, lq, _ = q.shape
    rep = h // k.shape[1]
    kk = k.double().repeat_interleave(rep, 1)
    s = (q.double() @ kk.transpose(-1, -2)) * scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    kj = torch.arange(k.shape[2])
    qi = qidx[:, :, None]
    vis = (kj[None, None, :] <= qi) & (kj[None, None, :] >= start[:, None, None])
    if window:
        vis &= qi - kj[None, None, :] < window
    vis = vis[:, None].expand(b, h, lq, -1)

    def ent(v):
        ss = s.masked_fill(~v, float("-inf"))
        lp = torch.log_softmax(ss, -1)
        hh = -(lp.exp() * torch.where(v, lp, torch.zeros_like(lp))).sum(-1)
        return torch.where(v.any(-1), hh, torch.zeros_like(hh))

    nosink = vis & (kj[None, None, None, :] != start[:, None, None, None])
    return ent(vis), ent(nosink), vis.sum(-1).double()


def make_inputs(name, dtype, lq, lk, *, sampled=False, sink_boost=0.0, hq=4, hkv=2, dh=24,
                starts=(0, 9)):
    """Return seeded ``(q [b, hq, lq, dh], k [b, hkv, lk, dh], start [b], qidx [b, lq])``.

    ``sink_boost`` makes each item's first real key dominate (as in trained models);
    ``sampled`` draws ``lq`` sorted query positions per item instead of the last ``lq``.
    """
    g = torch.Generator().manual_seed(len(name))
    b = len(starts)
    q = torch.randn(b, hq, lq, dh, generator=g) * 1.5
    k = torch.randn(b, hkv, lk, dh, generator=g) * 1.5
    start = torch.tensor(starts)
    if sink_boost:  # make the sink key dominate every row, as in trained models
        u = torch.randn(dh, generator=g)
        u = u / u.norm()
        q = q + 3.0 * u
        for i, s0 in enumerate(starts):
            k[i, :, s0] = sink_boost * u
    q, k = q.to(dtype), k.to(dtype)
    if sampled:
        qidx = torch.stack([torch.sort(torch.randperm(lk, generator=g)[:lq]).values
                            for _ in range(b)])
    else:
        qidx = torch.arange(lk - lq, lk).expand(b, lq)
    return q, k, start, qidx
