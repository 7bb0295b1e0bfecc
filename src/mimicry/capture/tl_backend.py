"""Capture backend ``tl``: TransformerLens 4.x ``TransformerBridge`` over the same HF model.

For parity checks and for users who already think in TransformerLens hook names. It wraps
the loaded HF model (``TransformerBridge.boot_transformers(name, hf_model=model)``; no second
copy of the weights), which switches it to eager attention *in place* so that
``blocks.{i}.attn.hook_pattern`` fires, then runs ``run_with_cache`` with a ``names_filter``
for ``blocks.0.hook_resid_pre`` (the embeddings), every ``blocks.{i}.hook_resid_post`` and,
unless entropy is off, every ``blocks.{i}.attn.hook_pattern``. The attention mask and
position ids of the left-padded batch are passed explicitly. Entropy is computed from the
cached patterns (:func:`~mimicry.capture.peer_common.pattern_entropy`) and everything is
reduced by the core's :func:`~mimicry.capture.base.reduce_item`, so the cache format is the
same as the ``hf`` backend's.

Cost: the cache holds ``n_layers`` patterns ``[b, h, L, L]`` at once (eager attention, all
layers), so memory grows with ``L^2 * n_layers``; use the ``hf`` backend for long traces.
The wrapped model should not be reused for another backend afterwards (the bridge replaces
its submodules; HF's own ``output_attentions`` no longer collects anything).
"""

from __future__ import annotations

import copy

import torch

from .base import EncodedItem, ItemActivations, model_dims
from .config import CaptureConfig
from .peer_common import layer_windows, left_pad, pattern_entropy, reduce_padded


def resid_hook_names(n_layers: int) -> list[str]:
    """Return the TransformerLens hook names of the residual sites: embeddings, then layers."""
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]


def pattern_hook_names(n_layers: int) -> list[str]:
    """Return the TransformerLens hook names of the attention patterns of every layer."""
    return [f"blocks.{i}.attn.hook_pattern" for i in range(n_layers)]


def boot_bridge(model, tokenizer):
    """Return a ``TransformerBridge`` wrapping the loaded HF ``model`` (eager forced in place)."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as e:  # pragma: no cover - depends on the install
        from ..errors import InputError

        raise InputError(f"TransformerLens is not installed ({e})",
                         fix="pip install 'mimicry[tl]' or use --backend hf") from None
    name = str(getattr(model.config, "_name_or_path", "") or type(model).__name__)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    # The bridge normalises the tokenizer it gets in place (sets bos/eos/pad, may reload it
    # from name_or_path with add_bos_token=True, which fails for in-memory tokenizers). We
    # only ever hand it token ids, so give it a copy marked as already adding BOS.
    tok = copy.deepcopy(tokenizer)
    tok.init_kwargs.setdefault("name_or_path", getattr(tok, "name_or_path", "") or name)
    tok.init_kwargs["add_bos_token"] = True
    return TransformerBridge.boot_transformers(name, hf_model=model, tokenizer=tok,
                                               device=device, dtype=dtype)


class TLBackend:
    """``TLBackend(model, tokenizer, config).run(batch)``: capture through TransformerBridge."""

    name = "tl"

    def __init__(self, model, tokenizer, config: CaptureConfig) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.dims = model_dims(model)
        self.windows = layer_windows(model)  # read before the bridge rewires the model
        self.device = next(model.parameters()).device
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.pad_id = int(pad)
        self.bridge = boot_bridge(model, tokenizer)
        n = self.dims["n_layers"]
        self.names = resid_hook_names(n) + (
            pattern_hook_names(n) if config.entropy != "off" else [])

    @torch.no_grad()
    def run(self, batch: list[EncodedItem]) -> list[ItemActivations]:
        """Return one :class:`ItemActivations` per item of ``batch`` (one cached forward)."""
        ids, mask, pos, pads = left_pad(batch, self.pad_id, self.device)
        n = self.dims["n_layers"]
        _, cache = self.bridge.run_with_cache(
            ids, attention_mask=mask, position_ids=pos, names_filter=self.names,
            return_type=None)
        resid = [cache[name] for name in resid_hook_names(n)]
        ent = None
        if self.config.entropy != "off":
            ent = [pattern_entropy(cache[f"blocks.{i}.attn.hook_pattern"], pads, self.windows[i])
                   for i in range(n)]
        del cache
        return reduce_padded(batch, self.config, pads, resid, ent)
