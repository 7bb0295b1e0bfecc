"""Default capture backend: the stock HF model, its own attention (SDPA), hooks and a side-car.

- Residual stream: a forward pre-hook on decoder layer 0 (its input = the embeddings, after
  any model-specific scaling such as Gemma's √d) and a forward hook on every decoder layer;
  each hook reduces its ``[b, L, d]`` tensor to the sites at once (weighted sums), so no
  per-layer activation is kept. Hooks live in a context manager that always removes them.
- Attention entropy: the model is switched (and always switched back) to a registered
  attention function ``mimicry_entropy_<orig>`` that calls the model's original function
  (SDPA, or eager for Gemma2) for the output — the forward is unchanged — and on the side
  computes entropy from the post-RoPE q/k it receives (Triton kernel on CUDA; torch's fused
  CPU flash-attention kernel for plain causal attention; chunked torch reference for sliding
  windows and soft-capping) and reduces it per segment immediately. No L×L matrix of a whole layer is built by us.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import numpy as np
import torch

from .base import EncodedItem, ItemActivations, model_dims, nan_empty_rows
from .config import ENTROPY_SEGMENTS, ENTROPY_VARIANTS, CaptureConfig
from .entropy import entropy_stats as reference_entropy_stats
from .entropy import sdpa_entropy_stats

_ACTIVE: list[_EntropySink] = []  # the capture currently running (at most one)


def entropy_stats(q: torch.Tensor, k: torch.Tensor, **kwargs):
    """Return :class:`EntropyStats` ``[b, h, Lq]``: fused Triton kernel on CUDA, else torch.

    On CUDA this is :func:`mimicry.capture.triton_entropy.entropy_stats` (which itself falls
    back to the chunked torch reference for masks it does not handle); on CPU, or when the
    Triton module cannot be imported, the chunked torch reference.
    """
    if q.is_cuda:
        try:
            from .triton_entropy import entropy_stats as fused
        except ImportError:
            fused = None
        if fused is not None:
            return fused(q, k, **kwargs)
    return reference_entropy_stats(q, k, **kwargs)


_default_entropy_stats = entropy_stats  # benchmarks may swap ``entropy_stats``; then it is used


class _StopForward(Exception):
    """Raised by the last needed hook to skip the rest of the forward pass."""


def decoder_layers(model) -> torch.nn.ModuleList:
    """Return the ModuleList of decoder layers of an HF causal LM."""
    n = model_dims(model)["n_layers"]
    base = model.base_model
    layers = getattr(base, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers) == n:
        return layers
    for mod in base.modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n:
            return mod
    raise RuntimeError(f"cannot find the {n} decoder layers of {type(model).__name__}")


class _EntropySink:
    """Per-batch state read by the attention function: reduction weights and results."""

    def __init__(self, weights: torch.Tensor, sink: torch.Tensor, chunk: int,
                 q_index: torch.Tensor | None = None) -> None:
        self.weights = weights  # [b, n_seg, Lpad] or [b, n_seg, n_s] (sampled)
        self.sink = sink  # [b] padded index of each item's first real token
        self.chunk = chunk
        self.q_index = q_index  # [b, n_s] padded query positions (sampled) or None
        self.out: dict[int, dict[str, torch.Tensor]] = {}  # layer -> variant -> [b, n_seg, h]

    def _on(self, t: torch.Tensor, device) -> torch.Tensor:
        # layers may sit on different GPUs (device_map="auto"): move the small per-batch state
        return t if t.device == device else t.to(device)

    def observe(self, module, query, key, attention_mask, scaling, kwargs) -> None:
        dev = query.device
        q, mask, qidx = query, attention_mask, None
        if self.q_index is not None:
            b, h, _, dh = query.shape
            qidx = self._on(self.q_index, dev)
            q = torch.gather(query, 2, qidx[:, None, :, None].expand(b, h, -1, dh))
        window = kwargs.get("sliding_window")
        fast = (entropy_stats is _default_entropy_stats and not query.is_cuda
                and kwargs.get("softcap") is None and getattr(module, "is_causal", True)
                and (window is None or window >= key.shape[2]))
        with torch.no_grad():
            if fast:  # CPU: fused flash-attention kernel, causal + left padding only
                st = sdpa_entropy_stats(q, key, scaling=scaling, key_start=self.sink,
                                        query_index=qidx)
            else:
                if qidx is not None and mask is not None and mask.dim() == 4:
                    m = mask.expand(q.shape[0], -1, -1, -1)  # the sampled rows of the mask
                    mask = torch.gather(m, 2, qidx[:, None, :, None].expand(
                        q.shape[0], m.shape[1], -1, m.shape[-1]))
                st = entropy_stats(
                    q, key, scaling=scaling, attn_mask=mask,
                    causal=getattr(module, "is_causal", True), query_index=qidx,
                    sliding_window=window, softcap=kwargs.get("softcap"),
                    sink_index=self._on(self.sink, dev), chunk=self.chunk)
            w = self._on(self.weights, dev)
            self.out[int(module.layer_idx)] = {
                v: torch.einsum("bsl,bhl->bsh", w, t).to(self.weights.device)
                for v, t in st.as_dict().items()}


def _make_attention(orig_name: str):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    def mimicry_entropy_attention(module, query, key, value, attention_mask, *args, **kwargs):
        if orig_name == "eager":
            fn = sys.modules[type(module).__module__].eager_attention_forward
        else:
            fn = ALL_ATTENTION_FUNCTIONS[orig_name]
        out = fn(module, query, key, value, attention_mask, *args, **kwargs)
        if _ACTIVE:
            _ACTIVE[-1].observe(module, query, key, attention_mask, kwargs.get("scaling"), kwargs)
        return out

    return mimicry_entropy_attention


def register_entropy_attention(orig_name: str) -> str:
    """Return the name of the entropy side-car attention wrapping ``orig_name`` (registered)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    name = f"mimicry_entropy_{orig_name}"
    if name not in AttentionInterface._global_mapping:
        AttentionInterface.register(name, _make_attention(orig_name))
        # the model builds the same mask for us as for the original implementation
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[orig_name])
    return name


@contextlib.contextmanager
def entropy_attention(model, sink: _EntropySink | None = None) -> Iterator[None]:
    """Switch ``model`` to the entropy side-car attention for the block; always switch back."""
    orig = model.config._attn_implementation or "eager"
    name = register_entropy_attention(orig)
    model.set_attn_implementation(name)
    if sink is not None:
        _ACTIVE.append(sink)
    try:
        yield
    finally:
        if sink is not None:
            _ACTIVE.remove(sink)
        model.set_attn_implementation(orig)


@contextlib.contextmanager
def residual_hooks(model, on_layer, stop_after: int | None = None) -> Iterator[None]:
    """Call ``on_layer(i, hidden [b, L, d])`` for i = 0 (embeddings) .. n; hooks always removed.

    With ``stop_after = k`` the hook of layer k raises to stop the forward early (caught by
    :func:`run_forward`).
    """
    layers = decoder_layers(model)
    handles = []

    def pre(mod, args, kwargs):
        hs = args[0] if args else kwargs["hidden_states"]
        on_layer(0, hs)

    def post_for(i):
        def post(mod, args, output):
            hs = output[0] if isinstance(output, tuple) else output
            on_layer(i + 1, hs)
            if stop_after is not None and i + 1 >= stop_after:
                raise _StopForward
        return post

    try:
        handles.append(layers[0].register_forward_pre_hook(pre, with_kwargs=True))
        for i, layer in enumerate(layers):
            handles.append(layer.register_forward_hook(post_for(i)))
        yield
    finally:
        for h in handles:
            h.remove()


def pad_batch(batch: list[EncodedItem], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    """Return left-padded ``(input_ids, attention_mask, position_ids)`` ``[b, Lmax]`` and pads."""
    lmax = max(it.length for it in batch)
    ids = torch.full((len(batch), lmax), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), lmax), dtype=torch.long)
    for i, it in enumerate(batch):
        ids[i, lmax - it.length:] = torch.from_numpy(it.input_ids)
        mask[i, lmax - it.length:] = 1
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    pads = torch.tensor([lmax - it.length for it in batch], dtype=torch.long)
    return ids.to(device), mask.to(device), pos.to(device), pads.to(device)


def _padded_weights(rows: list[np.ndarray], lmax: int, device) -> torch.Tensor:
    """Stack per-item ``[n, L_i]`` weights into ``[b, n, lmax]`` float32, left-padded."""
    out = torch.zeros(len(rows), rows[0].shape[0], lmax, dtype=torch.float32)
    for i, w in enumerate(rows):
        out[i, :, lmax - w.shape[1]:] = torch.from_numpy(w)
    return out.to(device)


class HFBackend:
    """The default backend: ``HFBackend(model, tokenizer, config).run(batch)``."""

    name = "hf"

    def __init__(self, model, tokenizer, config: CaptureConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.dims = model_dims(model)
        self.device = next(model.parameters()).device
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.pad_id = int(pad)

    def _entropy_sink(self, batch, lmax, pads) -> _EntropySink:
        cfg = self.config
        if cfg.entropy == "sampled":
            n_s = max(len(it.entropy_positions) for it in batch)
            qi = torch.zeros(len(batch), n_s, dtype=torch.long)
            w = torch.zeros(len(batch), len(ENTROPY_SEGMENTS), n_s, dtype=torch.float32)
            for i, it in enumerate(batch):
                pos = np.asarray(it.entropy_positions, dtype=np.int64)
                full = it.weights(ENTROPY_SEGMENTS, pos)  # [n_seg, L_i]
                qi[i, :len(pos)] = torch.from_numpy(pos) + int(pads[i])
                qi[i, len(pos):] = int(pads[i]) + int(pos[-1])  # filler rows, weight 0
                w[i, :, :len(pos)] = torch.from_numpy(full[:, pos])
            return _EntropySink(w.to(self.device), pads, cfg.query_chunk, qi.to(self.device))
        w = _padded_weights([it.weights(ENTROPY_SEGMENTS) for it in batch], lmax, self.device)
        return _EntropySink(w, pads, cfg.query_chunk)

    @torch.no_grad()
    def run(self, batch: list[EncodedItem]) -> list[ItemActivations]:
        """Return one :class:`ItemActivations` per item of ``batch`` (one padded forward)."""
        cfg = self.config
        ids, mask, pos, pads = pad_batch(batch, self.pad_id, self.device)
        lmax = ids.shape[1]
        wsite_np = [it.weights(cfg.sites) for it in batch]
        wsite = _padded_weights(wsite_np, lmax, self.device)
        n_layers = self.dims["n_layers"]
        resid = torch.zeros(len(batch), len(cfg.sites), n_layers + 1, self.dims["d_model"],
                            dtype=torch.float32, device=self.device)
        tok_idx = None
        if cfg.per_token_stride:
            tok_idx = [torch.as_tensor(it.token_positions, device=self.device) + pads[i]
                       for i, it in enumerate(batch)]
            tok_rows = [torch.zeros(len(t), n_layers + 1, self.dims["d_model"],
                                    dtype=torch.float32, device=self.device) for t in tok_idx]

        def on_layer(i: int, hs: torch.Tensor) -> None:
            hf = hs.float()
            w = wsite if wsite.device == hf.device else wsite.to(hf.device)
            resid[:, :, i, :] = torch.einsum("bsl,bld->bsd", w, hf).to(resid.device)
            if tok_idx is not None:
                for j, t in enumerate(tok_idx):
                    tok_rows[j][:, i, :] = hf[j, t.to(hf.device), :].to(resid.device)

        sink = self._entropy_sink(batch, lmax, pads) if cfg.entropy != "off" else None
        base = self.model.base_model
        ctx = entropy_attention(self.model, sink) if sink is not None else contextlib.nullcontext()
        with ctx, residual_hooks(self.model, on_layer, stop_after=n_layers):
            try:
                base(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
            except _StopForward:
                pass
        resid_np = resid.cpu().numpy()
        ent_np = None
        if sink is not None:
            # [n_layers, b, n_seg, h] per variant
            ent_np = {v: torch.stack([sink.out[k][v] for k in range(n_layers)]).cpu().numpy()
                      for v in ENTROPY_VARIANTS}
        out = []
        for i, it in enumerate(batch):
            r = nan_empty_rows(resid_np[i], wsite_np[i])
            acts = ItemActivations(it.item_id, {s: r[j] for j, s in enumerate(cfg.sites)})
            if ent_np is not None:
                we = it.weights(ENTROPY_SEGMENTS, it.entropy_positions
                                if cfg.entropy == "sampled" else None)
                for v in ENTROPY_VARIANTS:
                    e = nan_empty_rows(ent_np[v][:, i].transpose(1, 0, 2), we)  # [n_seg, layers, h]
                    acts.entropy[v] = {s: e[j] for j, s in enumerate(ENTROPY_SEGMENTS)}
            if tok_idx is not None:
                acts.token_resid = tok_rows[i].cpu().numpy()
                acts.token_positions = np.asarray(it.token_positions, dtype=np.int64)
            out.append(acts)
        return out
