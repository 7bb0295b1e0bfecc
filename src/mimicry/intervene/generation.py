"""Greedy generation under an intervention: one row per item with reasoning tokens and correctness.

Built on :class:`mimicry.generate.hf.HFBackend` (model loading, LEFT padding, stop ids, the
model's own greedy generation config), so an unsteered run here gives exactly the model's
own traces. Items are batched in prompt-length order; the intervention of a batch is a
context manager made for that batch's rows (patching needs one donor state per row).

``dose_response`` steers along named directions at several strengths; ``patch_sweep``
replaces each recipient's ``last_prompt`` state by its donor's, one layer at a time;
``prompt_states`` reads the ``last_prompt`` residual of every layer (what the donors give).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..generate.hf import HFBackend
from ..generate.segments import segment_ids, strip_stop
from ..models import ModelSpec
from ..tasks import scoring
from ..tasks.items import Item
from ..traces.prompt import prompt_opens_think
from .hooks import patch_residual, steer

log = logging.getLogger(__name__)

ROW_COLUMNS = ("item_id", "task", "reasoning_tokens", "correct", "finish_reason", "closed")
PATCH_COLUMNS = ("layer", "pair", "recipient", "donor", "task", "tokens_recipient",
                 "tokens_donor", "tokens_patched", "correct_recipient", "correct_patched")


def backend(model: Any, tokenizer=None, *, device: str | None = None,
            dtype: str | None = None) -> HFBackend:
    """Return an :class:`HFBackend` for a path / hub id / ModelSpec, or a loaded (model, tok)."""
    if isinstance(model, HFBackend):
        return model
    if tokenizer is not None:
        spec = ModelSpec(str(getattr(model.config, "_name_or_path", "") or "model"))
        return HFBackend(spec, model=model, tokenizer=tokenizer)
    return HFBackend(ModelSpec.coerce(str(model)), device=device, dtype=dtype)


def _order(be: HFBackend, items: Sequence[Item], chat_template: str):
    templated = chat_template != "none" and bool(getattr(be.tok, "chat_template", None))
    rendered = [be.render(it, chat_template) for it in items]
    lens = [len(be.tok(t, add_special_tokens=not templated)["input_ids"]) for t in rendered]
    order = sorted(range(len(items)), key=lambda i: (-lens[i], str(items[i].item_id)))
    return order, rendered, templated


def generate_rows(be: HFBackend, items: Sequence[Item], *, max_new_tokens: int,
                  batch_size: int = 32, chat_template: str = "auto",
                  intervention: Callable[[np.ndarray], Any] | None = None) -> pd.DataFrame:
    """Return one row per item (input order): ``item_id, task, reasoning_tokens, correct, ...``.

    ``intervention(rows) -> context manager`` is entered around each batch's ``generate``;
    ``rows`` are the batch's indices into ``items``, in batch order.
    """
    if not items:
        raise InputError("no items to generate for", fix="check the task suite / item filter")
    order, rendered, templated = _order(be, items, chat_template)
    gen_cfg = be.generation_config(max_new_tokens, 0.0, 1.0)
    out: dict[int, dict] = {}
    for s in range(0, len(order), batch_size):
        rows = np.asarray(order[s:s + batch_size])
        ctx = intervention(rows) if intervention is not None else contextlib.nullcontext()
        with ctx:
            new, _ = be.generate_batch([rendered[i] for i in rows], templated, gen_cfg)
        for i, ids in zip(rows, new):
            kept, stopped = strip_stop(ids, set(be.stop_ids))
            finish = "stop" if stopped else "length"
            seg = segment_ids(be.tok, kept, prompt_opens_think=prompt_opens_think(rendered[i]),
                              finish_reason=finish)
            _, correct = scoring.score_answer(items[i], seg.answer)
            out[int(i)] = {"item_id": str(items[i].item_id), "task": items[i].task,
                           "reasoning_tokens": int(seg.reasoning_tokens),
                           "correct": bool(correct), "finish_reason": finish,
                           "closed": bool(seg.closed)}
    return pd.DataFrame([out[i] for i in range(len(items))], columns=list(ROW_COLUMNS))


def prompt_states(be: HFBackend, items: Sequence[Item], *, batch_size: int = 32,
                  chat_template: str = "auto") -> np.ndarray:
    """Return the ``last_prompt`` residual ``[n_items, n_layers + 1, d_model]`` (float64).

    One left-padded forward per batch with explicit positions (``cumsum(mask) − 1``), as
    capture and generate run it; layer 0 = embeddings.
    """
    import torch

    from ..capture.hf import _StopForward, decoder_layers, residual_hooks

    order, rendered, templated = _order(be, items, chat_template)
    model = be.model
    n_lay = len(decoder_layers(model))
    out = None
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        enc = be.encode([rendered[i] for i in rows], templated)
        dev = next(model.parameters()).device
        ids, mask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        got: dict[int, torch.Tensor] = {}

        def on_layer(i, hs, got=got):
            got[i] = hs[:, -1, :].detach().double().cpu()

        with torch.no_grad(), residual_hooks(model, on_layer, stop_after=n_lay):
            try:
                model.base_model(input_ids=ids, attention_mask=mask, position_ids=pos,
                                 use_cache=False)
            except _StopForward:
                pass
        block = torch.stack([got[i] for i in range(n_lay + 1)], 1).numpy()
        if out is None:
            out = np.empty((len(items), n_lay + 1, block.shape[-1]))
        out[np.asarray(rows)] = block
    return out


def dose_response(be: HFBackend, items: Sequence[Item], directions: dict[str, np.ndarray],
                  alphas: Sequence[float], layer: int, *, positions: str = "all",
                  max_new_tokens: int = 256, batch_size: int = 32,
                  chat_template: str = "auto", progress: bool = False,
                  skip: Collection[tuple[str, float]] = (),
                  on_rows: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Return rows ``direction, alpha, item_id, ..., reasoning_tokens, correct`` of steered runs.

    ``directions``: ``{name: [d_model]}`` (already scaled: the added vector is ``α · v``).
    α = 0 is run once, as ``direction == "none"``; every other α once per direction.
    Resuming: the runs ``(direction, α)`` in ``skip`` (``("none", 0.0)``: the unsteered one)
    are not made and not returned; ``on_rows(rows)`` receives each run's rows as it ends.
    """
    jobs = [("none", 0.0)] + [(n, float(a)) for n in directions for a in alphas
                              if float(a) != 0.0]
    done = {(str(n), float(a)) for n, a in skip}
    todo = [j for j in jobs if j not in done]
    frames = []
    for name, a in progress_iter(todo, progress, "steer"):
        if name == "none":
            inter = None
        else:
            v = np.asarray(directions[name], np.float64)

            def inter(rows, v=v, a=a):
                return steer(be.model, v, a, layer, positions=positions)

        df = generate_rows(be, items, max_new_tokens=max_new_tokens, batch_size=batch_size,
                           chat_template=chat_template, intervention=inter)
        df = df.assign(direction=name, alpha=a, layer=layer)
        df = df[["direction", "alpha", "layer", *ROW_COLUMNS]]
        if on_rows is not None:
            on_rows(df)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["direction", "alpha", "layer", *ROW_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def patch_sweep(be: HFBackend, recipients: Sequence[Item], donors: Sequence[Item],
                layers: Sequence[int], *, max_new_tokens: int = 256, batch_size: int = 32,
                chat_template: str = "auto", progress: bool = False,
                skip_layers: Collection[int] = (),
                on_rows: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Return one row per (layer, pair): the recipient's reasoning tokens with the donor's plan.

    Pair ``i`` is ``(recipients[i], donors[i])``. Per layer, the recipient's ``last_prompt``
    residual is replaced by the donor's (from :func:`prompt_states`) in the prefill, then
    the recipient generates greedily. Columns: ``layer, pair, recipient, donor,
    tokens_recipient, tokens_donor, tokens_patched, correct_recipient, correct_patched``.
    Resuming: layers in ``skip_layers`` are not run nor returned; ``on_rows(rows)`` receives
    each layer's rows as it ends.
    """
    if len(recipients) != len(donors):
        raise InputError(f"{len(recipients)} recipients for {len(donors)} donors",
                         fix="pass one donor per recipient")
    todo = [int(x) for x in layers if int(x) not in {int(s) for s in skip_layers}]
    if not todo:
        return pd.DataFrame(columns=list(PATCH_COLUMNS))
    states = prompt_states(be, donors, batch_size=batch_size, chat_template=chat_template)
    kw = {"max_new_tokens": max_new_tokens, "batch_size": batch_size,
          "chat_template": chat_template}
    own_r = generate_rows(be, recipients, **kw)
    own_d = generate_rows(be, donors, **kw)
    frames = []
    for layer in progress_iter(todo, progress, "patch"):
        def inter(rows, layer=layer):
            return patch_residual(be.model, layer, states[rows, layer, :], position=-1)

        got = generate_rows(be, recipients, intervention=inter, **kw)
        df = pd.DataFrame({
            "layer": layer, "pair": np.arange(len(recipients)),
            "recipient": own_r["item_id"], "donor": own_d["item_id"],
            "task": own_r["task"],
            "tokens_recipient": own_r["reasoning_tokens"],
            "tokens_donor": own_d["reasoning_tokens"],
            "tokens_patched": got["reasoning_tokens"],
            "correct_recipient": own_r["correct"], "correct_patched": got["correct"]})
        if on_rows is not None:
            on_rows(df)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def progress_iter(it, enabled: bool, desc: str):
    """Return ``it`` wrapped in a tqdm bar when ``enabled``."""
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)


def n_layers(be: HFBackend) -> int:
    """Return the number of decoder layers of the backend's model (cache layers: 0..n)."""
    from ..capture.hf import decoder_layers

    return len(decoder_layers(be.model))
