"""Figures and the one house style every figure of a run uses (never ``plt.show()``).

Where new figure code goes: a figure is one function returning a
:class:`matplotlib.figure.Figure` built with :func:`new_figure` (no pyplot state), coloured with
:func:`model_style` (models) or :data:`CONDITIONS` (conditions), legends placed with
:func:`legend_outside`, written with :func:`save_figure` (PNG + PDF, atomically).

The style, in one place:

- **A fixed colour (and marker) per model role for the whole run.** The teacher is blue, the
  base black, students and controls take vermillion, bluish green, reddish purple, orange,
  sky blue, in the order the run declares them (Okabe & Ito 2008, colour-blind safe). The
  runner declares the roles once (:func:`set_model_roles`); a name never declared gets its
  role from its name (``teacher``/``base``/``control`` in it) and the next free colour, kept
  for the rest of the process.
- **Conditions** (own / teacher's / scrambled traces, controls) are told apart by line style,
  marker and hatch (:data:`CONDITIONS`), never by a model's colour.
- At most two panels per row (:func:`panel_grid`); legends outside the data; integer layer
  ticks (:func:`layer_axis`); units on every axis; "synthetic RT" where the norms are synthetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from scipy import stats as sps

from .io import atomic_path

# Okabe & Ito (2008): orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple,
# black.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
           "#000000"]
ROLE_COLOURS = {"teacher": "#0072B2", "base": "#000000"}
ROLE_MARKERS = {"teacher": "o", "base": "s"}
# students and controls, in declaration order (yellow last: weak on white)
STUDENT_COLOURS = ["#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
                   "#882255", "#44AA99"]
STUDENT_MARKERS = ["^", "v", "D", "P", "X", "h", "<", ">"]
TASK_MARKERS = ["o", "s", "^", "v", "P", "X", "*", "h"]
# conditions: line style, marker, hatch, grey level (a separate channel from model colours)
CONDITIONS = [("-", "o", "", "0.15"), ("--", "s", "//", "0.45"), (":", "^", "..", "0.65"),
              ("-.", "D", "xx", "0.8")]
PANEL_W, PANEL_H = 4.6, 3.4  # inches per panel (150 dpi: 690 × 510 px)
MAX_COLS = 2


def rt_label(synthetic: bool = False) -> str:
    """Return the axis label of the RT norm: human RT, or synthetic RT for the organism."""
    return "synthetic RT (ms, log scale)" if synthetic else "human RT (ms, log scale)"


MEASURE_LABEL = {"log_rt_ms": rt_label(False), "error_rate": "human error rate (proportion)"}


@dataclass(frozen=True)
class ModelStyle:
    """A model's fixed look: ``role``, ``color``, ``marker``."""

    role: str
    color: str
    marker: str


_ROLES: dict[str, str] = {}
_STYLES: dict[str, ModelStyle] = {}


def guess_role(name: str) -> str:
    """Return the role a model name implies: teacher, base, control or (else) student."""
    low = str(name).lower()
    for role in ("teacher", "base", "control"):
        if low == role or low.startswith(role) or low.endswith(role):
            return role
    return "student"


def set_model_roles(roles: Mapping[str, str]) -> None:
    """Fix every model's colour for the run: ``{name: role}`` in the run's model order.

    Clears styles fixed before (a new run). Students and controls take
    :data:`STUDENT_COLOURS` in the given order.
    """
    _ROLES.clear()
    _STYLES.clear()
    for name, role in roles.items():
        _ROLES[str(name)] = str(role)
    for name in _ROLES:
        model_style(name)


def model_style(name: str) -> ModelStyle:
    """Return the fixed :class:`ModelStyle` of model ``name`` (assigned on first use)."""
    name = str(name)
    if name not in _STYLES:
        role = _ROLES.get(name) or guess_role(name)
        if role in ROLE_COLOURS and not any(s.role == role for s in _STYLES.values()):
            st = ModelStyle(role, ROLE_COLOURS[role], ROLE_MARKERS[role])
        else:
            k = sum(s.color in STUDENT_COLOURS for s in _STYLES.values())
            st = ModelStyle(role, STUDENT_COLOURS[k % len(STUDENT_COLOURS)],
                            STUDENT_MARKERS[k % len(STUDENT_MARKERS)])
        _STYLES[name] = st
    return _STYLES[name]


def model_color(name: str) -> str:
    """Return model ``name``'s fixed colour."""
    return model_style(name).color


def condition_style(i: int) -> dict[str, Any]:
    """Return matplotlib kwargs (``ls``, ``marker``) for the i-th condition."""
    ls, marker, _, _ = CONDITIONS[i % len(CONDITIONS)]
    return {"ls": ls, "marker": marker}


def color(i: int) -> str:
    """Return the i-th Okabe–Ito colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def new_figure(width: float = 6.4, height: float = 4.8) -> Figure:
    """Return an empty Figure with the house style (constrained layout, 150 dpi)."""
    fig = Figure(figsize=(width, height), dpi=150, layout="constrained")
    return fig


def panel_grid(n: int, *, width: float = PANEL_W, height: float = PANEL_H,
               ncol: int = MAX_COLS, sharey: bool = False) -> tuple[Figure, list]:
    """Return ``(figure, axes)``: ``n`` panels, at most ``ncol`` (2) per row; extras hidden."""
    n = max(1, n)
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    fig = new_figure(width * ncol, height * nrow)
    axes = list(np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False, sharey=sharey)).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def legend_outside(target, handles=None, labels=None, *, where: str | None = None,
                   title: str | None = None, ncol: int | None = None,
                   fontsize: float = 7) -> Any:
    """Place one legend outside the data: right of the axes, or below the axes/figure.

    ``target``: an Axes (legend right of it by default) or a Figure (one legend for all
    panels, below them by default, built from the given or collected handles).
    """
    is_fig = isinstance(target, Figure)
    where = where or ("below" if is_fig else "right")
    if handles is None:
        src = target.axes if isinstance(target, Figure) else [target]
        seen: dict[str, Any] = {}
        for ax in src:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if not lab.startswith("_"):
                    seen.setdefault(lab, h)
        handles, labels = list(seen.values()), list(seen)
    if not handles:
        return None
    if ncol is None:
        ncol = 1 if where == "right" else min(3 if is_fig else 2, len(handles))
    kw: dict[str, Any] = {"frameon": False, "fontsize": fontsize, "title": title,
                          "title_fontsize": fontsize + 0.5, "ncol": ncol}
    if is_fig:
        loc = "outside right upper" if where == "right" else "outside lower center"
        return target.legend(handles, labels, loc=loc, **kw)
    if where == "right":
        return target.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                             borderaxespad=0, **kw)
    return target.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.18),
                         **kw)


def layer_axis(axis, label: str = "layer (0 = embeddings)") -> None:
    """Integer ticks on a layer axis, with its label."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_label_text(label)


def note(fig: Figure, text: str) -> None:
    """Write a small footnote under the figure (e.g. how overlapping series were offset)."""
    fig.supxlabel(text, fontsize=6.5, color="0.35", x=0.0, ha="left")


def save_figure(fig: Figure, path_stem: str | Path, *, png_dpi: float | None = None,
                tight: bool = True) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (atomically); return both paths.

    ``png_dpi`` overrides the figure's dpi for the PNG; ``tight`` (default) crops to the drawn
    area, legends outside the axes included.
    """
    stem = Path(path_stem)
    out = []
    for ext in ("png", "pdf"):
        kw: dict = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
        if ext == "png" and png_dpi is not None:
            kw["dpi"] = png_dpi
        path = stem.with_name(stem.name + "." + ext)
        with atomic_path(path, suffix="." + ext) as tmp:
            fig.savefig(tmp, format=ext, **kw)
        out.append(path)
    return out


def fit_band(x, y, grid, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (fit, low, high) ``[len(grid)]``: OLS line and the t CI of the mean prediction."""
    x, y, grid = (np.asarray(a, dtype=float) for a in (x, y, grid))
    n = x.size
    xm = x.mean()
    sxx = float(((x - xm) ** 2).sum())
    b = float(((x - xm) * (y - y.mean())).sum()) / sxx
    a = float(y.mean() - b * xm)
    s = math.sqrt(float(((y - a - b * x) ** 2).sum()) / (n - 2))
    fit = a + b * grid
    half = sps.t.ppf(0.5 + level / 2, n - 2) * s * np.sqrt(1 / n + (grid - xm) ** 2 / sxx)
    return fit, fit - half, fit + half


def log_axis(axis, set_scale) -> None:
    """Log scale with plain-number major labels and unlabelled minor ticks (fast, no overlap)."""
    set_scale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
