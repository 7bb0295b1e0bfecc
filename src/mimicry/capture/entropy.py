"""Attention entropy from post-RoPE queries and keys, in query chunks, in float32.

For one query row with visible keys K and scores ``s_j = scaling * q·k_j`` (Gemma2: soft-capped,
``c * tanh(s / c)``; plus any additive float mask), the attention entropy is
``H = logsumexp(s) - Σ p_j s_j = Σ p_j (logsumexp(s) - s_j)`` with ``p = softmax(s)``.
Three variants are returned per query row:

- ``raw``: H in nats;
- ``norm``: H / log(n_visible) (0 where only one key is visible);
- ``nosink``: H over the visible keys without the sink (the item's first real token),
  renormalised (0 where the sink was the only visible key).

No ``[Lq, Lk]`` block larger than ``[b, h, chunk, Lk]`` is ever held; the chunk shrinks
further so a block stays under ``max_block_elems`` elements. This is the reference that the
fused Triton kernel (``capture/triton_entropy.py``) must match, and the CPU path for
sliding windows and soft-capping. :func:`sdpa_entropy_stats` is the fast CPU path for plain
causal attention (torch's fused flash-attention kernel with ``V = K``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

DEFAULT_MAX_BLOCK_ELEMS = 1 << 24  # 64 MiB of float32 per score block


class EntropyStats(NamedTuple):
    """Per-query attention entropy: ``raw``, ``nosink`` ``[b, h, Lq]`` and ``n_visible``.

    ``n_visible``: ``[b, h, Lq]`` number of keys each query row attends to (float32).
    """

    raw: torch.Tensor
    nosink: torch.Tensor
    n_visible: torch.Tensor

    @property
    def norm(self) -> torch.Tensor:
        """Return ``raw / log(n_visible)`` ``[b, h, Lq]`` (0 where n_visible <= 1)."""
        logn = torch.log(self.n_visible.clamp(min=1.0))
        return torch.where(self.n_visible > 1, self.raw / logn.clamp(min=1e-30),
                           torch.zeros_like(self.raw))

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Return ``{"raw", "norm", "nosink"}`` -> ``[b, h, Lq]``."""
        return {"raw": self.raw, "norm": self.norm, "nosink": self.nosink}


_NEG = -1e30  # finite "masked" score: exp underflows to 0 and 0 * 1e30 stays 0 (no NaN)


def _chunk_stats(s: torch.Tensor, vis: torch.Tensor, sink_rel: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(raw, nosink, n_visible)`` ``[b, h, c]`` for score rows ``s [b, h, c, n]``.

    One pass over the keys without the sink (``sink_rel [b]``, key index within ``s``; may be
    out of range), then the sink is folded in exactly:
    ``H = p0 (lse - s0) + (1 - p0) (lse - lse' + H')`` with ``1 - p0 = exp(lse' - lse)``,
    so neither variant suffers cancellation when the sink takes most of the attention.
    ``s`` is overwritten.
    """
    b, h, c, n = s.shape
    in_range = (sink_rel >= 0) & (sink_rel < n)
    sr = sink_rel.clamp(0, max(n - 1, 0))
    kid = torch.arange(n, device=s.device)
    vis_ns = vis & (kid[None, :] != sr[:, None]).logical_or(~in_range[:, None])[:, None, None, :]
    s0 = s.gather(-1, sr[:, None, None, None].expand(b, h, c, 1)).squeeze(-1)
    v0 = vis.gather(-1, sr[:, None, None, None].expand(b, vis.shape[1], c, 1)).squeeze(-1)
    v0 = (v0 & in_range[:, None, None]).expand(b, h, c)
    n_ns = vis_ns.sum(-1).expand(b, h, c)
    s.masked_fill_(~vis_ns, _NEG)
    lse1 = torch.logsumexp(s, dim=-1)
    p = s - lse1[..., None]
    p.exp_()
    s.sub_(lse1[..., None]).neg_()  # d = lse' - s = -log p (1e30 where masked, where p = 0)
    h1 = p.mul_(s).sum(-1)
    raw, h1 = _fold_sink(h1, lse1, n_ns, s0, v0)
    return raw, h1, (n_ns + v0.long()).float()


def _key_valid_from_mask(mask: torch.Tensor, chunk: int) -> torch.Tensor:
    """Return ``[b, Lk]`` bool: keys visible to at least one query row of a 4-D mask."""
    b, _, lq, lk = mask.shape
    out = torch.zeros(b, lk, dtype=torch.bool, device=mask.device)
    for q0 in range(0, lq, chunk):
        m = mask[:, :, q0:q0 + chunk, :]
        vis = m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2
        out |= vis.any(dim=1).any(dim=1)
    return out


def entropy_stats(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    scaling: float | None = None,
    attn_mask: torch.Tensor | None = None,
    causal: bool = True,
    query_index: torch.Tensor | None = None,
    sliding_window: int | None = None,
    softcap: float | None = None,
    sink_index: torch.Tensor | None = None,
    chunk: int = 256,
    max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS,
) -> EntropyStats:
    """Return :class:`EntropyStats` (``raw``, ``nosink``, ``n_visible``) ``[b, h, Lq]``.

    ``q``: ``[b, h, Lq, dh]`` and ``k``: ``[b, h_kv, Lk, dh]`` post-RoPE (``h_kv`` divides
    ``h``; GQA heads map as in HF's ``repeat_kv``). ``scaling``: score scale (default
    ``dh ** -0.5``). ``attn_mask``: ``None``, a 2-D ``[b, Lk]`` key-validity mask (1 = real
    token), or a 4-D ``[b|1, 1|h, Lq, Lk]`` mask, bool (True = visible) or additive float
    (HF eager style). ``causal``: keys after the query's position are hidden.
    ``query_index``: ``[b, Lq]`` or ``[Lq]`` key-axis position of each query row (default the
    last ``Lq`` positions; pass it when ``q`` holds a subset of rows, e.g. sampled queries;
    a 4-D mask must then hold the same rows). ``sliding_window``: keys with
    ``kidx <= qidx - sliding_window`` are hidden (HF convention). ``softcap``: Gemma2 score
    soft-capping. ``sink_index``: ``[b]`` key index of the sink (the item's first real
    token; default: the first valid key). Computed in float32.
    """
    b, h, lq, dh = q.shape
    bk, hkv, lk, dhk = k.shape
    if dhk != dh or h % hkv or bk not in (b, 1):
        raise ValueError(f"incompatible q {tuple(q.shape)} and k {tuple(k.shape)}")
    rep = h // hkv
    scale = float(scaling) if scaling is not None else dh ** -0.5
    dev = q.device
    kf = k.float().expand(b, -1, -1, -1).unsqueeze(2).transpose(-1, -2)  # [b, hkv, 1, dh, Lk]
    kidx = torch.arange(lk, device=dev)
    if query_index is None:
        qidx = torch.arange(lk - lq, lk, device=dev).expand(b, lq)
    else:
        qidx = torch.as_tensor(query_index, device=dev).long()
        qidx = qidx.expand(b, lq) if qidx.dim() == 1 else qidx
    mask4 = key_valid = None
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            key_valid = attn_mask.to(dev).bool()
        elif attn_mask.dim() == 4:
            mask4 = attn_mask.to(dev)
            if mask4.shape[-2] != lq or mask4.shape[-1] != lk:
                raise ValueError(f"attn_mask {tuple(mask4.shape)} does not match q/k rows "
                                 f"({lq}, {lk})")
        else:
            raise ValueError(f"attn_mask must be 2-D or 4-D, got {attn_mask.dim()}-D")
    if sink_index is None:
        if key_valid is None and mask4 is not None:
            key_valid = _key_valid_from_mask(mask4, max(1, chunk))
        if key_valid is not None:
            sink = key_valid.float().argmax(dim=-1)
        else:
            sink = torch.zeros(b, dtype=torch.long, device=dev)
    else:
        sink = torch.as_tensor(sink_index, device=dev).long().expand(b)
    step = max(1, min(chunk, max_block_elems // max(1, b * h * lk)))
    raw = torch.empty(b, h, lq, dtype=torch.float32, device=dev)
    nos = torch.empty_like(raw)
    nvis = torch.empty_like(raw)
    for q0 in range(0, lq, step):
        q1 = min(lq, q0 + step)
        c = q1 - q0
        qi = qidx[:, q0:q1]  # [b, c]
        # keys that can be visible to this chunk at all (causal / sliding window)
        k_hi = min(lk, int(qi.max()) + 1) if causal else lk
        k_lo = max(0, int(qi.min()) - sliding_window + 1) if sliding_window else 0
        k_hi = max(k_hi, k_lo + 1)
        kid = kidx[k_lo:k_hi]
        qc = (q[:, :, q0:q1, :].float() * scale).reshape(b, hkv, rep, c, dh)
        s = torch.matmul(qc, kf[..., k_lo:k_hi]).reshape(b, h, c, k_hi - k_lo)
        if softcap is not None:
            s.div_(softcap).tanh_().mul_(softcap)
        vis = torch.ones(b, 1, c, k_hi - k_lo, dtype=torch.bool, device=dev)
        if causal:
            vis &= (kid[None, None, :] <= qi[:, :, None])[:, None]
        if sliding_window is not None:
            vis &= (kid[None, None, :] > qi[:, :, None] - sliding_window)[:, None]
        if key_valid is not None:
            vis &= key_valid[:, None, None, k_lo:k_hi]
        if mask4 is not None:
            m = mask4[:, :, q0:q1, k_lo:k_hi]
            if m.dtype == torch.bool:
                vis = vis & m
            else:
                s += m.float()
                vis = vis & (m > torch.finfo(m.dtype).min / 2)
        r, ns, nv = _chunk_stats(s, vis, sink - k_lo)
        raw[:, :, q0:q1] = r
        nos[:, :, q0:q1] = ns
        nvis[:, :, q0:q1] = nv
    return EntropyStats(raw, nos, nvis)


def _fold_sink(h1, lse1, n_ns, s0, v0):
    """Return ``(raw, nosink)``: fold the sink score ``s0`` into no-sink stats, exactly."""
    has = n_ns > 0
    h1 = torch.where(has, h1, torch.zeros_like(h1))
    lse1 = torch.where(has, lse1, torch.full_like(lse1, _NEG))
    lse = torch.where(v0, torch.logaddexp(lse1, s0), lse1)
    p0 = torch.where(v0, torch.exp(s0 - lse), torch.zeros_like(lse))
    raw = p0 * (lse - s0) + torch.exp(lse1 - lse) * ((lse - lse1) + h1)
    return torch.where(has, raw, torch.zeros_like(raw)), h1


def sdpa_entropy_stats(q: torch.Tensor, k: torch.Tensor, *, scaling: float | None = None,
                       key_start: torch.Tensor | None = None,
                       query_index: torch.Tensor | None = None) -> EntropyStats:
    """Return :class:`EntropyStats` ``[b, h, Lq]`` via the fused CPU flash-attention kernel.

    For causal attention over left-padded rows only (item ``i``'s real keys start at
    ``key_start[i]``; no sliding window, no soft-capping). Uses
    ``Σ_j p_j s_j = scaling · q · Σ_j p_j k_j``: one flash-attention call with ``V = K``
    returns both ``Σ p k`` and ``logsumexp(s)`` without any ``[Lq, Lk]`` block, over the keys
    without the sink; the sink is then folded in exactly. Query rows inside the padding get 0.
    Agrees with :func:`entropy_stats` to ~1e-6 for scores of order 10 (``lse − Σ p·s`` in fp32).
    """
    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    b, h, lq, dh = q.shape
    lk = k.shape[2]
    rep = h // k.shape[1]
    scale = float(scaling) if scaling is not None else dh ** -0.5
    dev = q.device
    starts = (torch.zeros(b, dtype=torch.long) if key_start is None
              else torch.as_tensor(key_start).long().cpu().expand(b))
    if query_index is None:
        qidx = torch.arange(lk - lq, lk).expand(b, lq)
    else:
        qidx = torch.as_tensor(query_index).long().cpu()
        qidx = qidx.expand(b, lq) if qidx.dim() == 1 else qidx
    raw = torch.zeros(b, h, lq, dtype=torch.float32, device=dev)
    nos = torch.zeros_like(raw)
    nvis = torch.zeros_like(raw)
    for i in range(b):
        st = int(starts[i])
        n = lk - st
        rows = (qidx[i] >= st).nonzero().squeeze(-1)
        if n < 1 or not len(rows):
            continue
        ki = k[i:i + 1, :, st:].float()
        ki = ki.repeat_interleave(rep, dim=1) if rep > 1 else ki  # [1, h, n, dh]
        pos = qidx[i, rows] - st  # item-relative query positions
        qi = q[i:i + 1, :, rows.to(dev), :].float()  # [1, h, m, dh]
        s0 = (qi @ ki[:, :, 0, :, None]).squeeze(-1) * scale  # [1, h, m] sink scores
        h1 = torch.zeros_like(s0)
        lse1 = torch.full_like(s0, _NEG)
        if n > 1:
            kn = ki[:, :, 1:]
            if query_index is None:  # all rows: causal flash on rows 1.., keys 1..
                out, lse = op(qi[:, :, 1:], kn, kn, 0.0, True, scale=scale)
                h1[:, :, 1:] = lse - scale * (qi[:, :, 1:] * out).sum(-1)
                lse1[:, :, 1:] = lse
            else:  # a subset of rows: explicit [m, n - 1] additive mask (linear in n)
                vis = torch.arange(1, n)[None, :] <= pos[:, None]
                mask = torch.zeros(vis.shape, dtype=torch.float32).masked_fill(~vis, -torch.inf)
                out, lse = op(qi, kn, kn, 0.0, False, attn_mask=mask[None, None].to(dev),
                              scale=scale)
                ok = (pos > 0).to(dev)[None, None, :]
                h1 = torch.where(ok, lse - scale * (qi * out).sum(-1), h1)
                lse1 = torch.where(ok, lse, lse1)
        n_ns = pos.to(dev).float()[None, None, :].expand_as(s0)  # keys 1..pos
        r, ns = _fold_sink(h1, lse1, n_ns, s0, torch.ones_like(s0, dtype=torch.bool))
        raw[i, :, rows.to(dev)] = r[0]
        nos[i, :, rows.to(dev)] = ns[0]
        nvis[i, :, rows.to(dev)] = n_ns[0] + 1
    return EntropyStats(raw, nos, nvis)


def attention_entropy(q: torch.Tensor, k: torch.Tensor, **kwargs) -> torch.Tensor:
    """Return the raw attention entropy ``[b, h, Lq]`` in nats (see :func:`entropy_stats`)."""
    return entropy_stats(q, k, **kwargs).raw


def max_entropy(n_visible: torch.Tensor) -> torch.Tensor:
    """Return ``log(n_visible)``, the entropy of uniform attention (upper bound of ``raw``)."""
    return torch.log(n_visible.clamp(min=1.0))


__all__ = ["EntropyStats", "entropy_stats", "sdpa_entropy_stats", "attention_entropy", "max_entropy"]
