"""Glue between the run folder and the ``probes`` package (looked up at call time).

``run_probe(name, cfg, run, suite)`` opens what probe ``name`` needs from the run folder
(caches, traces, alignment), calls ``probes.<name>.run(...)``, and writes
``RUN/probes/<name>.csv`` plus its figure (PNG + PDF). ``mimicry`` does not import ``probes``
at import time; a probe that is not installed is reported as not available.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import ExperimentConfig
from .io import atomic_path, atomic_write_json
from .runsupport import call, lookup


def cache_paths(run: Path) -> dict[str, Path]:
    """Return ``{cache stem: path}`` for every ``RUN/caches/*.h5``."""
    d = run / "caches"
    return {p.stem: p for p in sorted(d.glob("*.h5"))} if d.exists() else {}


def probe_done(run: Path, name: str, cfg: ExperimentConfig) -> bool:
    """Return whether ``probes/<name>.csv`` exists from a run with the same config hash."""
    meta = run / "probes" / f"{name}.json"
    if not (run / "probes" / f"{name}.csv").exists() or not meta.exists():
        return False
    try:
        return json.loads(meta.read_text()).get("config_hash") == cfg.stage_hash("probe")
    except json.JSONDecodeError:
        return False


def run_probe(name: str, cfg: ExperimentConfig, run: Path, suite) -> tuple[bool, str]:
    """Run probe ``name`` over the run folder; return ``(finished, note)``."""
    if probe_done(run, name, cfg):
        return True, ""
    fn, why = lookup(f"probes.{name}", "run")
    if fn is None:
        return False, why
    caches = cache_paths(run)
    if not caches and name != "verdict":
        return False, "no caches (capture did not run)"
    opts: dict[str, Any] = dict(cfg.probes.options.get(name, {}))
    res = call(fn, caches=caches, run_dir=run, suite=suite, roles=cfg.roles(),
               seed=cfg.seed, **opts)
    save_result(res, run / "probes", name, cfg)
    return True, ""


def save_result(res: Any, out: Path, name: str, cfg: ExperimentConfig) -> None:
    """Write ``res.table`` as ``<name>.csv`` and ``res.plot()`` as ``<name>.png/.pdf``."""
    out.mkdir(parents=True, exist_ok=True)
    table = getattr(res, "table", None)
    if table is None:
        raise TypeError(f"probe {name} returned no .table")
    with atomic_path(out / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False)
    plot = getattr(res, "plot", None)
    if callable(plot):
        import matplotlib.pyplot as plt

        fig = plot()
        if fig is not None:
            save_figure(fig, out / name)
            plt.close(fig)
    atomic_write_json(out / f"{name}.json", {"probe": name, "seed": cfg.seed,
                                             "config_hash": cfg.stage_hash("probe")})


def save_figure(fig, stem: Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` (150 dpi) and ``stem.pdf``; return the paths."""
    saver, _ = lookup("mimicry.plots", "save_figure")
    if saver is not None:
        out = saver(fig, stem)
        return list(out) if out else [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    paths = []
    for ext, kw in ((".png", {"dpi": 150}), (".pdf", {})):
        p = stem.with_suffix(ext)
        with atomic_path(p, suffix=ext) as tmp:
            fig.savefig(tmp, bbox_inches="tight", **kw)
        paths.append(p)
    return paths
