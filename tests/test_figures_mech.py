"""compute / steer / patch figures follow the house style (mimicry.plots): the model's run
colour, conditions by line style, legends outside the data, integer layer ticks, units."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from mimicry import plots
from probes.base import Result
from probes.figures_mech import compute_figure, patch_figure, steer_figure

matplotlib.use("Agg")


def _legend_outside(fig, ax) -> bool:
    fig.canvas.draw()
    legends = [*fig.legends, *([ax.get_legend()] if ax.get_legend() else [])]
    box = ax.get_window_extent()
    return bool(legends) and all(
        not box.overlaps(lg.get_window_extent()) for lg in legends)


def test_compute_figure_keeps_role_colours_and_each_models_last_layer():
    plots.set_model_roles({"T": "teacher", "S": "student"})
    rows = [{"model": m, "layer": L, "fraction": f, "accuracy": 0.5, "ci_low": 0.4,
             "ci_high": 0.6, "shuffled_mean": 0.1}
            for m, n in (("T", 3), ("S", 2)) for L in range(n + 1)
            for f in (0.0, 0.5, 1.0)]
    fig = compute_figure(Result("compute", pd.DataFrame(rows), meta={"target": "answer"}))
    ax = fig.axes[0]
    solid = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    assert [ln.get_label() for ln in solid] == ["T", "S"]   # both, each at its last layer
    assert [ln.get_color() for ln in solid] == [plots.model_color("T"), plots.model_color("S")]
    assert "(proportion" in ax.get_ylabel() and _legend_outside(fig, ax)


def _curves():
    rows = []
    for kind in ("own_meandiff", "own_ridge", "random"):
        for d in ((kind,) if kind != "random" else ("r0", "r1")):
            for a in (-1.0, 0.0, 1.0):
                rows.append({"kind": kind, "direction": d, "alpha": a, "tokens": 10 + a,
                             "tokens_ci_low": 9 + a, "tokens_ci_high": 11 + a,
                             "accuracy": 0.5, "accuracy_ci_low": 0.4, "accuracy_ci_high": 0.6})
    return pd.DataFrame(rows)


def test_steer_figure_directions_by_line_style_in_the_models_colour():
    plots.set_model_roles({"S": "student"})
    c = _curves()
    fig = steer_figure(Result("steer", c, tables={"curves": c},
                              meta={"model": "S", "layer": 1, "n_test": 10}))
    ax = fig.axes[0]
    lines = [c.lines[0] for c in ax.containers if c.get_label() in ("own meandiff", "own ridge")]
    assert {ln.get_color() for ln in lines} == {plots.model_color("S")}
    assert len({ln.get_linestyle() for ln in lines}) == 2
    assert list(ax.get_xticks()) == [-1.0, 0.0, 1.0]
    assert len(fig.axes) == 2 and _legend_outside(fig, ax)


def test_patch_figure_integer_layers_and_units():
    plots.set_model_roles({"S": "student"})
    t = pd.DataFrame([{"direction": d, "layer": L, "effect": 0.0, "ci_low": 0.0,
                       "ci_high": 0.0} for d in ("hard_to_easy", "easy_to_hard")
                      for L in range(3)])
    fig = patch_figure(Result("patch", t, meta={"model": "S"}))
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [0, 1, 2]
    assert np.allclose(ax.get_xticks(), np.round(ax.get_xticks()))
    assert "reasoning tokens" in ax.get_ylabel() and _legend_outside(fig, ax)
    # the two directions coincide at 0: shifted apart, and a note says so
    xs = [c.lines[0].get_xdata()[0] for c in ax.containers
          if c.get_label() in ("hard → easy", "easy → hard")]
    assert len(xs) == 2 and xs[0] != xs[1] and fig._supxlabel is not None
