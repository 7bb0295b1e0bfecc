"""The mechanistic stage in one call: computation, steering and patching for a set of models.

``run_models(models, traces, tasks=..., teacher=..., students=[...], out=DIR)`` — where
``models`` maps a key to what to load (path / hub id) and ``traces`` to its own traces file —
captures each model's per-token residuals along its reasoning (``DIR/<key>__tokens.h5``,
resumable), runs ``probes.compute`` (gold answer, every model), ``probes.steer`` (each student;
the teacher's direction mapped in, needs ``caches`` with ``last_prompt``) and
``probes.patch`` (each student), and returns ``{"compute": {key: Result}, "steer": {...},
"patch": {...}}`` ready for ``verdict.run(..., compute=..., steer=..., patch=...)``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from mimicry.errors import InputError

from . import compute as _compute
from . import patch as _patch
from . import steer as _steer

log = logging.getLogger(__name__)


def token_stride(traces: list, rows: int = 128) -> int:
    """Return the stride that keeps about ``rows`` rows of the longest reasoning (>= 1)."""
    longest = max((t.reasoning_tokens or 0 for t in traces), default=0)
    return max(1, math.ceil((longest + 2) / rows))


def token_cache(model: str, traces_file: str | Path, out: str | Path, *, stride: int | None = None,
                device: str | None = None):
    """Return the opened reasoning-token cache of ``model`` over its traces (captured if absent)."""
    from mimicry import open_cache
    from mimicry.capture import CaptureConfig, capture
    from mimicry.traces import read_traces

    out = Path(out)
    if not out.exists():
        stride = stride or token_stride(read_traces(traces_file))
        cfg = CaptureConfig(sites=("last_prompt",), entropy="off", per_token_stride=stride,
                            per_token_segment="reasoning")
        capture(model, traces_file, out, cfg, device=device, progress=False,
                log=lambda s: log.info(s))
    return open_cache(out)


def run_models(models: dict[str, str], traces: dict[str, str | Path], *, tasks: Any,
               teacher: str, students: list[str], out: str | Path,
               caches: dict[str, Any] | None = None, steer_kw: dict | None = None,
               patch_kw: dict | None = None, compute_kw: dict | None = None,
               seed: int = 0, device: str | None = None) -> dict[str, dict[str, Any]]:
    """Return ``{"compute"|"steer"|"patch": {key: Result}}`` and the ``skipped`` reasons.

    ``caches``: ``{key: own-traces cache}`` (``last_prompt``), needed for steering; without
    it (or without the teacher's) steering is skipped. Probe options: ``*_kw``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, dict[str, Any]] = {"compute": {}, "steer": {}, "patch": {}, "skipped": {}}
    for key in [teacher, *students]:
        if key not in models or key not in traces:
            continue
        try:
            tc = token_cache(models[key], traces[key], out / f"{key}__tokens.h5", device=device)
            res["compute"][key] = _compute.run(tc, tasks=tasks, target="answer", seed=seed,
                                               name=key, **(compute_kw or {}))
        except InputError as e:
            res["skipped"][f"compute:{key}"] = e.problem
    caches = caches or {}
    for key in students:
        if key not in models:
            continue
        if key in caches and teacher in caches:
            try:
                res["steer"][key] = _steer.run(models[key], caches[key], tasks=tasks,
                                               teacher_cache=caches[teacher], seed=seed,
                                               name=key, **(steer_kw or {}))
            except InputError as e:
                res["skipped"][f"steer:{key}"] = e.problem
        try:
            res["patch"][key] = _patch.run(models[key], tasks=tasks, seed=seed, name=key,
                                           **(patch_kw or {}))
        except InputError as e:
            res["skipped"][f"patch:{key}"] = e.problem
    return res
