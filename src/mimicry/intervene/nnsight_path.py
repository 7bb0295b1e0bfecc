"""The same interventions through nnsight: an independent path that checks the hf hooks.

A plain greedy loop, one ``TransformersModel.trace`` of the whole sequence per new token (no
KV cache, no padding, one item at a time), with the edit written as an nnsight assignment
(``layers[i].output = layers[i].output + α·v``; layer 0: the embedding module's output).
Slow by design — for tiny models in tests and for users who work in nnsight; it must give
the same rows as :mod:`mimicry.intervene.generation` (tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..capture.nnsight_backend import wrap_model
from ..generate.hf import HFBackend
from ..generate.segments import segment_ids, strip_stop
from ..tasks import scoring
from ..tasks.items import Item
from ..traces.prompt import prompt_opens_think
from .generation import ROW_COLUMNS
from .hooks import _layer_index


def _site(nn, layer: int):
    return nn.model.embed_tokens if layer == 0 else nn.model.layers[layer - 1]


def _greedy(be: HFBackend, nn, ids: list[int], layer: int, max_new_tokens: int, *,
            add: torch.Tensor | None = None, patch: torch.Tensor | None = None,
            patch_pos: int | None = None) -> list[int]:
    seq = list(ids)
    new: list[int] = []
    stops = set(be.stop_ids)
    for _ in range(max_new_tokens):
        x = torch.tensor([seq])
        with torch.no_grad(), nn.trace(x, use_cache=False):
            site = _site(nn, layer)
            out = site.output
            h = out[0] if isinstance(out, tuple) else out
            if add is not None:
                h = h + add.to(h.dtype)
            if patch is not None:
                h = h.clone()
                h[0, patch_pos, :] = patch.to(h.dtype)
            site.output = (h, *out[1:]) if isinstance(out, tuple) else h
            logits = nn.lm_head.output.save()
        t = int(torch.argmax(logits[0, -1]))
        new.append(t)
        seq.append(t)
        if t in stops:
            break
    return new


def _row(be: HFBackend, item: Item, rendered: str, new: list[int]) -> dict:
    kept, stopped = strip_stop(new, set(be.stop_ids))
    finish = "stop" if stopped else "length"
    seg = segment_ids(be.tok, kept, prompt_opens_think=prompt_opens_think(rendered),
                      finish_reason=finish)
    _, correct = scoring.score_answer(item, seg.answer)
    return {"item_id": str(item.item_id), "task": item.task,
            "reasoning_tokens": int(seg.reasoning_tokens), "correct": bool(correct),
            "finish_reason": finish, "closed": bool(seg.closed)}


def _encode(be: HFBackend, item: Item, chat_template: str) -> tuple[str, list[int]]:
    rendered = be.render(item, chat_template)
    templated = chat_template != "none" and bool(getattr(be.tok, "chat_template", None))
    return rendered, list(be.tok(rendered, add_special_tokens=not templated)["input_ids"])


def steered_rows(be: HFBackend, items: Sequence[Item], direction, alpha: float, layer: int, *,
                 max_new_tokens: int = 256, chat_template: str = "auto") -> pd.DataFrame:
    """Return one row per item (as ``generation.generate_rows``) steered at every position."""
    nn = wrap_model(be.model, be.tok)
    layer = _layer_index(be.model, layer)
    add = torch.as_tensor(np.asarray(direction, np.float64) * float(alpha))
    rows = []
    for it in items:
        rendered, ids = _encode(be, it, chat_template)
        rows.append(_row(be, it, rendered, _greedy(be, nn, ids, layer, max_new_tokens,
                                                   add=add)))
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def patched_rows(be: HFBackend, recipients: Sequence[Item], donors: Sequence[Item],
                 layer: int, *, max_new_tokens: int = 256,
                 chat_template: str = "auto") -> pd.DataFrame:
    """Return one row per recipient generated with its donor's ``last_prompt`` state at ``layer``.

    Donor states come from an nnsight trace of the donor prompt (its last token).
    """
    nn = wrap_model(be.model, be.tok)
    layer = _layer_index(be.model, layer)
    rows = []
    for rec, don in zip(recipients, donors):
        _, dids = _encode(be, don, chat_template)
        with torch.no_grad(), nn.trace(torch.tensor([dids]), use_cache=False):
            out = _site(nn, layer).output
            state = (out[0] if isinstance(out, tuple) else out)[0, -1, :].save()
        rendered, ids = _encode(be, rec, chat_template)
        new = _greedy(be, nn, ids, layer, max_new_tokens, patch=state.detach().clone(),
                      patch_pos=len(ids) - 1)
        rows.append(_row(be, rec, rendered, new))
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))
