"""Capture backend ``nnsight``: an nnsight 0.8 ``TransformersModel`` trace of the same HF model.

For parity checks and for users who already work in nnsight. The loaded HF model is wrapped
(``TransformersModel(model, tokenizer=tok)``; no copy of the weights) and switched to eager
attention for the duration of each batch (always switched back), because only eager returns
the attention weights as the second output of ``self_attn``. One ``model.trace(...)`` per
batch saves, in execution order: the first decoder layer's input (the embeddings), then for
every layer ``self_attn.output[1]`` (the pattern ``[b, h, L, L]``, unless entropy is off) and
the layer's output; the trace stops after the last layer (no final norm, no logits). The
attention mask and position ids of the left-padded batch are passed explicitly.

Entropy comes from the saved patterns (:func:`~mimicry.capture.peer_common.pattern_entropy`)
and the reduction is the core's :func:`~mimicry.capture.base.reduce_item`, so the cache has
the same format as the ``hf`` backend's. Memory holds every layer's pattern at once
(``L^2 * n_layers``); use the ``hf`` backend for long traces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .base import EncodedItem, ItemActivations, model_dims
from .config import CaptureConfig
from .peer_common import layer_windows, left_pad, pattern_entropy, reduce_padded


def _layers_envoy(nn_model, n_layers: int):
    """Return the nnsight envoy of the decoder-layer list (``model.model.layers`` for most)."""
    base = getattr(nn_model, "model", None)
    layers = getattr(base, "layers", None) if base is not None else None
    if layers is None or len(layers) != n_layers:
        raise RuntimeError(f"cannot find {n_layers} decoder layers at .model.layers of "
                           f"{type(nn_model._module).__name__}; use --backend hf")
    return layers


@contextlib.contextmanager
def eager_attention(model) -> Iterator[None]:
    """Switch an HF ``model`` to eager attention for the block; always switch back."""
    orig = model.config._attn_implementation
    if orig == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(orig)


def wrap_model(model, tokenizer):
    """Return an nnsight ``TransformersModel`` around the loaded HF ``model`` (no copy)."""
    try:
        from nnsight import TransformersModel
    except ImportError as e:  # pragma: no cover - depends on the install
        from ..errors import InputError

        raise InputError(f"nnsight is not installed ({e})",
                         fix="pip install 'mimicry[nnsight]' or use --backend hf") from None
    return TransformersModel(model, tokenizer=tokenizer, task="text-generation")


class NNsightBackend:
    """``NNsightBackend(model, tokenizer, config).run(batch)``: capture through an nnsight trace."""

    name = "nnsight"

    def __init__(self, model, tokenizer, config: CaptureConfig) -> None:
        self.model = model
        self.config = config
        self.dims = model_dims(model)
        self.windows = layer_windows(model)
        self.device = next(model.parameters()).device
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.pad_id = int(pad)
        self.nn = wrap_model(model, tokenizer)

    @torch.no_grad()
    def run(self, batch: list[EncodedItem]) -> list[ItemActivations]:
        """Return one :class:`ItemActivations` per item of ``batch`` (one traced forward)."""
        ids, mask, pos, pads = left_pad(batch, self.pad_id, self.device)
        n = self.dims["n_layers"]
        want_pattern = self.config.entropy != "off"
        layers = _layers_envoy(self.nn, n)
        resid: list = []
        patterns: list = []
        ctx = eager_attention(self.model) if want_pattern else contextlib.nullcontext()
        with ctx, self.nn.trace(ids, attention_mask=mask, position_ids=pos,
                                use_cache=False) as tracer:
            # Modules must be requested in the order they execute.
            resid.append(layers[0].input.save())
            for i in range(n):
                if want_pattern:
                    patterns.append(layers[i].self_attn.output[1].save())
                out = layers[i].output
                resid.append((out[0] if isinstance(out, tuple) else out).save())
            tracer.stop()
        ent = None
        if want_pattern:
            ent = [pattern_entropy(patterns[i], pads, self.windows[i]) for i in range(n)]
        return reduce_padded(batch, self.config, pads, resid, ent)
