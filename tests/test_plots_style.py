"""House figure style: one colour per model role for the whole run, ≤ 2 panels per row."""

from __future__ import annotations

import matplotlib
import pandas as pd

from mimicry import plots

matplotlib.use("Agg")


def test_roles_fix_colours_for_the_run():
    plots.set_model_roles({"t": "teacher", "b": "base", "s1": "student", "s2": "student",
                           "c": "control"})
    assert plots.model_color("t") == plots.ROLE_COLOURS["teacher"]
    assert plots.model_color("b") == plots.ROLE_COLOURS["base"]
    students = [plots.model_color(m) for m in ("s1", "s2", "c")]
    assert students == plots.STUDENT_COLOURS[:3]
    # asking again, or in another order, never changes a colour
    assert [plots.model_color(m) for m in ("c", "s2", "s1")] == students[::-1]
    assert len({plots.model_style(m).marker for m in ("t", "b", "s1", "s2", "c")}) == 5


def test_unknown_names_get_a_role_from_the_name():
    plots.set_model_roles({})
    assert plots.model_style("my_teacher").role == "teacher"
    assert plots.model_color("Qwen-base") == plots.ROLE_COLOURS["base"]
    assert plots.model_style("distilled").role == "student"
    assert plots.model_color("distilled") == plots.STUDENT_COLOURS[0]


def test_panel_grid_has_at_most_two_columns():
    fig, axes = plots.panel_grid(5)
    assert len(axes) == 5
    cols = {round(ax.get_position().x0, 2) for ax in axes}
    assert len(cols) == 2


def test_alignment_figures_subset_and_delta_r_at_zero(tmp_path):
    from mimicry.alignment.figures import delta_r_figure

    d = pd.DataFrame({"task": ["a"], "delta_r": [0.0], "ci_low": [0.0], "ci_high": [0.0]})
    fig = delta_r_figure(d, {"teacher": "t", "student": "s"})
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= -0.1 and hi >= 0.1  # a readable axis, not an empty one around 0
    assert any("Δr = +0.000" in t.get_text() for t in fig.axes[0].texts)
    paths = plots.save_figure(fig, tmp_path / "d")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size for p in paths)


def test_negative_transfer_title_follows_the_direction():
    from mimicry.alignment.figures import negative_transfer_figure

    up = pd.DataFrame({"task": ["a"], "n": [50], "acc_base": [0.4], "acc_student": [0.8],
                       "p": [0.001], "q_bh": [0.001]})
    title = negative_transfer_figure(up, "s", "b").axes[0].get_title()
    assert title.startswith("No negative transfer")
    down = up.assign(acc_base=0.8, acc_student=0.4)
    assert negative_transfer_figure(down, "s", "b").axes[0].get_title().startswith(
        "Negative transfer")
