"""What the ``tl`` and ``nnsight`` backends share: entropy from attention patterns, reduction.

Both peers hold full per-token tensors (the residual stream of every layer and the softmaxed
attention pattern ``[b, h, L, L]`` of every layer), as their users would; this module turns
them into the core's :class:`~mimicry.capture.base.ItemActivations` through the same
:func:`~mimicry.capture.base.reduce_item` the format is defined by. The entropy here is
computed from probabilities (``-Σ p log p``), independently of the core's score-based
reference, which is what makes the three-way parity test meaningful.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import EncodedItem, ItemActivations, reduce_item
from .config import ENTROPY_VARIANTS, CaptureConfig

_MAX_ELEMS = 1 << 22  # float64 elements per pattern chunk (32 MiB)


def left_pad(batch: list[EncodedItem], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    """Return ``(input_ids, attention_mask, position_ids)`` ``[b, Lmax]`` and ``pads`` ``[b]``.

    Left padding, positions counted from each item's first real token (as HF's ``generate``
    and TransformerLens derive them), so an item's numbers do not depend on its batch-mates.
    """
    lmax = max(it.length for it in batch)
    ids = torch.full((len(batch), lmax), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), lmax), dtype=torch.long)
    for i, it in enumerate(batch):
        ids[i, lmax - it.length:] = torch.as_tensor(np.asarray(it.input_ids, dtype=np.int64))
        mask[i, lmax - it.length:] = 1
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    pads = torch.tensor([lmax - it.length for it in batch], dtype=torch.long)
    return ids.to(device), mask.to(device), pos.to(device), pads


def layer_windows(model) -> list[int | None]:
    """Return each decoder layer's sliding-window size (None = full causal) of an HF model.

    The attention module's own ``sliding_window`` attribute where it has one (Qwen2, Gemma2,
    Qwen3 set it per layer); otherwise the config: ``layer_types[i] == "sliding_attention"``,
    or, without layer types, ``config.sliding_window`` unless ``use_sliding_window`` is False
    (Mistral passes the window to its attention function instead of storing it).
    """
    from .hf import decoder_layers

    cfg = getattr(model.config, "text_config", None) or model.config
    types = getattr(cfg, "layer_types", None)
    cfg_w = getattr(cfg, "sliding_window", None)
    out: list[int | None] = []
    for i, layer in enumerate(decoder_layers(model)):
        attn = getattr(layer, "self_attn", None)
        if attn is not None and hasattr(attn, "sliding_window"):
            w = attn.sliding_window
        elif types is not None:
            w = cfg_w if types[i] == "sliding_attention" else None
        else:
            w = cfg_w if getattr(cfg, "use_sliding_window", True) else None
        out.append(int(w) if w else None)
    return out


def pattern_entropy(pattern: torch.Tensor, pads: torch.Tensor, window: int | None = None
                    ) -> dict[str, torch.Tensor]:
    """Return ``{"raw", "norm", "nosink"}`` -> ``[b, h, L]`` float64 entropies of a pattern.

    ``pattern``: ``[b, h, L, L]`` softmax probabilities (rows = queries) of a left-padded
    batch; ``pads``: ``[b]`` padding length (= index of each item's first real token, the
    sink). Only structurally visible keys count (causal, not padding, inside ``window``):
    ``raw = -Σ p log p``; ``norm = raw / log(n_visible)`` (0 where n_visible <= 1);
    ``nosink``: the pattern without the sink, renormalised by the sum of the other keys'
    probabilities (not ``1 - p_sink``, which cancels when the sink takes ~all the mass).
    Rows of padding queries are 0. Computed in float64, in query chunks.
    """
    b, h, lq, lk = pattern.shape
    dev = pattern.device
    pads = pads.to(dev)
    kidx = torch.arange(lk, device=dev)
    qidx = torch.arange(lk - lq, lk, device=dev)
    out = {v: torch.zeros(b, h, lq, dtype=torch.float64, device=dev) for v in ENTROPY_VARIANTS}
    step = max(1, _MAX_ELEMS // max(1, b * h * lk))
    for q0 in range(0, lq, step):
        qi = qidx[q0:q0 + step]
        p = pattern[:, :, q0:q0 + step, :].double()
        vis = (kidx[None, None, :] <= qi[None, :, None]) & (kidx[None, None, :]
                                                             >= pads[:, None, None])
        if window:
            vis = vis & (qi[None, :, None] - kidx[None, None, :] < window)
        vis = vis[:, None]  # [b, 1, c, Lk]
        pv = torch.where(vis, p, torch.zeros_like(p))
        real_q = (qi[None, :] >= pads[:, None])[:, None, :]  # [b, 1, c]
        leak = (p - pv).abs().amax(-1).masked_fill(~real_q, 0.0)
        if bool((leak > 0).any()):  # eager gives exactly 0 on masked keys
            raise RuntimeError(
                f"attention pattern has mass {float(leak.max()):.3g} on keys the assumed mask "
                f"hides (window={window}): the sliding window of this layer was misdetected")
        plogp = torch.where(pv > 0, pv * torch.log(pv.clamp_min(1e-300)), torch.zeros_like(pv))
        raw = -plogp.sum(-1)
        n = vis.sum(-1).double().expand(b, h, -1)
        norm = torch.where(n > 1, raw / torch.log(n.clamp_min(2.0)), torch.zeros_like(raw))
        not_sink = (kidx[None, :] != pads[:, None])[:, None, None, :]
        rest = vis & not_sink
        z = torch.where(rest, p, torch.zeros_like(p)).sum(-1)
        s_rest = torch.where(rest, plogp, torch.zeros_like(plogp)).sum(-1)
        ok = z > 0
        zs = torch.where(ok, z, torch.ones_like(z))
        nos = torch.where(ok, torch.log(zs) - s_rest / zs, torch.zeros_like(z))
        sl = slice(q0, q0 + qi.shape[0])
        out["raw"][:, :, sl] = raw
        out["norm"][:, :, sl] = norm
        out["nosink"][:, :, sl] = nos
    return out


def reduce_padded(batch: list[EncodedItem], config: CaptureConfig, pads: torch.Tensor,
                  resid: list[torch.Tensor],
                  entropy: list[dict[str, torch.Tensor]] | None) -> list[ItemActivations]:
    """Return one :class:`ItemActivations` per item from left-padded per-layer tensors.

    ``resid``: ``n_layers + 1`` tensors ``[b, Lmax, d]`` (embeddings, then each layer's
    output); ``entropy``: ``n_layers`` dicts of ``[b, h, Lmax]`` per variant, or None. Padding
    is cut off per item and :func:`reduce_item` does the rest.
    """
    lmax = resid[0].shape[1]
    res = torch.stack([r.float() for r in resid], dim=0).cpu()  # [n_layers+1, b, Lmax, d]
    ent = None
    if entropy is not None and config.entropy != "off":
        ent = {v: torch.stack([e[v] for e in entropy], dim=0).cpu()  # [n_layers, b, h, Lmax]
               for v in ENTROPY_VARIANTS}
    out = []
    for i, it in enumerate(batch):
        p = int(pads[i])
        if lmax - p != it.length:
            raise RuntimeError(f"item {it.item_id}: {lmax - p} unpadded tokens, expected "
                               f"{it.length}")
        r = res[:, i, p:, :].numpy()
        e = None if ent is None else {v: t[:, i, :, p:].numpy() for v, t in ent.items()}
        out.append(reduce_item(it, config, r, e))
    return out
