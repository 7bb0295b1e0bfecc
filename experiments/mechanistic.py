"""The causal and computation probes on a run folder: glue for ``compute``, ``steer``, ``patch``.

They run in the probe stage, before the verdict (which reads their Results, row M), and only
read what the intervene stage (:mod:`experiments.stage_intervene`) made with the models:

- ``compute`` — per model with traces (teacher, students, controls): its per-token residuals
  along its own reasoning, ``RUN/caches/<key>__tokens.h5``, into ``probes.compute.run``
  (target ``answer``);
- ``steer`` — per student/control: the dose–response rows in ``RUN/intervene/steer__<key>``
  (its own, the teacher's mapped and random directions) into ``probes.steer.result``;
- ``patch`` — per student/control: the hard ↔ easy ``last_prompt`` patching rows per layer
  in ``RUN/intervene/patch__<key>`` into ``probes.patch.result``.

A model whose runs are missing, unfinished or made with other settings is noted (run the
intervene stage), not fatal. Options: :data:`experiments.probing.PROBE_DEFAULTS` updated by
``[probes.options.<name>]``; the runs' options are read by the intervene stage, ``n_boot`` here.
The dry-run lines (forward passes, tokens) are :func:`experiments.cost.mechanistic_cost_lines`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .layout import RunFolder


def _models(inp, roles: tuple[str, ...]) -> list:
    """Return the run's models in ``roles`` that have traces (none without a run folder)."""
    if inp.cfg is None or inp.run is None:
        inp.skipped.append("needs a run folder and its config (the models to load): run it "
                           "through mimicry run or experiments.inputs.from_run")
        return []
    return [m for m in inp.cfg.models if m.role in roles and inp.run.traces(m.key).exists()]


def compute_units(fn: Callable, inp, _unit: Callable) -> list[tuple[str, Any]]:
    """Return ``[(key, compute Result)]`` for the teacher and every student/control."""
    from mimicry import open_cache

    out = []
    for m in _models(inp, ("teacher", "student", "control")):
        path = inp.run.cache(RunFolder.tokens_stem(m.key))
        if not path.exists():
            inp.skipped.append(f"compute:{m.key} not computed (no {path.name}: {_RUN_IT})")
            continue
        out += _unit(inp, m.key, fn, open_cache(path), tasks=inp.suite, seed=inp.seed,
                     name=m.key, **inp.opts("compute"))
    return out


def steer_units(fn: Callable, inp, _unit: Callable) -> list[tuple[str, Any]]:
    """Return ``[(key, steer Result)]`` for every student/control the intervene stage steered."""
    from probes import steer

    return _from_runs(inp, "steer", steer.result, _unit)


def patch_units(fn: Callable, inp, _unit: Callable) -> list[tuple[str, Any]]:
    """Return ``[(key, patch Result)]`` for every student/control the intervene stage patched."""
    from probes import patch

    return _from_runs(inp, "patch", patch.result, _unit)


_RUN_IT = "run the intervene stage: mimicry run CONFIG --stages intervene"


def _from_runs(inp, name: str, result: Callable, _unit: Callable) -> list[tuple[str, Any]]:
    from .intervene_runs import load_runs, models_for, settings

    out = []
    if _models(inp, ("student", "control")) == []:
        return out
    n_boot = inp.opts(name)["n_boot"]
    for m in models_for(inp.cfg, inp.run, name):
        got = load_runs(inp.run, name, m.key)
        if got is None:
            inp.skipped.append(f"{name}:{m.key} not computed (its runs are missing or "
                               f"unfinished: {_RUN_IT})")
            continue
        rows, plan = got
        if plan.get("settings") != settings(inp.cfg, inp.run, name, m, inp.opts(name)):
            inp.skipped.append(f"{name}:{m.key} not computed (its runs were made with other "
                               f"settings or traces: {_RUN_IT})")
            continue
        out += _unit(inp, m.key, result, rows, plan["meta"], n_boot=n_boot, seed=inp.seed)
    return out
