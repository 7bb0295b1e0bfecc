"""Training organism v2: warm start → GRPO teacher, base, four students from sampled traces.

``train(out, seed=100)`` writes one ``save_pretrained`` folder per role (``teacher``, ``base``,
``student_mastery``, ``student_mimic_content``, ``student_mimic_length``, ``student_posthoc``,
plus ``teacher_warm``, the teacher before RL) and ``train_summary.json`` (seed, config, CPU and
wall seconds per phase, the teacher's behaviour per family before and after RL). Order:

1. ``teacher_warm``: SFT from random init on warm-start traces (``T`` steps unrelated to k).
2. ``base``: SFT from random init on direct answers (no reasoning).
3. ``teacher``: GRPO (TRL) from the warm start: correctness reward, per-token cost.
4. The teacher *samples* (temperature 1) completions of the distillation prompts; each student
   starts from the base and is SFT'd on its transform of them (``traces.student_datasets``).

Deterministic for a seed, ``threads`` and machine (seeded inits, batches and sampling,
``torch.use_deterministic_algorithms``). See docs/organism.md ("Organism v2").
"""

from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...io import atomic_write_json
from ..training import Shape, _encode, _set_determinism, build_model, complete, save_role, sft
from . import DEV_SEED, ROLES
from . import traces as TR
from .evaluate import behaviour
from .families import FAMILIES, FORMAT, K_MAX, Problem, make_items, random_problem
from .rl import RLConfig, grpo

log = logging.getLogger(__name__)

@dataclass
class V2Config:
    """Everything that decides a trained v2 organism (recorded in each ``organism.json``).

    ``pool_per_family``: training problems per family (evaluation prompts excluded);
    ``warm_p_full``: warm start's probability of writing all six steps (else uniform 1..6);
    ``rl_prompts``: prompts GRPO draws from; ``distill_per_family``: prompts the RL teacher
    samples for the students; ``*_steps``: SFT optimiser steps of ``batch_size`` sequences.
    """

    seed: int = DEV_SEED
    teacher: Shape = field(default_factory=Shape)
    student: Shape = field(default_factory=lambda: Shape(64, 2, 4, 2, 256))
    pool_per_family: int = 8000
    warm_p_full: float = 0.5
    warm_steps: int = 3000
    base_steps: int = 1500
    rl: RLConfig = field(default_factory=RLConfig)
    rl_prompts: int = 3000
    distill_per_family: int = 3000
    distill_temperature: float = 1.0
    student_steps: int = 2700
    batch_size: int = 32
    lr: float = 1e-2
    warmup: int = 50
    weight_decay: float = 0.01
    threads: int = 1
    max_new_tokens: int = 40

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> V2Config:
        """Return the config a ``to_dict`` dict describes."""
        d = dict(d)
        d["teacher"], d["student"] = Shape(**d["teacher"]), Shape(**d["student"])
        d["rl"] = RLConfig(**d["rl"])
        return cls(**d)


def problem_pool(n_per_family: int, seed: int) -> list[Problem]:
    """Return ``n_per_family`` random problems per family (k uniform in 1..6), interleaved,
    none of them an evaluation prompt of the ``organism_v2`` suite."""
    rng = random.Random(f"pool-{seed}")
    held = {it.prompt for it in make_items()}
    per = {f: [] for f in FAMILIES}
    for fam in FAMILIES:
        while len(per[fam]) < n_per_family:
            p = random_problem(rng, fam, rng.randint(1, K_MAX))
            if p.prompt() not in held:
                per[fam].append(p)
    return [per[f][i] for i in range(n_per_family) for f in FAMILIES]


def _info(role: str, seed: int, cfg: V2Config, init: str, data: str, stats: dict) -> dict:
    return {"role": role, "version": 2, "format": FORMAT, "seed": seed, "init": init,
            "data": data,
            "train": stats, "config": cfg.to_dict(), "synthetic": True,
            "note": "organism v2 model trained by mimicry.organism.v2.train; the tasks' "
                    "difficulty norms are synthetic, not human"}


DATA_NOTES = {
    "teacher_warm": "SFT on warm-start traces: T steps with T unrelated to difficulty "
                    "(all six with p = warm_p_full, else uniform 1..6), conclusion from its steps",
    "base": "SFT on direct answers (no reasoning)",
    "teacher": "GRPO (TRL) from teacher_warm: correctness reward minus a per-token cost",
    "student_mastery": "SFT from base on the RL teacher's sampled completions, verbatim",
    "student_mimic_content": "SFT from base on the teacher's sampled traces with numbers and "
                             "letters scrambled; concludes what its scrambled steps imply",
    "student_mimic_length": "SFT from base on the teacher's sampled traces permuted within each "
                            "family (format and verbosity kept, length unrelated), gold answer",
    "student_posthoc": "SFT from base on the teacher's sampled traces with numbers and letters "
                       "scrambled (teacher format and length), gold answer",
}


def train(out: str | Path, seed: int = DEV_SEED, *, config: V2Config | None = None,
          roles: tuple[str, ...] = ROLES, progress: bool = True,
          evaluate: bool = True, reuse: bool = False) -> dict[str, Path]:
    """Return ``{role: folder}`` after training the v2 organism into ``out``.

    ``roles`` may leave out students (teacher and base are always trained); ``evaluate``
    records the teacher's per-family behaviour before and after RL in the summary; ``reuse``
    loads ``teacher_warm`` and ``base`` from ``out`` when they were trained with the same seed
    and the same settings of their phase (a rerun that changes only RL or students).
    """
    import torch

    from .tokenizer import build_tokenizer

    cfg = copy.deepcopy(config) if config is not None else V2Config()
    cfg.seed = seed
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown organism v2 roles {sorted(unknown)}; use {list(ROLES)}")
    out = Path(out)
    old = _set_determinism(cfg.threads)
    t0, w0 = time.process_time(), time.time()
    phases: dict[str, dict[str, float]] = {}
    evals: dict[str, Any] = {}
    paths: dict[str, Path] = {}

    def phase(name: str, c0: float, ww0: float) -> None:
        phases[name] = {"cpu_seconds": round(time.process_time() - c0, 1),
                        "wall_seconds": round(time.time() - ww0, 1)}
        log.info("organism v2 %s: %s", name, phases[name])

    try:
        tok = build_tokenizer()
        pool = problem_pool(cfg.pool_per_family, seed)
        rng = random.Random(seed * 1000 + 5)

        def fit(model, pairs, steps, name, s):
            ex = [_encode(tok, q, c) for q, c in pairs]
            return sft(model, ex, steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=s,
                       warmup=cfg.warmup, weight_decay=cfg.weight_decay,
                       pad_id=tok.pad_token_id, desc=name, progress=progress)

        def save(role, model, init, stats):
            paths[role] = save_role(model, tok, out / role,
                                    _info(role, seed, cfg, init, DATA_NOTES[role], stats))

        c, w = time.process_time(), time.time()
        warm = [(p.prompt(), TR.warm_completion(p, TR.warm_steps(rng, cfg.warm_p_full)))
                for p in pool]
        teacher = _reuse(out / "teacher_warm", cfg, seed) if reuse else None
        if teacher is None:
            teacher = build_model(cfg.teacher, tok, seed * 1000 + 1)
            st = fit(teacher, warm, cfg.warm_steps, "teacher_warm", seed * 1000 + 11)
            save("teacher_warm", teacher, "random", st)
        else:
            paths["teacher_warm"] = out / "teacher_warm"
        phase("teacher_warm", c, w)

        c, w = time.process_time(), time.time()
        base = _reuse(out / "base", cfg, seed) if reuse else None
        if base is None:
            base = build_model(cfg.student, tok, seed * 1000 + 2)
            st = fit(base, [(p.prompt(), TR.base_completion(p)) for p in pool],
                     cfg.base_steps, "base", seed * 1000 + 12)
            save("base", base, "random", st)
        else:
            paths["base"] = out / "base"
        phase("base", c, w)

        if evaluate:
            c, w = time.process_time(), time.time()
            evals["teacher_warm"] = _summary(teacher, tok, cfg, seed)
            phase("eval_warm", c, w)

        c, w = time.process_time(), time.time()
        rl_probs = pool[:cfg.rl_prompts]
        # TRL builds the KL reference model (beta > 0) from the policy's name_or_path: point it
        # at the saved warm start (a model built in memory has none)
        teacher.config._name_or_path = str(out / "teacher_warm")
        st = grpo(teacher, tok, rl_probs, cfg.rl, seed=seed * 1000 + 13, progress=progress)
        save("teacher", teacher, "teacher_warm", st)
        phase("teacher_rl", c, w)
        if evaluate:
            c, w = time.process_time(), time.time()
            evals["teacher"] = _summary(teacher, tok, cfg, seed)
            phase("eval_rl", c, w)

        wanted = [r for r in TR.STUDENTS if r in roles]
        if wanted:
            c, w = time.process_time(), time.time()
            distill = pool[len(pool) - len(FAMILIES) * cfg.distill_per_family:]
            teacher_out = complete(teacher, tok, [p.prompt() for p in distill],
                                   max_new_tokens=cfg.max_new_tokens,
                                   temperature=cfg.distill_temperature, seed=seed * 1000 + 6)
            data = TR.student_datasets(distill, teacher_out, seed * 1000 + 3)
            phase("teacher_sampling", c, w)
            for i, role in enumerate(wanted):
                c, w = time.process_time(), time.time()
                student = copy.deepcopy(base)
                st = fit(student, data[role], cfg.student_steps, role, seed * 1000 + 20 + i)
                save(role, student, "base", st)
                phase(role, c, w)
    finally:
        torch.set_num_threads(old[0])
        torch.use_deterministic_algorithms(old[1])
    summary = {"seed": seed, "version": 2, "roles": {r: p.name for r, p in paths.items()},
               "cpu_seconds": round(time.process_time() - t0, 1),
               "wall_seconds": round(time.time() - w0, 1), "phases": phases,
               "teacher_behaviour": evals, "config": cfg.to_dict()}
    atomic_write_json(out / "train_summary.json", summary)
    return paths


_PRE_RL_KEYS = ("teacher", "student", "pool_per_family", "warm_p_full", "warm_steps",
                "base_steps", "batch_size", "lr", "warmup", "weight_decay", "threads")


def _reuse(folder: Path, cfg: V2Config, seed: int):
    """Return the model saved in ``folder`` if it came from the same seed, trace format and
    pre-RL settings, else None."""
    import json

    from ...models import load_model

    meta = folder / "organism.json"
    if not meta.exists():
        return None
    info = json.loads(meta.read_text())
    old, new = info.get("config", {}), cfg.to_dict()
    if info.get("seed") != seed or info.get("format") != FORMAT or any(
            old.get(k) != new[k] for k in _PRE_RL_KEYS):
        return None  # another seed, another trace format or other settings: train afresh
    model, _ = load_model(str(folder), dtype="float32")
    log.info("organism v2: reusing %s (same seed and settings)", folder)
    return model


def _summary(model, tok, cfg: V2Config, seed: int) -> dict[str, Any]:
    """Return the per-family behaviour (no rows), greedy and sampled at temperature 1."""
    out = {}
    for name, temp in (("greedy", 0.0), ("sampled", 1.0)):
        b = behaviour(model, tok, temperature=temp, seed=seed, max_new_tokens=cfg.max_new_tokens)
        out[name] = b["families"]
    return out
