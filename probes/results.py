"""What a probe returns (:class:`Result`) and the ONE format probe results are written in.

``Result.save(dir)``, :func:`save_results` (``mimicry probe``, ``mimicry run``) and
:func:`load_results` (``experiments.load_run(RUN).results(name)``) share it. In a folder, per
probe ``NAME``::

    NAME.csv               the main table of every unit, stacked, a ``unit`` column first
    NAME_<table>.csv       each extra table (``tables``), stacked the same way
    NAME.json              {"probe": NAME, "units": [...], "seed": ..., <extra>, "meta": {unit: meta}}
    NAME__<unit>.png/.pdf  one figure per unit (when the probe draws one)

A *unit* is what one Result covers: a model, a teacher/student pair, ``all``. Paths come from
:func:`table_path`, :func:`meta_path` and :func:`figure_stem` (``experiments.layout`` uses
them too). Importing this module loads neither pandas nor matplotlib.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicry.errors import InputError
from mimicry.io import atomic_path, atomic_write_json, json_ready

UNIT = "unit"


@dataclass
class Result:
    """What a probe's ``run`` returns: ``.table`` (DataFrame), ``.tables``, ``.meta``, ``.plot()``."""

    name: str
    table: Any  # pandas.DataFrame
    tables: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    plotter: Callable[[Result], Any] | None = field(default=None, repr=False)
    arrays: dict[str, Any] = field(default_factory=dict, repr=False)

    def plot(self, **kwargs: Any):
        """Return the probe's figure (a ``matplotlib.figure.Figure``; never shown)."""
        if self.plotter is None:
            raise ValueError(f"{self.name}: no figure for this result")
        return self.plotter(self, **kwargs)

    def save(self, out_dir: str | Path, *, unit: str = "all", seed: int | None = None,
             figure: bool = True) -> list[Path]:
        """Write this Result as ``unit`` of probe ``name`` in the one format; return the paths.

        ``seed`` defaults to ``meta["seed"]``. Read it back with :func:`load_results`.
        """
        return save_results([(unit, self)], out_dir, self.name,
                            seed=self.meta.get("seed") if seed is None else seed, figure=figure)

    def __repr__(self) -> str:
        return f"Result({self.name!r}, {len(self.table)} rows, tables={list(self.tables)})"


def table_path(folder: str | Path, name: str, table: str | None = None) -> Path:
    """Return ``folder/<name>.csv`` or ``folder/<name>_<table>.csv``."""
    return Path(folder) / (f"{name}_{table}.csv" if table else f"{name}.csv")


def meta_path(folder: str | Path, name: str) -> Path:
    """Return ``folder/<name>.json``."""
    return Path(folder) / f"{name}.json"


def figure_stem(folder: str | Path, name: str, unit: str) -> Path:
    """Return ``folder/<name>__<unit>`` (``.png`` and ``.pdf`` are added by the saver)."""
    return Path(folder) / f"{name}__{unit}"


def _stack(parts: list[tuple[str, Any]]):
    import pandas as pd

    frames = []
    for u, df in parts:
        df = df.copy()
        if UNIT not in df.columns:
            df.insert(0, UNIT, u)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _write_csv(path: Path, df: Any) -> Path:
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    return path


def save_results(units: Sequence[tuple[str, Result]], out: str | Path, name: str, *,
                 seed: int | None = None, extra: dict[str, Any] | None = None,
                 figure: bool = True) -> list[Path]:
    """Write probe ``name``'s Results, one per unit, into ``out``; return the paths written.

    ``units``: ``[(unit, Result), ...]``; ``extra``: more keys for ``NAME.json`` (settings).
    Every file is written atomically; a figure is skipped for a Result that draws none.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    units = list(units)
    written = [_write_csv(table_path(out, name), _stack([(u, r.table) for u, r in units]))]
    extra_names = sorted({k for _, r in units for k in (getattr(r, "tables", None) or {})})
    for t in extra_names:
        written.append(_write_csv(table_path(out, name, t),
                                  _stack([(u, r.tables[t]) for u, r in units if t in r.tables])))
    if figure:
        import matplotlib.pyplot as plt

        from mimicry.plots import save_figure

        for u, r in units:
            try:
                fig = r.plot()
            except ValueError:  # the probe draws no figure for this result
                continue
            written += save_figure(fig, figure_stem(out, name, u), png_dpi=150, tight=True)
            plt.close(fig)
    meta = {u: getattr(r, "meta", {}) for u, r in units}
    written.append(atomic_write_json(meta_path(out, name), json_ready({
        "probe": name, "units": [u for u, _ in units], "seed": seed, **(extra or {}),
        "meta": meta})))
    return written


def load_results(folder: str | Path, name: str) -> dict[str, Result]:
    """Return ``{unit: Result}`` of probe ``name`` written by :func:`save_results` in ``folder``.

    Each Result's tables hold that unit's rows (``unit`` column kept); ``meta`` is the unit's
    meta; figures are not read (``plot()`` raises). Files of another format are an error.
    """
    import pandas as pd

    folder = Path(folder)
    mp = meta_path(folder, name)
    if not mp.exists() or not table_path(folder, name).exists():
        raise InputError(f"no results of probe {name!r}", file=folder,
                         fix=f"expected {table_path(folder, name).name} and {mp.name} "
                             "(written by Result.save, mimicry probe or mimicry run)")
    info = json.loads(mp.read_text(encoding="utf-8"))
    if not isinstance(info, dict) or "units" not in info or "meta" not in info:
        raise InputError("not a probe results file (no 'units' and 'meta')", file=mp,
                         fix="re-save the results with this version (Result.save)")
    main = pd.read_csv(table_path(folder, name))
    extra = {p.name[len(name) + 1:-len(".csv")]: pd.read_csv(p)
             for p in sorted(folder.glob(f"{name}_*.csv"))}

    def rows(df, u):
        return df[df[UNIT].astype(str) == str(u)].reset_index(drop=True) if UNIT in df else df

    return {u: Result(name, rows(main, u), {t: rows(df, u) for t, df in extra.items()},
                      dict(info["meta"].get(u, {})))
            for u in info["units"]}
