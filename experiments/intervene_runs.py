"""What the intervene stage runs and the rows it keeps: shared by the stage and the probe stage.

:func:`wanted`, :func:`models_for`, :func:`run_options` and :func:`settings` say which runs
the config asks for and what they depend on; :func:`append_rows` / :func:`read_rows` keep a
runs file (JSON lines, one write per run, a line cut by a crash dropped) and
:func:`load_runs` gives the probe stage the rows of a finished plan in canonical order.
Layout: :class:`~experiments.layout.RunFolder` (``intervene_plan``, ``intervene_rows``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mimicry.io import atomic_path, json_ready

from .config import ExperimentConfig, ModelConfig
from .layout import RunFolder

MECHANISTIC = ("compute", "steer", "patch")
# options that only the analysis uses (the probe stage): not part of what the runs depend on
ANALYSIS_ONLY = {"steer": {"n_boot"}, "patch": {"n_boot"}}
# keyword arguments of steer.run / patch.run that the stage passes itself: not options
NOT_OPTIONS = {"model", "cache", "tasks", "teacher_cache", "items", "seed", "name",
               "tokenizer", "progress_bar"}


# ---------------------------------------------------------------- what to run


def wanted(cfg: ExperimentConfig) -> list[str]:
    """Return the mechanistic probes of ``[probes] names`` that this stage prepares."""
    return [n for n in MECHANISTIC if n in cfg.probes.names]


def models_for(cfg: ExperimentConfig, run: RunFolder, name: str) -> list[ModelConfig]:
    """Return the models ``name`` runs on that have traces in ``run`` (config order).

    compute: every teacher/student/control; steer and patch: students and controls, only those
    in ``[intervene] models`` when it is set.
    """
    run = RunFolder(run)
    roles = ("teacher", "student", "control") if name == "compute" else ("student", "control")
    keep = set(cfg.intervene.models)
    return [m for m in cfg.models if m.role in roles and run.traces(m.key).exists()
            and (name == "compute" or not keep or m.key in keep)]


def run_options(cfg: ExperimentConfig, name: str, m: ModelConfig,
                options: dict[str, Any]) -> dict[str, Any]:
    """Return the options of ``name`` that decide its runs for ``m`` (every default filled in).

    ``options``: the probe's options as every entry point resolves them
    (``experiments.probing.probe_options``: ``PROBE_DEFAULTS`` and the config's
    ``[probes.options.<name>]``), over the defaults of its ``run`` signature;
    ``max_new_tokens`` defaults to the model's generation budget; the analysis-only options
    (``n_boot``) are left out.
    """
    import inspect

    from probes import patch, steer

    fn = {"steer": steer.run, "patch": patch.run}[name]
    base = {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in NOT_OPTIONS}
    base["max_new_tokens"] = int(m.max_new_tokens or cfg.generation.max_new_tokens)
    opts = {**base, **options}
    return {k: v for k, v in opts.items() if k not in ANALYSIS_ONLY.get(name, ())}


def settings(cfg: ExperimentConfig, run: RunFolder, name: str, m: ModelConfig,
             options: dict[str, Any]) -> dict[str, Any]:
    """Return everything the runs of ``name`` on ``m`` depend on (stored in its plan)."""
    run = RunFolder(run)
    out = {"options": run_options(cfg, name, m, options), "seed": cfg.seed,
           "traces": _sha(run.traces(m.key))}
    teacher = cfg.roles().get("teacher")
    if name == "steer":  # its directions come from the caches: how they were captured
        c = cfg.capture
        out["capture"] = {"sites": list(c.sites), "store_dtype": c.store_dtype,
                          "backend": c.backend, "dtype": m.dtype}
        if teacher and run.traces(teacher).exists():
            out["teacher_traces"] = _sha(run.traces(teacher))
    return json.loads(json.dumps(json_ready(out)))  # as the plan file holds it


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- rows on disk


def read_rows(path: Path) -> list[dict]:
    """Return the complete rows of a rows file (a line cut by a crash is dropped)."""
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # the last write was cut short
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def append_rows(path: Path, df) -> None:
    """Append ``df``'s rows to ``path`` (JSON lines) in one write, flushed to disk."""
    text = "".join(json.dumps(json_ready(r)) + "\n" for r in df.to_dict(orient="records"))
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def job_of(name: str, row: dict) -> tuple:
    """Return the run a row belongs to: ``(direction, α)`` (steer) or ``(direction, layer)``."""
    if name == "steer":
        return str(row["direction"]), float(row["alpha"])
    return str(row["direction"]), int(row["layer"])


def complete(rows: list[dict], name: str, plan: dict) -> tuple[list[dict], set[tuple]]:
    """Return the rows of whole runs (a row for every item or pair), and those runs."""
    size: dict[tuple, int] = {}
    for r in rows:
        size[job_of(name, r)] = size.get(job_of(name, r), 0) + 1
    meta = plan["meta"]
    done = {j for j, n in size.items()
            if n == (meta["n_test"] if name == "steer" else meta["n_pairs"].get(j[0], 0))}
    return [r for r in rows if job_of(name, r) in done], done


def finished_rows(path: Path, name: str, plan: dict) -> tuple[list[dict], set[tuple]]:
    """Return the rows of the whole runs in ``path`` and those runs; rewrite it if needed.

    A crash can leave a run's rows cut short (the last line, or the whole write): such a run
    is dropped from the file (it is made again), so every run in the file is whole and once.
    """
    rows = read_rows(path)
    keep, done = complete(rows, name, plan)
    if path.exists():
        data = path.read_bytes()
        if len(keep) != len(rows) or data.count(b"\n") != len(rows) or (
                data and not data.endswith(b"\n")):
            with atomic_path(path) as tmp:
                Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in keep),
                                     encoding="utf-8")
    return keep, done


def load_runs(run: RunFolder, name: str, key: str) -> tuple[Any, dict] | None:
    """Return ``(rows DataFrame, plan)`` of ``name`` (steer/patch) on ``key``, or None.

    None when the plan or any of its runs is missing (the stage did not run or finish).
    Rows come in the plan's order (as one uninterrupted run makes them: run by run, then
    item by item or pair by pair), so the Result is the same whether the stage ran at once
    or resumed.
    """
    import pandas as pd

    run = RunFolder(run)
    plan_path = run.intervene_plan(name, key)
    if not plan_path.exists():
        return None
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    rows, done = complete(read_rows(run.intervene_rows(name, key)), name, plan)
    jobs = [job_of(name, {"direction": d, "alpha": x, "layer": x}) for d, x in plan["jobs"]]
    if not set(jobs) <= done:
        return None
    order = {j: i for i, j in enumerate(jobs)}
    df = pd.DataFrame(rows)
    df["_job"] = [order.get(job_of(name, r), len(order)) for r in rows]
    by = ["_job"] if name == "steer" else ["_job", "pair"]
    df = df[df["_job"] < len(order)].sort_values(by, kind="stable").drop(columns="_job")
    return df.reset_index(drop=True), plan
