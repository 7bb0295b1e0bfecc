"""Exact attention entropy in torch with fewer passes: the CPU (and no-Triton) fast path.

The same numbers as :func:`mimicry.capture.entropy.entropy_stats` (the reference) for the
masks a prefill uses — causal, left padding, optional sliding window — computed the way the
fused kernel does it, per query chunk:

- only the key range the chunk can see is multiplied (``[min visible key, last query]``), so a
  causal prefill does about half the reference's work;
- one shifted score block ``s - max`` (in place, masks as an additive bias), one ``exp``;
  ``H = log l - Σ p (s - m) / l`` with ``l = Σ p``;
- as in the kernel, the sums run over the keys other than the sink (the no-sink variant, with
  no ``1 - p_sink`` cancellation) and the sink's term is added back for the raw entropy; rows
  whose other keys underflow (the sink ahead by > ~87 nats) are recomputed with the sink
  masked before the max.

:func:`blockwise_entropy_stats` returns :class:`~mimicry.capture.entropy.EntropyStats`.
"""

from __future__ import annotations

import torch

from .entropy import EntropyStats

_TINY = 1e-30


def _h(lsum: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Return ``log l - a / l`` (0 where ``l`` is 0): H from ``l = Σ p``, ``a = Σ p (s - m)``."""
    ok = lsum > _TINY
    ls = torch.where(ok, lsum, torch.ones_like(lsum))
    return torch.where(ok, torch.log(ls) - a / ls, torch.zeros_like(lsum))


def blockwise_entropy_stats(
    q: torch.Tensor, k: torch.Tensor, *, scaling: float | None = None,
    key_start: torch.Tensor | None = None, query_index: torch.Tensor | None = None,
    sliding_window: int | None = None, softcap: float | None = None,
    sink_index: torch.Tensor | None = None, chunk: int = 256,
    max_block_elems: int = 1 << 24,
) -> EntropyStats:
    """Return :class:`EntropyStats` ``[b, h, Lq]`` (raw, nosink, n_visible), float32.

    ``q``: ``[b, h, Lq, dh]``; ``k``: ``[b|1, h_kv, Lk, dh]`` post-RoPE (GQA as HF's
    ``repeat_kv``). ``key_start``: ``[b]`` first real key (left padding; default 0);
    ``query_index``: ``[Lq]`` or ``[b, Lq]`` key index of each query (default the last ``Lq``);
    ``sliding_window``: keys with ``q - k >= window`` hidden; ``softcap``: Gemma-2 capping;
    ``sink_index``: ``[b]`` (default ``key_start``). Rows that see no key are 0, as are
    no-sink rows that see only the sink.
    """
    b, h, lq, dh = q.shape
    hkv, lk = k.shape[1], k.shape[2]
    if k.shape[3] != dh or h % hkv or k.shape[0] not in (b, 1):
        raise ValueError(f"incompatible q {tuple(q.shape)} and k {tuple(k.shape)}")
    rep = h // hkv
    dev = q.device
    scale = float(scaling) if scaling is not None else dh ** -0.5
    qidx = (torch.arange(lk - lq, lk, device=dev) if query_index is None
            else torch.as_tensor(query_index, device=dev).long())
    qidx = qidx.expand(b, lq) if qidx.dim() == 1 else qidx
    start = (torch.zeros(b, dtype=torch.long, device=dev) if key_start is None
             else torch.as_tensor(key_start, device=dev).long().expand(b))
    sink = start if sink_index is None else torch.as_tensor(sink_index, device=dev).long().expand(b)
    kf = k.float().expand(b, -1, -1, -1)
    raw = torch.zeros(b, h, lq, dtype=torch.float32, device=dev)
    nos = torch.zeros_like(raw)
    step = max(1, min(chunk, max_block_elems // max(1, b * h * lk)))
    bi = torch.arange(b, device=dev)
    for q0 in range(0, lq, step):
        qi = qidx[:, q0:q0 + step]  # [b, c]
        c = qi.shape[1]
        lo = int(start.min())
        if sliding_window:
            lo = max(lo, int(qi.min()) - sliding_window + 1)
        lo = max(0, lo)
        hi = min(lk, int(qi.max()) + 1)
        if hi <= lo:
            continue
        kidx = torch.arange(lo, hi, device=dev)
        kc = kf[:, :, lo:hi, :].transpose(-1, -2).unsqueeze(2)  # [b, hkv, 1, dh, n]
        qc = q[:, :, q0:q0 + c, :].float().reshape(b, hkv, rep, c, dh)
        s = torch.matmul(qc, kc).reshape(b, h, c, hi - lo).mul_(scale)
        if softcap is not None:
            s = torch.tanh(s.div_(softcap)).mul_(softcap)
        vis = (kidx[None, None, :] <= qi[:, :, None]) & (kidx[None, None, :]
                                                          >= start[:, None, None])
        if sliding_window:
            vis = vis & (qi[:, :, None] - kidx[None, None, :] < sliding_window)
        vis = vis[:, None]  # [b, 1, c, n]
        # additive 0/-inf bias (a broadcast add is much cheaper than masked_fill on CPU)
        s.add_(torch.zeros(vis.shape, device=dev).masked_fill_(~vis, float("-inf")))
        m = s.amax(-1, keepdim=True).clamp_min(-1e30)
        # shift; hidden keys become -1e4: exp() == 0 there and 0 * -1e4 == 0 in the dot
        s.sub_(m).clamp_(min=-1e4)
        p = torch.exp(s)
        # the sink's column, then the sums over the other keys (no 1 - p_sink cancellation)
        col = sink - lo
        inside = (col >= 0) & (col < hi - lo)
        p_sink = torch.zeros(b, h, c, device=dev)
        d_sink = torch.zeros(b, h, c, device=dev)
        if bool(inside.any()):
            ib, ic = bi[inside], col[inside]
            p_sink[ib] = p[ib, :, :, ic]
            d_sink[ib] = s[ib, :, :, ic]
            p[ib, :, :, ic] = 0.0
        l_rest = p.sum(-1)
        a_rest = torch.linalg.vecdot(p, s)
        l_all = l_rest + p_sink
        a_all = a_rest + p_sink * d_sink
        raw[:, :, q0:q0 + c] = _h(l_all, a_all)
        hn = _h(l_rest, a_rest)
        # rows whose non-sink keys underflowed next to a dominant sink: redo them exactly
        n_rest = (vis & (kidx != sink[:, None])[:, None, None, :]).sum(-1)  # [b, 1, c]
        redo = (l_rest <= _TINY) & (n_rest > 0)
        if bool(redo.any()):
            s2 = torch.matmul(qc, kc).reshape(b, h, c, hi - lo) * scale
            if softcap is not None:
                s2 = torch.tanh(s2 / softcap) * softcap
            vis2 = vis & (kidx != sink[:, None])[:, None, None, :]
            s2 = s2.masked_fill(~vis2, float("-inf"))
            s2 = (s2 - s2.amax(-1, keepdim=True).clamp_min(-1e30)).clamp_(min=-1e4)
            p2 = torch.exp(s2)
            hn = torch.where(redo, _h(p2.sum(-1), torch.linalg.vecdot(p2, s2)), hn)
        nos[:, :, q0:q0 + c] = hn
    lo_all = start[:, None].expand(b, lq)
    if sliding_window:
        lo_all = torch.maximum(lo_all, qidx - sliding_window + 1)
    nvis = (torch.clamp(qidx, max=lk - 1) - lo_all + 1).clamp_min(0).float()
    return EntropyStats(raw, nos, nvis[:, None, :].expand(b, h, lq).contiguous())
