"""The causal and computation probes on a run folder: glue for ``compute``, ``steer``, ``patch``.

They run in the probe stage, before the verdict (which reads their Results, row M):

- ``compute`` — per model with traces (teacher, students, controls): captures its per-token
  residuals along its own reasoning into ``RUN/caches/<key>__tokens.h5`` (stride chosen so
  the longest reasoning keeps about 128 rows; resumable), then ``probes.compute.run``
  (target ``answer``);
- ``steer`` — per student/control: loads the model, steers along its own, the teacher's
  mapped and random directions (``probes.steer.run``; its own and the teacher's
  ``last_prompt`` caches);
- ``patch`` — per student/control: hard ↔ easy ``last_prompt`` patching per layer.

Options come from ``[probes.options.<name>]``; ``max_new_tokens`` defaults to the run's
generation budget. :func:`cost_lines` gives the dry-run lines (forward passes, tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mimicry.errors import MimicryError

from .support import model_source, traces_path

STEER_DEFAULTS = {"alphas": (-1.0, -0.5, 0.5, 1.0), "n_random": 20, "train_frac": 0.5}
PATCH_DEFAULTS = {"n_pairs": 24}
TOKEN_ROWS = 128  # per-token rows kept along the longest reasoning


def _models(ctx, roles: tuple[str, ...]) -> list:
    return [m for m in ctx.cfg.models if m.role in roles and traces_path(ctx.run, m.key).exists()]


def _budget(ctx, m) -> int:
    return int(m.max_new_tokens or ctx.cfg.generation.max_new_tokens)


def compute_units(fn: Callable, ctx) -> list[tuple[str, Any]]:
    """Return ``[(key, compute Result)]`` for the teacher and every student/control."""
    from probes.mechanistic import token_cache

    from .probing import _unit

    out = []
    for m in _models(ctx, ("teacher", "student", "control")):
        path = ctx.run / "caches" / f"{m.key}__tokens.h5"
        try:
            cache = token_cache(model_source(m), traces_path(ctx.run, m.key), path,
                                device=None)
        except MimicryError as e:  # a model that cannot be captured is noted, not fatal
            ctx.skipped.append(f"compute:{m.key} not computed ({e.render()})")
            continue
        kw = {"target": "answer", **ctx.opts}
        out += _unit(ctx, m.key, fn, cache, tasks=ctx.suite, seed=ctx.cfg.seed, name=m.key,
                     **kw)
    return out


def steer_units(fn: Callable, ctx) -> list[tuple[str, Any]]:
    """Return ``[(key, steer Result)]`` for every student/control with caches."""
    from .probing import _unit

    out = []
    teacher = ctx.cache(ctx.teacher) if ctx.teacher in ctx.paths else None
    for m in _models(ctx, ("student", "control")):
        if m.key not in ctx.paths:
            continue
        kw = {**STEER_DEFAULTS, "max_new_tokens": _budget(ctx, m), **ctx.opts}
        out += _unit(ctx, m.key, fn, model_source(m), ctx.cache(m.key), tasks=ctx.suite,
                     teacher_cache=teacher, seed=ctx.cfg.seed, name=m.key, **kw)
    return out


def patch_units(fn: Callable, ctx) -> list[tuple[str, Any]]:
    """Return ``[(key, patch Result)]`` for every student/control."""
    from .probing import _unit

    out = []
    for m in _models(ctx, ("student", "control")):
        kw = {**PATCH_DEFAULTS, "max_new_tokens": _budget(ctx, m), **ctx.opts}
        out += _unit(ctx, m.key, fn, model_source(m), tasks=ctx.suite, seed=ctx.cfg.seed,
                     name=m.key, **kw)
    return out


def cost_lines(cfg, ests: list, n_items: int) -> list[str]:
    """Return the dry-run lines of steering, patching and the computation probe's capture.

    steering, per student: held-out items × (1 + nonzero α × (3 + n_random) directions)
    greedy generations, each ≤ prompt + max_new_tokens tokens (one prefill + ≤ max_new_tokens
    decode forwards); patching, per student: 2 directions × n_pairs × (layers + 1 + 2 own
    runs) generations + 2 × n_pairs prompt forwards; compute: one forward over each model's
    own traces, ≤ 130 rows × (layers + 1) × d_model × 4 bytes per item on disk.
    """
    names = set(cfg.probes.names)
    out = []
    opts = cfg.probes.options
    st = {**STEER_DEFAULTS, **opts.get("steer", {})}
    pa = {**PATCH_DEFAULTS, **opts.get("patch", {})}
    roles = {m.key: m.role for m in cfg.models}
    for e in ests:
        if roles.get(e.key) not in ("student", "control") or e.shape is None:
            continue
        if "steer" in names:
            n_test = n_items - round(n_items * float(st["train_frac"]))
            n_alpha = sum(1 for a in st["alphas"] if float(a) != 0)
            gens = n_test * (1 + n_alpha * (3 + int(st["n_random"])))
            out.append(f"steer {e.key}: {human(gens)} generations ({n_test} held-out items × "
                       f"{1 + n_alpha * (3 + int(st['n_random']))} runs), ≤ "
                       f"{human(gens * e.seq_len)} tokens (prefill + decode forwards)")
        if "patch" in names:
            gens = 2 * int(pa["n_pairs"]) * (e.shape.layers + 1 + 2)
            out.append(f"patch {e.key}: {human(gens)} generations (2 directions × "
                       f"{pa['n_pairs']} pairs × ({e.shape.layers + 1} layers + 2 own runs)), "
                       f"≤ {human(gens * e.seq_len)} tokens + {2 * int(pa['n_pairs'])} prompt "
                       "forwards")
    if "compute" in names:
        disk = sum(n_items * (TOKEN_ROWS + 2) * (e.shape.layers + 1) * e.shape.hidden * 4
                   for e in ests if e.shape is not None
                   and roles.get(e.key) in ("teacher", "student", "control"))
        out.append(f"compute: one capture forward per item over each reasoning model's own "
                   f"traces, ≤ {TOKEN_ROWS + 2} per-token rows each, ~{disk / 2**30:.1f} GiB "
                   "on disk")
    return out


def human(n: float) -> str:
    """Return a count as ``3.1M`` / ``12.0k`` / ``950``."""
    from .cost import human_count

    return human_count(n)
