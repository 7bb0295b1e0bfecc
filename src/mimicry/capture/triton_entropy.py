"""Fused exact attention entropy per query row (Triton), flash-style, with no V and no output.

For every query row the kernel walks the visible keys block by block and keeps three running
values in fp32: the max score ``m``, ``l = sum exp(s - m)`` and ``a = sum exp(s - m) * (s - m)``
(rescaled whenever ``m`` grows). At the end ``H = log l - a / l``, which equals
``logsumexp(s) - sum p * s``; no ``L x L`` matrix is ever written to memory.

The first visible key of each row (the "sink", position 0 of the unpadded sequence) is kept out
of the loop and folded in at the end, which gives, exactly and from the same pass, the entropy
without the sink (the distribution renormalised over the other keys) and the entropy with it.

Masks: causal (key index <= query index), left padding (keys before ``key_start[b]`` are
invisible), optional sliding window (``q - k < window``) and optional logit softcap
(``softcap * tanh(s / softcap)``, Gemma-2). Grouped KV heads are read by index, never expanded.
Inputs may be fp32, bf16 or fp16; products and sums are fp32.

:func:`entropy_stats` is the drop-in for the torch reference
:func:`mimicry.capture.entropy.entropy_stats` (same arguments, same :class:`EntropyStats`): it
runs the kernel on CUDA when ``triton`` imports and the mask is causal + left padding, and the
chunked torch reference for anything else (CPU, packed or custom masks). :func:`fused_entropy_stats` always runs
the kernel: compiled on CUDA, or on CPU tensors through Triton's interpreter when
``TRITON_INTERPRET=1`` was set before triton was imported (exact but slow; that is how the
tests check it on machines without a GPU).
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import torch

from .entropy import EntropyStats
from .entropy import entropy_stats as reference_entropy_stats
from .entropy_blockwise import blockwise_entropy_stats

try:  # triton ships with CUDA builds of torch; the CPU build has none.
    import triton
    import triton.language as tl

    _TRITON_ERROR: str | None = None
except Exception as e:  # ImportError, or a broken install that fails at import time
    triton = None
    tl = None
    _TRITON_ERROR = f"{type(e).__name__}: {e}"


def triton_available(device: torch.device | str = "cuda") -> bool:
    """Return True when the fused kernel runs on ``device``.

    CUDA: triton imports, CUDA is available and the interpreter is off. CPU: only under
    ``TRITON_INTERPRET=1`` set before the first ``import triton`` (Triton's interpreter:
    exact but ~1000x slower; that is how the tests run the kernel without a GPU).
    """
    if triton is None:
        return False
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and not _interpreting()
    return dev.type == "cpu" and _interpreting()


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


if triton is not None:

    def _entropy_fwd_src(
        Q, K, QIDX, KSTART, SINK, OUT_H, OUT_HNS,
        sm_scale, softcap, window,
        stride_qb, stride_qh, stride_qm, stride_qd,
        stride_kb, stride_kh, stride_kn, stride_kd,
        stride_ob, stride_oh, stride_om, stride_qib,
        n_heads, n_queries, n_keys, group, head_dim,
        HAS_WINDOW: tl.constexpr, HAS_SOFTCAP: tl.constexpr, UPCAST: tl.constexpr,
        DOT_PREC: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // n_heads
        h = pid_bh % n_heads
        kvh = h // group

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        row_ok = offs_m < n_queries
        qi = tl.load(QIDX + b * stride_qib + offs_m, mask=row_ok, other=0).to(tl.int32)
        start = tl.load(KSTART + b).to(tl.int32)
        sink = tl.load(SINK + b).to(tl.int32)

        q_ptrs = (Q + b * stride_qb + h * stride_qh
                  + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd)
        q = tl.load(q_ptrs, mask=row_ok[:, None] & (offs_d[None, :] < head_dim), other=0.0)
        if UPCAST:
            q = q.to(tl.float32)

        NEG: tl.constexpr = -1.0e30
        m_i = tl.zeros([BLOCK_M], dtype=tl.float32) + NEG
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        a_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        s_sink = tl.zeros([BLOCK_M], dtype=tl.float32)

        # Key range that any row of this block can see.
        q_hi = tl.max(tl.where(row_ok, qi, 0), axis=0)
        lo = start
        if HAS_WINDOW:
            q_lo = tl.min(tl.where(row_ok, qi, n_keys), axis=0)
            lo = tl.maximum(lo, q_lo - window + 1)
        lo = tl.maximum(lo, 0)
        lo = (lo // BLOCK_N) * BLOCK_N
        hi = tl.minimum(q_hi + 1, n_keys)

        k_base = K + b * stride_kb + kvh * stride_kh
        for n0 in range(lo, hi, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            k_ptrs = k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd
            kt = tl.load(k_ptrs, mask=(offs_n[None, :] < n_keys) & (offs_d[:, None] < head_dim),
                         other=0.0)
            if UPCAST:
                kt = kt.to(tl.float32)
            s = tl.dot(q, kt, input_precision=DOT_PREC) * sm_scale
            if HAS_SOFTCAP:
                x = tl.minimum(tl.maximum(s / softcap, -15.0), 15.0)  # tanh(15) == 1 in fp32
                s = softcap * (1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0))
            vis = (offs_n[None, :] >= start) & (offs_n[None, :] <= qi[:, None])
            vis = vis & (offs_n[None, :] < n_keys) & row_ok[:, None]
            if HAS_WINDOW:
                vis = vis & (qi[:, None] - offs_n[None, :] < window)
            is_sink = vis & (offs_n[None, :] == sink)
            s_sink = s_sink + tl.sum(tl.where(is_sink, s, 0.0), axis=1)
            vis = vis & (offs_n[None, :] != sink)

            s_m = tl.where(vis, s, NEG)
            m_new = tl.maximum(m_i, tl.max(s_m, axis=1))
            alpha = tl.exp(m_i - m_new)
            d = tl.where(vis, s - m_new[:, None], 0.0)
            p = tl.where(vis, tl.exp(d), 0.0)
            a_i = alpha * (a_i + (m_i - m_new) * l_i) + tl.sum(p * d, axis=1)
            l_i = alpha * l_i + tl.sum(p, axis=1)
            m_i = m_new

        # Entropy without the sink: H' = log l' - a' / l'.
        has_rest = l_i > 0.0
        l_safe = tl.where(has_rest, l_i, 1.0)
        h_ns = tl.log(l_safe) - a_i / l_safe
        # Fold the sink back in (when it is visible to the row).
        sink_vis = row_ok & (start <= sink) & (sink <= qi) & (sink < n_keys)
        if HAS_WINDOW:
            sink_vis = sink_vis & (qi - sink < window)
        m_all = tl.where(sink_vis, tl.maximum(m_i, s_sink), m_i)
        beta = tl.exp(m_i - m_all)
        ds = tl.where(sink_vis, s_sink - m_all, 0.0)
        ps = tl.where(sink_vis, tl.exp(ds), 0.0)
        l_all = beta * l_i + ps
        a_all = beta * (a_i + (m_i - m_all) * l_i) + ps * ds
        any_vis = l_all > 0.0
        l_all_safe = tl.where(any_vis, l_all, 1.0)
        h_all = tl.log(l_all_safe) - a_all / l_all_safe

        o_off = b * stride_ob + h * stride_oh + offs_m * stride_om
        tl.store(OUT_H + o_off, tl.where(any_vis, h_all, 0.0), mask=row_ok)
        tl.store(OUT_HNS + o_off, tl.where(has_rest, h_ns, 0.0), mask=row_ok)

    # Compiled for CUDA; interpreted on CPU tensors when TRITON_INTERPRET=1 was set before
    # triton was first imported (the interpreter patches triton.language at import time).
    _entropy_fwd = triton.jit(_entropy_fwd_src)


def _suffix_start(key_valid: torch.Tensor) -> torch.Tensor | None:
    """Return ``[b]`` first valid key if every row of ``key_valid [b, Lk]`` is a suffix, else None."""
    kv = key_valid.bool()
    lk = kv.shape[-1]
    start = torch.where(kv.any(-1), kv.float().argmax(-1), torch.full_like(kv[:, 0], lk,
                                                                          dtype=torch.float32))
    start = start.long()
    expect = torch.arange(lk, device=kv.device)[None, :] >= start[:, None]
    return start if bool(torch.equal(expect, kv)) else None


def _visible(m: torch.Tensor) -> torch.Tensor:
    return m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2


# The last 4-D mask checked: HF passes the same mask object to every layer of a forward.
_LAST_MASK: list = []


def _mask4_start(mask4: torch.Tensor, qidx: torch.Tensor, window: int | None,
                 chunk: int = 256, qkey: Any = None) -> torch.Tensor | None:
    """Return ``[b]`` key starts if a 4-D mask is exactly causal + left padding (+ window).

    Two passes over row chunks (no ``[Lq, Lk]`` block beyond ``[b, h, chunk, Lk]``); any other
    mask (packed sequences, prefix-LM, additive biases, custom) returns None and the caller
    falls back. The verdict for the last mask object is remembered, so the O(L^2) check runs
    once per forward, not once per layer.
    """
    if qkey is None:
        return _check_mask4(mask4, qidx, window, chunk)
    key = (window, qkey, tuple(qidx.shape))
    if _LAST_MASK and _LAST_MASK[0]() is mask4 and _LAST_MASK[1] == key:
        return _LAST_MASK[2]
    start = _check_mask4(mask4, qidx, window, chunk)
    _LAST_MASK[:] = [weakref.ref(mask4), key, start]
    return start


def _check_mask4(mask4: torch.Tensor, qidx: torch.Tensor, window: int | None,
                 chunk: int) -> torch.Tensor | None:
    b, _, lq, lk = mask4.shape
    vis_any = torch.zeros(b, lk, dtype=torch.bool, device=mask4.device)
    for q0 in range(0, lq, chunk):
        m = mask4[:, :, q0:q0 + chunk, :]
        v = _visible(m)
        if m.dtype != torch.bool and bool((torch.where(v, m, 0) != 0).any()):
            return None  # an additive bias on visible keys: not a pure mask
        vis_any |= v.any(dim=1).any(dim=1)
    start = _suffix_start(vis_any)
    if start is None:
        return None
    kidx = torch.arange(lk, device=mask4.device)
    for q0 in range(0, lq, chunk):
        v = _visible(mask4[:, :, q0:q0 + chunk, :])
        qi = qidx[:, q0:q0 + v.shape[2], None]
        want = (kidx[None, None, :] <= qi) & (kidx[None, None, :] >= start[:, None, None])
        if window:
            want = want & (qi - kidx[None, None, :] < window)
        if not bool(torch.equal(v, want[:, None].expand_as(v))):
            return None
    return start


def fused_entropy_stats(
    q: torch.Tensor, k: torch.Tensor, *, scaling: float | None = None,
    key_start: torch.Tensor | None = None, query_index: torch.Tensor | None = None,
    sliding_window: int | None = None, softcap: float | None = None,
    sink_index: torch.Tensor | None = None, block_m: int = 64, block_n: int = 64,
) -> EntropyStats:
    """Return :class:`~mimicry.capture.entropy.EntropyStats` ``[b, h, Lq]`` from the fused kernel.

    ``q``: ``[b, h, Lq, dh]``; ``k``: ``[b, h_kv, Lk, dh]`` post-RoPE, ``h_kv`` divides ``h``
    (GQA heads read by index, as HF's ``repeat_kv`` maps them). ``key_start``: ``[b]`` first
    real key under left padding (default 0). ``query_index``: ``[Lq]`` or ``[b, Lq]`` key
    index of each query row (default: the last ``Lq`` keys, a causal prefill).
    ``sliding_window``: keys with ``q - k >= sliding_window`` hidden. ``softcap``: Gemma-2
    soft-capping after scaling. ``sink_index``: ``[b]`` sink key (default ``key_start``).
    Same conventions as :func:`~mimicry.capture.entropy.entropy_stats`: 0 where a row sees no
    key (or, for ``nosink``, nothing but the sink). Raises ``RuntimeError`` when Triton cannot
    run on ``q.device`` (see :func:`triton_available`).
    """
    if triton is None:
        raise RuntimeError(f"triton is not importable ({_TRITON_ERROR})")
    if not triton_available(q.device):
        raise RuntimeError(f"the Triton kernel cannot run on {q.device} (needs CUDA, or CPU "
                           "tensors with TRITON_INTERPRET=1 set before importing triton)")
    if q.dim() != 4 or k.dim() != 4:
        raise ValueError(f"q and k must be 4-D [b, h, L, dh]; got {tuple(q.shape)} and "
                         f"{tuple(k.shape)}")
    b, h, lq, dh = q.shape
    hkv, lk = k.shape[1], k.shape[2]
    if k.shape[3] != dh or h % hkv or k.shape[0] not in (b, 1):
        raise ValueError(f"incompatible q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.shape[0] != b:
        k = k.expand(b, -1, -1, -1)
    dev = q.device
    scale = float(scaling) if scaling is not None else dh ** -0.5
    if query_index is None:
        qidx = torch.arange(lk - lq, lk, device=dev)
    else:
        qidx = torch.as_tensor(query_index, device=dev)
    qidx = qidx.to(torch.int32)
    qidx = (qidx.expand(b, lq) if qidx.dim() == 1 else qidx).contiguous()
    if key_start is None:
        key_start = torch.zeros(b, dtype=torch.int32, device=dev)
    key_start = torch.as_tensor(key_start, device=dev).to(torch.int32).expand(b).contiguous()
    sink = key_start if sink_index is None else torch.as_tensor(sink_index, device=dev)
    sink = sink.to(torch.int32).expand(b).contiguous()
    if k.dtype != q.dtype:
        k = k.to(q.dtype)

    raw = torch.zeros(b, h, lq, dtype=torch.float32, device=dev)
    nos = torch.zeros_like(raw)
    if lq and lk:
        block_d = max(16, triton.next_power_of_2(dh))
        grid = (triton.cdiv(lq, block_m), b * h)
        upcast = bool(dev.type == "cpu" and q.dtype == torch.bfloat16)
        kwargs: dict[str, Any] = {}
        if dev.type == "cuda":
            kwargs = {"num_warps": 4 if block_d <= 64 else 8, "num_stages": 2}
        _entropy_fwd[grid](
            q, k, qidx, key_start, sink, raw, nos,
            scale, float(softcap or 1.0), int(sliding_window or 0),
            *q.stride(), *k.stride(), *raw.stride(), qidx.stride(0),
            h, lq, lk, h // hkv, dh,
            HAS_WINDOW=bool(sliding_window), HAS_SOFTCAP=bool(softcap),
            # The interpreter multiplies bf16 tiles as raw uint16 (triton 3.9): upcast there.
            UPCAST=upcast,
            # fp32 operands: exact fp32 products (no TF32); 16-bit operands: the default
            # (tensor cores), whose products are exact in the fp32 accumulator anyway.
            DOT_PREC="ieee" if (q.dtype == torch.float32 or upcast) else None,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, **kwargs)
    qi = qidx.to(torch.int64)
    lo = key_start.to(torch.int64)[:, None].expand(b, lq)
    if sliding_window:
        lo = torch.maximum(lo, qi - sliding_window + 1)
    nvis = (torch.minimum(qi, torch.full_like(qi, lk - 1)) - lo + 1).clamp_min(0)
    nvis = nvis.to(torch.float32)[:, None, :].expand(b, h, lq).contiguous()
    return EntropyStats(raw, nos, nvis)


def _standard_start(q, k, attn_mask, causal, query_index, sliding_window, chunk):
    """Return ``([b] key starts, None)`` for a causal + left-padding mask, else ``(None, why)``."""
    if not causal:
        return None, "non-causal attention"
    b, _, lq, _ = q.shape
    lk = k.shape[2]
    if attn_mask is None:
        return torch.zeros(b, dtype=torch.long, device=q.device), None
    if attn_mask.dim() == 2:
        start = _suffix_start(attn_mask.to(q.device))
        return start, None if start is not None else "2-D mask is not left padding"
    if attn_mask.dim() == 4 and tuple(attn_mask.shape[-2:]) == (lq, lk):
        qi = (torch.arange(lk - lq, lk, device=q.device) if query_index is None
              else torch.as_tensor(query_index, device=q.device).long())
        qi = qi.expand(b, lq) if qi.dim() == 1 else qi
        qkey = "default" if query_index is None else None  # None: do not cache
        start = _mask4_start(attn_mask.to(q.device), qi, sliding_window, chunk, qkey)
        return start, None if start is not None else "4-D mask is not causal + left padding"
    return None, "unsupported attn_mask shape"


def entropy_stats(q: torch.Tensor, k: torch.Tensor, *, scaling: float | None = None,
                  attn_mask: torch.Tensor | None = None, causal: bool = True,
                  query_index: torch.Tensor | None = None, sliding_window: int | None = None,
                  softcap: float | None = None, sink_index: torch.Tensor | None = None,
                  chunk: int = 256, max_block_elems: int | None = None,
                  use_triton: bool | None = None, impl: str = "auto") -> EntropyStats:
    """Return :class:`EntropyStats` ``[b, h, Lq]``: the fused kernel where it applies, else torch.

    A drop-in for :func:`mimicry.capture.entropy.entropy_stats` (same arguments and results,
    up to float32 rounding). ``impl="auto"``: the fused Triton kernel when
    :func:`triton_available` holds for ``q.device`` and the mask is standard (``causal`` and
    ``attn_mask`` None, a 2-D left-padding mask ``[b, Lk]``, or a 4-D mask that is exactly
    causal + left padding (+ ``sliding_window``)); anything else (CPU, packed or custom masks)
    runs the chunked torch reference. ``impl`` may force ``"triton"`` (raises where it cannot
    run), ``"blockwise"`` (:mod:`mimicry.capture.entropy_blockwise`, standard masks only; not
    the default: it was slower than the reference end-to-end on CPU, see
    ``benchmarks/README.md``) or ``"reference"``. ``use_triton=True`` is ``impl="triton"``;
    ``use_triton=False`` never uses the kernel.
    """
    if use_triton is True:
        impl = "triton"
    if impl not in ("auto", "triton", "blockwise", "reference"):
        raise ValueError(f"unknown impl {impl!r}")
    ref_kw: dict[str, Any] = dict(scaling=scaling, attn_mask=attn_mask, causal=causal,
                                  query_index=query_index, sliding_window=sliding_window,
                                  softcap=softcap, sink_index=sink_index, chunk=chunk)
    if max_block_elems is not None:
        ref_kw["max_block_elems"] = max_block_elems
    kernel_ok = use_triton is not False and triton_available(q.device)
    if impl == "reference" or (impl == "auto" and not kernel_ok):
        return reference_entropy_stats(q, k, **ref_kw)
    start, why = _standard_start(q, k, attn_mask, causal, query_index, sliding_window, chunk)
    if impl == "triton" and (why is not None or not kernel_ok):
        why = why or f"triton cannot run on {q.device}"
        raise RuntimeError(f"fused entropy kernel not applicable: {why}")
    if impl == "blockwise" and why is not None:
        raise RuntimeError(f"blockwise entropy not applicable: {why}")
    if impl == "auto" and why is not None:
        return reference_entropy_stats(q, k, **ref_kw)
    if impl != "blockwise":
        return fused_entropy_stats(q, k, scaling=scaling, key_start=start,
                                   query_index=query_index, sliding_window=sliding_window,
                                   softcap=softcap, sink_index=sink_index)
    bw_kw: dict[str, Any] = {} if max_block_elems is None else {"max_block_elems": max_block_elems}
    return blockwise_entropy_stats(q, k, scaling=scaling, key_start=start,
                                   query_index=query_index, sliding_window=sliding_window,
                                   softcap=softcap, sink_index=sink_index, chunk=chunk, **bw_kw)


__all__ = ["triton_available", "fused_entropy_stats", "entropy_stats"]
