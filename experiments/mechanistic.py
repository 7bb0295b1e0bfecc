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

Options: :data:`experiments.probing.PROBE_DEFAULTS` updated by ``[probes.options.<name>]``;
``max_new_tokens`` defaults to the run's generation budget. The dry-run lines (forward passes,
tokens) are :func:`experiments.cost.mechanistic_cost_lines`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mimicry.errors import MimicryError

from .layout import RunFolder
from .support import model_source

TOKEN_ROWS = 128  # per-token rows kept along the longest reasoning


def _models(inp, roles: tuple[str, ...]) -> list:
    """Return the run's models in ``roles`` that have traces (none without a run folder)."""
    if inp.cfg is None or inp.run is None:
        inp.skipped.append("needs a run folder and its config (the models to load): run it "
                           "through mimicry run or experiments.inputs.from_run")
        return []
    return [m for m in inp.cfg.models if m.role in roles and inp.run.traces(m.key).exists()]


def _opts(inp, name: str, m) -> dict[str, Any]:
    """Return the options of ``name`` for model ``m`` (max_new_tokens: its generation budget)."""
    budget = int(m.max_new_tokens or inp.cfg.generation.max_new_tokens)
    opts = inp.opts(name)
    return {"max_new_tokens": budget, **opts} if name in ("steer", "patch") else opts


def compute_units(fn: Callable, inp, _unit: Callable) -> list[tuple[str, Any]]:
    """Return ``[(key, compute Result)]`` for the teacher and every student/control."""
    from probes.mechanistic import token_cache

    out = []
    for m in _models(inp, ("teacher", "student", "control")):
        path = inp.run.cache(RunFolder.tokens_stem(m.key))
        try:
            cache = token_cache(model_source(m), inp.run.traces(m.key), path, device=None)
        except MimicryError as e:  # a model that cannot be captured is noted, not fatal
            inp.skipped.append(f"compute:{m.key} not computed ({e.render()})")
            continue
        out += _unit(inp, m.key, fn, cache, tasks=inp.suite, seed=inp.seed, name=m.key,
                     **_opts(inp, "compute", m))
    return out


def steer_units(fn: Callable, inp, _unit: Callable) -> list[tuple[str, Any]]:
    """Return ``[(key, steer Result)]`` for every student/control with caches."""
    out = []
    teacher = inp.cache(inp.teacher) if inp.teacher in inp.caches else None
    for m in _models(inp, ("student", "control")):
        if m.key not in inp.caches:
            continue
        out += _unit(inp, m.key, fn, model_source(m), inp.cache(m.key), tasks=inp.suite,
                     teacher_cache=teacher, seed=inp.seed, name=m.key, **_opts(inp, "steer", m))
    return out


def patch_units(fn: Callable, inp, _unit: Callable) -> list[tuple[str, Any]]:
    """Return ``[(key, patch Result)]`` for every student/control."""
    out = []
    for m in _models(inp, ("student", "control")):
        out += _unit(inp, m.key, fn, model_source(m), tasks=inp.suite, seed=inp.seed,
                     name=m.key, **_opts(inp, "patch", m))
    return out
