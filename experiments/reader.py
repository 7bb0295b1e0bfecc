"""``experiments.load_run(DIR)``: a finished (or partial) run folder as Python objects.

>>> run = experiments.load_run("cache/demo")
>>> run                      # what is there: models, stages, caches, probes
>>> run.alignment.table      # DataFrame, one row per model × task
>>> run.caches["teacher"].resid(3, "last_prompt")   # [n_items, d_model], read lazily
>>> run.probes["difficulty"] # DataFrame
>>> run.results("difficulty")  # {unit: probes.Result}: tables and meta per model or pair
>>> run.verdict              # DataFrame (None if the verdict probe has not run)

Everything is read on first access; caches are opened only when asked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mimicry.errors import InputError
from mimicry.io import read_csv_if_exists as _csv

from .layout import RunFolder


class LazyCaches(Mapping):
    """``{cache stem: Cache}`` over ``RUN/caches/*.h5``; each file opened on first access."""

    def __init__(self, run: RunFolder) -> None:
        self._paths = RunFolder(run).cache_paths()
        self._open: dict[str, Any] = {}

    def __getitem__(self, key: str):
        if key not in self._paths:
            raise KeyError(f"{key!r}: no such cache; have {sorted(self._paths)}")
        if key not in self._open:
            from mimicry.store import open_cache

            self._open[key] = open_cache(self._paths[key])
        return self._open[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def path(self, key: str) -> Path:
        """Return the file behind cache ``key``."""
        return self._paths[key]

    def __repr__(self) -> str:
        return f"LazyCaches({sorted(self._paths)})"


class Run:
    """A run folder: ``.config``, ``.status``, ``.alignment``, ``.caches``, ``.probes``,
    ``.verdict``, ``.traces(key)``; see :func:`load_run`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.folder = RunFolder(path)
        self.config: dict[str, Any] = self._json(self.folder.config)
        self.status: dict[str, Any] = self._json(self.folder.status)
        self.caches = LazyCaches(self.folder)
        self._alignment: Any = None
        self._probes: dict[str, pd.DataFrame] | None = None

    @staticmethod
    def _json(p: Path) -> dict[str, Any]:
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    @property
    def name(self) -> str:
        """Return the experiment's name."""
        return self.config.get("name", self.path.name)

    @property
    def models(self) -> pd.DataFrame:
        """Return one row per model of the config (key, role, name)."""
        return pd.DataFrame([{k: m.get(k) for k in ("key", "role", "name", "label")}
                             for m in self.config.get("models", [])])

    @property
    def alignment(self):
        """Return the alignment (an ``AlignmentResult`` rebuilt from disk), or None."""
        if self._alignment is None:
            from mimicry.alignment import AlignmentResult

            self._alignment = AlignmentResult.load(self.folder.alignment)
        return self._alignment

    @property
    def probes(self) -> dict[str, pd.DataFrame]:
        """Return ``{probe name: main table}`` for every probe that ran (verdict included)."""
        if self._probes is None:
            f = self.folder
            self._probes = {n: _csv(f.probe_table(n)) for n in f.probe_names()
                            if f.probe_table(n).exists()}
        return self._probes

    @property
    def probe_tables(self) -> dict[str, pd.DataFrame]:
        """Return the probes' extra tables, ``{"<probe>_<table>": DataFrame}`` (e.g. heads)."""
        d = self.folder.probes_dir
        main = set(self.probes)
        return {p.stem: _csv(p) for p in sorted(d.glob("*_*.csv"))
                if p.stem.split("_", 1)[0] in main} if d.exists() else {}

    def results(self, name: str) -> dict[str, Any]:
        """Return ``{unit: probes.Result}`` of probe ``name`` as written (tables, meta per unit).

        The files are the one format of :mod:`probes.results` (``Result.save`` writes it too).
        """
        from probes.results import load_results

        return load_results(self.folder.probes_dir, name)

    @property
    def verdict(self) -> pd.DataFrame | None:
        """Return one row per teacher/student pair with the call, or None if it has not run.

        The evidence rows behind the calls are ``run.probes["verdict"]``.
        """
        p = self.folder.probe_table("verdict", "calls")
        if p.exists():
            return _csv(p).drop(columns=["unit"], errors="ignore")
        return self.probes.get("verdict")

    def traces(self, key: str) -> pd.DataFrame:
        """Return model ``key``'s traces as a DataFrame (one row per item)."""
        from mimicry.traces import read_traces, traces_frame

        p = self.folder.traces(key)
        if not p.exists():
            have = sorted(x.stem for x in self.folder.traces_dir.glob("*.jsonl"))
            raise KeyError(f"{key!r}: no traces; have {have}")
        return traces_frame(read_traces(p))

    @property
    def report(self) -> Path | None:
        """Return the path of report.md, or None if the report stage has not run."""
        p = self.folder.report_md
        return p if p.exists() else None

    def __repr__(self) -> str:
        lines = [f"Run({self.name!r}, {str(self.path)!r})"]
        models = self.config.get("models", [])
        if models:
            lines.append("  models:    " + ", ".join(f"{m['key']} ({m['role']})"
                                                     for m in models))
        if self.status:
            lines.append("  stages:    " + ", ".join(f"{s}={v.get('status')}"
                                                     for s, v in self.status.items()))
        a = self.alignment
        if a is not None:
            per = (a.summary or {}).get("per_model", {})
            rbar = ", ".join(f"{m} {d.get('r_bar'):.2f}" for m, d in per.items()
                             if isinstance(d.get("r_bar"), float))
            lines.append(f"  alignment: {len(a.table)} model×task rows"
                         + (f"; r̄ {rbar}" if rbar else ""))
        else:
            lines.append("  alignment: not run")
        lines.append(f"  caches:    {', '.join(self.caches) or 'none'}")
        lines.append(f"  probes:    {', '.join(k for k in self.probes if k != 'verdict') or 'none'}")
        if self.probe_tables:
            lines.append(f"  tables:    {', '.join(self.probe_tables)}")
        v = self.verdict
        if v is not None and len(v):
            call_col = next((c for c in ("call", "verdict") if c in v.columns), None)
            who = next((c for c in ("student", "model") if c in v.columns), None)
            if call_col and who:
                lines.append("  verdict:   " + "; ".join(
                    f"{r[who]}: {r[call_col]}" for _, r in v.iterrows()))
            else:
                lines.append(f"  verdict:   {len(v)} rows")
        else:
            lines.append("  verdict:   not run")
        return "\n".join(lines)


def load_run(path: str | Path) -> Run:
    """Return the :class:`Run` in folder ``path`` (written by ``mimicry run`` or ``demo``)."""
    p = Path(path)
    if not p.is_dir():
        raise InputError("run folder not found", file=p,
                         fix="pass the --out folder of mimicry run / mimicry demo")
    if not RunFolder(p).config.exists():
        raise InputError("not a run folder (no config.json)", file=p,
                         fix="pass the --out folder of mimicry run / mimicry demo")
    return Run(p)
