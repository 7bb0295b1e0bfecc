"""Training the organism: base, teacher and three students, deterministic on CPU.

``train(out, seed=0)`` writes one ``save_pretrained`` folder per role (model, tokenizer,
generation config, ``organism.json`` with the seed, the full config and training stats) and
returns ``{role: path}``. Order: teacher (SFT on programmatic correct traces), base (SFT on
direct answers), teacher generates traces for the distillation prompts, then three students,
each initialised from the base: ``student_mastery`` (teacher's traces as generated),
``student_mimic_content`` (value digits scrambled), ``student_mimic_length`` (traces shuffled
across items). See docs/organism.md.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_json
from . import ROLES, STUDENT_ROLES
from . import traces as T
from .task import MAX_STEPS, Problem, make_items, random_problem


@dataclass
class Shape:
    """A tiny Llama architecture: width, depth, heads, MLP width."""

    hidden_size: int = 64
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 256


@dataclass
class OrganismConfig:
    """Everything that decides the trained organism (recorded in each ``organism.json``).

    ``teacher``/``student``: architectures (students and base share ``student``);
    ``pool_size``: training problems (difficulty uniform in 1..``max_steps``, evaluation
    prompts excluded); ``distill_size``: prompts the teacher answers for the students;
    ``base_fact_fraction``: share of single addition facts in the base's training data;
    ``*_steps``: optimiser steps of ``batch_size`` sequences; ``lr``: AdamW peak learning
    rate (linear warm-up, cosine decay); ``threads``: torch CPU threads (1 = reproducible).
    """

    seed: int = 0
    teacher: Shape = field(default_factory=Shape)
    student: Shape = field(default_factory=lambda: Shape(64, 2, 4, 2, 256))
    max_steps: int = MAX_STEPS
    pool_size: int = 20000
    distill_size: int = 3000
    teacher_steps: int = 1000
    base_steps: int = 2400
    base_fact_fraction: float = 0.0
    student_steps: int = 1200
    batch_size: int = 32
    lr: float = 1e-2
    student_lr: float = 1e-2
    warmup: int = 50
    weight_decay: float = 0.01
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict."""
        return asdict(self)


def _encode(tok, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """Return ``(prompt_ids, completion_ids + [eos])`` as the model sees them."""
    from ..traces.prompt import render_prompt

    p = tok(render_prompt(tok, prompt), add_special_tokens=False)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return p, c


def _batch(examples: list[tuple[list[int], list[int]]], pad_id: int):
    """Return ``(input_ids, labels, attention_mask)``, each ``[batch, max_len]``, right-padded;
    labels are -100 outside the completion (teacher forcing on the completion only)."""
    import torch

    n, width = len(examples), max(len(p) + len(c) for p, c in examples)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), -100, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, (p, c) in enumerate(examples):
        s = p + c
        ids[i, :len(s)] = torch.tensor(s)
        labels[i, len(p):len(s)] = torch.tensor(c)
        mask[i, :len(s)] = 1
    return ids, labels, mask


def sft(model, examples: list[tuple[list[int], list[int]]], *, steps: int, batch_size: int,
        lr: float, seed: int, warmup: int = 50, weight_decay: float = 0.01, pad_id: int = 0,
        desc: str = "sft", progress: bool = True) -> dict[str, Any]:
    """Return training stats after fine-tuning ``model`` in place on ``examples``.

    AdamW, linear warm-up then cosine decay, gradient clipping at 1.0; batches drawn
    uniformly with a ``random.Random(seed)`` so the run is reproducible. (Batches of one length
    would save the padding but stalled learning of the step arithmetic: measured, see docs.)
    """
    import torch
    from tqdm.auto import tqdm

    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                            betas=(0.9, 0.98))
    model.train()
    losses: list[float] = []
    t0 = time.process_time()
    bar = tqdm(range(steps), desc=desc, disable=not progress, file=sys.stderr, leave=False)
    for step in bar:
        scale = min(1.0, (step + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        batch = [examples[rng.randrange(len(examples))] for _ in range(batch_size)]
        ids, labels, mask = _batch(batch, pad_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    tail = losses[-max(1, steps // 10):]
    return {"steps": steps, "final_loss": sum(tail) / len(tail), "first_loss": losses[0],
            "cpu_seconds": round(time.process_time() - t0, 2)}


def complete(model, tok, prompts: list[str], *, max_new_tokens: int, temperature: float = 0.0,
             seed: int = 0, batch_size: int = 256) -> list[str]:
    """Return one completion text per prompt (special tokens kept, eos/pad cut): greedy when
    ``temperature`` is 0, else sampled (top-k and top-p off) after ``torch.manual_seed(seed)``.

    Shared by the v1 and v2 organisms (the prompt goes through ``render_prompt``: the organism
    tokenizers have no chat template, so it is the raw prompt).
    """
    import torch

    from ..traces.prompt import render_prompt

    outs: list[str] = []
    old_side = tok.padding_side
    tok.padding_side = "left"
    kw = ({"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
          if temperature > 0 else {"do_sample": False})
    if temperature > 0:
        torch.manual_seed(seed)
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [render_prompt(tok, p) for p in prompts[i:i + batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens,
                                     pad_token_id=tok.pad_token_id,
                                     eos_token_id=tok.eos_token_id, **kw)
            for row in gen[:, enc["input_ids"].shape[1]:].tolist():
                if tok.eos_token_id in row:
                    row = row[:row.index(tok.eos_token_id)]
                row = [t for t in row if t != tok.pad_token_id]
                outs.append(tok.decode(row, skip_special_tokens=False).strip())
    finally:
        tok.padding_side = old_side
    return outs


def build_model(shape: Shape, tok, seed: int):
    """Return a freshly initialised tiny ``LlamaForCausalLM`` (weights drawn with ``seed``).

    Llama, not Qwen2: transformers 5 loads any folder whose config says ``qwen2`` with
    ``Qwen2Tokenizer``, which rebuilds a byte-level BPE and silently mangles this word-level
    vocabulary (``s1`` -> ``1``); for ``llama`` folders the saved ``tokenizer.json`` is used.
    """
    import torch
    import transformers

    cfg = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads, max_position_embeddings=256,
        tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None)
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(cfg)


def problem_pool(n: int, max_steps: int, seed: int) -> list[Problem]:
    """Return ``n`` random training problems (difficulty uniform in 1..max_steps), none of
    which is an evaluation item of the ``organism`` suite."""
    rng = random.Random(seed)
    held_out = {it.prompt for it in make_items()}
    out: list[Problem] = []
    while len(out) < n:
        p = random_problem(rng, rng.randint(1, max_steps))
        if p.prompt() not in held_out:
            out.append(p)
    return out


def fact_examples(tok, n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """Return ``n`` single addition facts: prompt ``"7 s1 +5"``, completion ``"12 2"``.

    The base's "pretraining": a pretrained LM knows its addition table (the plain sum and its
    last digit) for one step, in the task's notation; no chain of steps and no ``<think>``.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        p = tok(f"{a} s1 +{b}", add_special_tokens=False)["input_ids"]
        c = tok(f"{a + b} {(a + b) % 10}", add_special_tokens=False)["input_ids"]
        out.append((p, c + [tok.eos_token_id]))
    return out


def student_datasets(problems: list[Problem], teacher_out: list[str],
                     seed: int) -> dict[str, list[tuple[str, str]]]:
    """Return ``{student_role: [(prompt, completion)]}`` built from the teacher's generations.

    Mastery keeps the teacher's completions verbatim. ``student_mimic_content`` gets the
    teacher's reasoning with every number scrambled and concludes, as the teacher does, with the
    last running value of its own steps (so its answers are right only by chance);
    ``student_mimic_length`` gets another item's teacher reasoning and the gold answer.
    """
    from ..traces import split_reasoning

    reasonings = [split_reasoning(c)[0] for c in teacher_out]
    rng = random.Random(seed)
    scrambled = [T.scramble_content(r, rng) for r in reasonings]
    shuffled, _ = T.shuffle_traces(reasonings, random.Random(seed + 1))
    prompts = [p.prompt() for p in problems]
    golds = [str(p.answer) for p in problems]
    return {
        "student_mastery": list(zip(prompts, teacher_out)),
        # the conclusion follows the scrambled steps (their last running value), as the
        # teacher's conclusion follows its steps: reasoning-shaped text that computes nothing
        # (an empty trace, from an untrained teacher, concludes with the gold answer)
        "student_mimic_content": [(q, T.with_think(r, (r.split() or [a])[-1])) for q, r, a in
                                  zip(prompts, scrambled, golds)],
        "student_mimic_length": [(q, T.with_think(r, a))
                                 for q, r, a in zip(prompts, shuffled, golds)],
    }


def save_role(model, tok, out_dir: Path, info: dict[str, Any]) -> Path:
    """Return ``out_dir`` after writing model + tokenizer + ``organism.json`` atomically
    (a temporary sibling folder renamed into place, so no half-written model is left)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / "organism.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _set_determinism(threads: int):
    import torch

    old = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return old


def train(out: str | Path, seed: int = 0, *, config: OrganismConfig | None = None,
          roles: tuple[str, ...] = ROLES, progress: bool = True) -> dict[str, Path]:
    """Return ``{role: folder}`` after training the organism into ``out`` (one folder per role).

    Deterministic for a given ``seed`` and ``config.threads`` on one machine: every model is
    initialised with ``torch.manual_seed`` and batches come from seeded ``random.Random``.
    ``roles`` may leave out students (the teacher and base are always trained).
    """
    import torch

    from .tokenizer import build_tokenizer

    cfg = copy.deepcopy(config) if config is not None else OrganismConfig()
    cfg.seed = seed
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown organism roles {sorted(unknown)}; use {list(ROLES)}")
    out = Path(out)
    old = _set_determinism(cfg.threads)
    t_start, w_start = time.process_time(), time.time()
    paths: dict[str, Path] = {}
    try:
        tok = build_tokenizer()
        pool = problem_pool(cfg.pool_size, cfg.max_steps, seed)

        def info(role: str, init: str, data: str, stats: dict) -> dict[str, Any]:
            return {"role": role, "seed": seed, "init": init, "data": data, "train": stats,
                    "config": cfg.to_dict(), "synthetic": True,
                    "note": "model organism trained by mimicry.organism.train; the task's "
                            "difficulty norm is synthetic, not human"}

        def fit(model, pairs: list[tuple[str, str]], steps: int, lr: float, name: str, s: int):
            examples = [_encode(tok, q, c) for q, c in pairs]
            return sft(model, examples, steps=steps, batch_size=cfg.batch_size, lr=lr,
                       seed=s, warmup=cfg.warmup, weight_decay=cfg.weight_decay,
                       pad_id=tok.pad_token_id, desc=name, progress=progress)

        teacher = build_model(cfg.teacher, tok, seed * 1000 + 1)
        st = fit(teacher, [(p.prompt(), T.teacher_completion(p)) for p in pool],
                 cfg.teacher_steps, cfg.lr, "teacher", seed * 1000 + 11)
        paths["teacher"] = save_role(teacher, tok, out / "teacher", info(
            "teacher", "random", "SFT on programmatic correct traces", st))

        base = build_model(cfg.student, tok, seed * 1000 + 2)
        examples = [_encode(tok, p.prompt(), T.direct_completion(p)) for p in pool]
        if cfg.base_fact_fraction > 0:
            n_fact = int(len(examples) * cfg.base_fact_fraction / (1 - cfg.base_fact_fraction))
            examples += fact_examples(tok, n_fact, seed * 1000 + 4)
        st = sft(base, examples, steps=cfg.base_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                 seed=seed * 1000 + 12, warmup=cfg.warmup, weight_decay=cfg.weight_decay,
                 pad_id=tok.pad_token_id, desc="base", progress=progress)
        paths["base"] = save_role(base, tok, out / "base", info(
            "base", "random", "SFT on direct answers (no reasoning), mixed with single "
            f"addition facts (fraction {cfg.base_fact_fraction})", st))

        wanted = [r for r in STUDENT_ROLES if r in roles]
        if wanted:
            distill = pool[:cfg.distill_size]
            t_gen = time.process_time()
            teacher_out = complete(teacher, tok, [p.prompt() for p in distill],
                                   max_new_tokens=4 * cfg.max_steps + 8)
            gen_s = round(time.process_time() - t_gen, 2)
            data = student_datasets(distill, teacher_out, seed * 1000 + 3)
            for i, role in enumerate(wanted):
                student = copy.deepcopy(base)
                st = fit(student, data[role], cfg.student_steps, cfg.student_lr, role,
                         seed * 1000 + 20 + i)
                st["teacher_generation_cpu_seconds"] = gen_s
                paths[role] = save_role(student, tok, out / role, info(
                    role, "base", _DATA_NOTES[role], st))
    finally:
        torch.set_num_threads(old[0])
        torch.use_deterministic_algorithms(old[1])
    summary = {"seed": seed, "roles": {r: p.name for r, p in paths.items()},
               "cpu_seconds": round(time.process_time() - t_start, 1),
               "wall_seconds": round(time.time() - w_start, 1), "config": cfg.to_dict()}
    atomic_write_json(out / "train_summary.json", summary)
    return paths


_DATA_NOTES = {
    "student_mastery": "SFT from base on the teacher's greedy completions (reasoning + answer)",
    "student_mimic_content": "SFT from base on teacher reasoning with every number replaced "
                             "by a random number of as many digits (same format and per-item "
                             "length); the answer is the last running value of those steps",
    "student_mimic_length": "SFT from base on teacher reasoning shuffled across items "
                            "(same format and verbosity, length unrelated to difficulty), "
                            "gold answer",
}
