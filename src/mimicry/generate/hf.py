"""The ``hf`` backend: batched ``model.generate`` on a local or hub Hugging Face causal LM.

Prompts are rendered with :func:`mimicry.traces.prompt.render_prompt`, sorted by token length
(longest first, so an out-of-memory error shows up in the first batch) and generated in
batches with LEFT padding and an explicit attention mask. Greedy unless ``temperature > 0``.
Generation stops at any eos id of the tokenizer or of the model's ``generation_config``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..models import ModelSpec, load_model
from ..tasks.items import Item
from ..traces.prompt import prompt_opens_think, render_prompt
from .segments import Segmented, segment_ids, strip_stop


@dataclass
class Completion:
    """What a backend returns for one item, before scoring."""

    item_id: str
    seg: Segmented
    finish_reason: str
    seconds: float
    prompt_opened_think: bool
    meta: dict[str, Any] = field(default_factory=dict)
    ids: list[int] | None = None  # generated ids without eos/padding (hf only; not saved)


def eos_ids(model, tokenizer) -> list[int]:
    """Return every id that ends a generation: tokenizer eos + ``generation_config.eos_token_id``."""
    ids: list[int] = []
    gc = getattr(model, "generation_config", None)
    cand = getattr(gc, "eos_token_id", None) if gc is not None else None
    if isinstance(cand, int):
        cand = [cand]
    for t in [*(cand or []), tokenizer.eos_token_id]:
        if t is not None and int(t) not in ids:
            ids.append(int(t))
    return ids


def default_device() -> str | None:
    """Return ``"cuda"`` when a GPU is visible (else None: stay on CPU)."""
    import torch

    return "cuda" if torch.cuda.is_available() else None


class HFBackend:
    """Batched local generation with transformers; one instance holds one loaded model."""

    name = "hf"

    def __init__(self, spec: ModelSpec, *, device: str | None = None, dtype: str | None = None,
                 model=None, tokenizer=None) -> None:
        if model is None or tokenizer is None:
            if device is None and spec.device_map is None:
                device = default_device()
            model, tokenizer = load_model(spec, device=device, dtype=dtype)
        self.spec = spec
        self.model = model
        self.tok = tokenizer
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.stop_ids = eos_ids(model, tokenizer)
        if not self.stop_ids:
            raise InputError(f"model '{spec.name_or_path}' defines no eos token, so a finished "
                             "answer cannot be told from a cut one",
                             fix="set eos_token_id in its generation_config.json")

    def describe(self) -> dict[str, Any]:
        """Return backend facts recorded in every trace's meta."""
        p = next(self.model.parameters())
        return {"device": str(p.device), "dtype": str(p.dtype).replace("torch.", ""),
                "eos_token_ids": self.stop_ids, "token_count_source": "generated_ids"}

    def render(self, item: Item, chat_template: str) -> str:
        """Return the exact text fed to the model for ``item``."""
        return render_prompt(self.tok, item.prompt, chat_template)

    def encode(self, texts: Sequence[str], templated: bool):
        """Return the left-padded batch encoding (input_ids, attention_mask) of ``texts``."""
        # A chat template already writes BOS where the model wants it; a raw prompt gets the
        # tokenizer's usual special tokens (e.g. Llama's BOS).
        return self.tok(list(texts), return_tensors="pt", padding=True,
                        add_special_tokens=not templated)

    def generate_batch(self, texts: Sequence[str], templated: bool,
                       gen_cfg) -> tuple[list[list[int]], float]:
        """Return (new ids per text, with eos/padding still in; seconds per text) of one batch."""
        import torch

        enc = self.encode(texts, templated).to(next(self.model.parameters()).device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(input_ids=enc["input_ids"],
                                      attention_mask=enc["attention_mask"],
                                      generation_config=gen_cfg)
        dt = (time.perf_counter() - t0) / len(texts)
        return out[:, enc["input_ids"].shape[1]:].tolist(), dt

    def run(self, items: Sequence[Item], *, batch_size: int, max_new_tokens: int,
            temperature: float, top_p: float, seed: int, chat_template: str,
            progress=None) -> Iterator[list[Completion]]:
        """Yield the completions of each finished batch (items sorted by prompt length)."""
        import torch

        rendered = {it.item_id: self.render(it, chat_template) for it in items}
        templated = chat_template != "none" and bool(getattr(self.tok, "chat_template", None))
        lengths = {k: len(self.tok(v, add_special_tokens=not templated)["input_ids"])
                   for k, v in rendered.items()}
        order = sorted(items, key=lambda it: (-lengths[it.item_id], it.item_id))
        gen_cfg = self.generation_config(max_new_tokens, temperature, top_p)
        torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            gen, dt = self.generate_batch([rendered[it.item_id] for it in batch], templated,
                                          gen_cfg)
            done = []
            for it, ids in zip(batch, gen):
                kept, stopped = strip_stop(ids, set(self.stop_ids))
                finish = "stop" if stopped else "length"
                opened = prompt_opens_think(rendered[it.item_id])
                seg = segment_ids(self.tok, kept, prompt_opens_think=opened,
                                  finish_reason=finish)
                done.append(Completion(
                    item_id=it.item_id, seg=seg, finish_reason=finish, seconds=dt,
                    prompt_opened_think=opened,
                    meta={"prompt_tokens": lengths[it.item_id], "generated_ids": len(kept)},
                    ids=kept))
            if progress is not None:
                progress.update(len(batch))
            yield done

    def generation_config(self, max_new_tokens: int, temperature: float, top_p: float):
        """Return the model's generation config with this run's budget, stops and sampling."""
        from transformers import GenerationConfig

        base = getattr(self.model, "generation_config", None)
        cfg = copy.deepcopy(base) if base is not None else GenerationConfig()
        cfg.max_new_tokens = int(max_new_tokens)
        cfg.max_length = None
        cfg.min_new_tokens = None
        cfg.eos_token_id = list(self.stop_ids)
        cfg.pad_token_id = self.tok.pad_token_id
        cfg.num_return_sequences = 1
        cfg.num_beams = 1
        if temperature and temperature > 0:
            cfg.do_sample = True
            cfg.temperature = float(temperature)
            cfg.top_p = float(top_p)
            cfg.top_k = None
        else:  # greedy, as in the paper; drop sampling knobs the model's config may carry
            cfg.do_sample = False
            cfg.temperature = None
            cfg.top_p = None
            cfg.top_k = None
        return cfg
