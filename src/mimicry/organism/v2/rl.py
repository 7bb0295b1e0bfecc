"""The RL phase of the v2 teacher: TRL's ``GRPOTrainer``, correctness reward, per-token cost.

Reward of one sampled completion (:func:`reward_value`): ``1 − cost × reasoning_tokens`` if
``</think>`` closes the reasoning and the answer after it is right, else ``0``: the per-token
cost is charged on right answers only. Starting from the warm start (verbose, length unrelated
to difficulty), the only way to earn more is to stop as soon as the answer is known: the
difficulty-sensitive length is learned.

Why the cost is charged on right answers only (measured on the development seed 100, GRPO
with group-scaled advantages): with ``correct − cost × tokens`` for every sample, a group whose
eight samples are all wrong still differs in cost, the group's std scaling turns those small
differences into full-size advantages, every trace got shorter, and the teacher collapsed to
5-token traces (accuracy falling) within 120 steps; with the same reward and unscaled
advantages the teacher went the other way, to always writing all six steps (entropy 0.15 →
0.03, length 21 → 24 tokens after 150 steps). With the cost on right answers only, all-wrong
groups carry no gradient and the length pressure comes from right answers alone; without a
KL term (``beta = 0``) that pressure still spread from easy items to all as "stop after n
steps"; ``beta = 0.04`` (KL to the warm start) let the chain family learn to stop at its cue.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ...traces import split_reasoning
from ..task import parse_answer
from .families import Problem

log = logging.getLogger(__name__)


@dataclass
class RLConfig:
    """GRPO settings: ``steps`` optimiser steps, each on ``prompts`` prompts × ``generations``
    samples at ``temperature``; ``lr`` AdamW peak; ``cost`` reward per reasoning token;
    ``max_completion_length`` token budget of a sample (a cut sample earns no correctness);
    ``scale_rewards`` TRL's advantage scaling (``"group"``: divided by the group's std)."""

    steps: int = 250
    prompts: int = 8
    generations: int = 8
    lr: float = 1e-3
    cost: float = 0.02
    temperature: float = 1.0
    max_completion_length: int = 40
    beta: float = 0.04
    scale_rewards: str = "group"


def reward_value(completion: str, gold: str, cost: float) -> float:
    """Return ``1 − cost × reasoning_tokens`` for a right completion, else ``0`` (text with
    special tokens); right needs a closed ``</think>`` and the answer's last digit ``gold``."""
    reasoning, answer, closed = split_reasoning(completion)
    if not (closed and parse_answer(answer) == str(gold)):
        return 0.0
    return 1.0 - cost * len(reasoning.split())


class CorrectMinusTokenCost:
    """The GRPO reward function (TRL calling convention): decodes ``completion_ids`` with the
    special tokens (TRL's own ``completions`` text drops ``<think>``/``</think>``)."""

    __name__ = "correct_minus_token_cost"

    def __init__(self, tok, cost: float) -> None:
        self.tok, self.cost = tok, cost

    def __call__(self, prompts, completions, completion_ids, answer, **kw) -> list[float]:
        """Return one reward per completion."""
        out = []
        for ids, gold in zip(completion_ids, answer):
            ids = [i for i in ids if i not in (self.tok.eos_token_id, self.tok.pad_token_id)]
            out.append(reward_value(self.tok.decode(ids, skip_special_tokens=False), gold,
                                    self.cost))
        return out


def grpo(model, tok, problems: list[Problem], cfg: RLConfig, *, seed: int,
         progress: bool = True) -> dict[str, Any]:
    """Return training stats after GRPO on ``problems`` (``model`` updated in place)."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    ds = Dataset.from_dict({"prompt": [p.prompt() for p in problems],
                            "answer": [p.answer for p in problems],
                            "family": [p.family for p in problems],
                            "k": [p.k for p in problems]})
    t0, w0 = time.process_time(), time.time()
    with tempfile.TemporaryDirectory(prefix="mimicry-grpo-") as tmp:
        args = GRPOConfig(
            output_dir=tmp, use_cpu=True, seed=seed, data_seed=seed,
            per_device_train_batch_size=cfg.prompts * cfg.generations,
            num_generations=cfg.generations, max_completion_length=cfg.max_completion_length,
            temperature=cfg.temperature, learning_rate=cfg.lr, beta=cfg.beta,
            scale_rewards=cfg.scale_rewards,
            max_steps=cfg.steps, lr_scheduler_type="constant", warmup_steps=0,
            logging_steps=10, save_strategy="no", report_to="none", bf16=False,
            disable_tqdm=not progress, dataloader_num_workers=0, gradient_checkpointing=False)
        trainer = GRPOTrainer(model=model, reward_funcs=CorrectMinusTokenCost(tok, cfg.cost),
                              args=args, train_dataset=ds, processing_class=tok)
        trainer.train()
        history = [{k: v for k, v in h.items() if k in ("step", "reward", "loss",
                                                         "completions/mean_length")}
                   for h in trainer.state.log_history if "reward" in h]
    model.eval()
    torch.set_grad_enabled(True)
    return {"steps": cfg.steps, "cpu_seconds": round(time.process_time() - t0, 2),
            "wall_seconds": round(time.time() - w0, 2), "history": history}
