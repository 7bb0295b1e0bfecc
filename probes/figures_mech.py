"""Figures of the computation, steering and patching probes (row M), in the house style.

Each model keeps its run colour and marker (:func:`mimicry.plots.model_style`); conditions —
decoded vs shuffled labels, the steering directions, the two patching directions — are told
apart by line style and marker (:data:`mimicry.plots.CONDITIONS`), never by a model colour.
Legends sit outside the data, layer axes have integer ticks, every axis states its unit, and
series that would lie on top of each other are offset a little, with a note saying so.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mimicry.plots import (
    condition_style,
    layer_axis,
    legend_outside,
    model_style,
    new_figure,
    note,
    panel_grid,
)

from .base import Result

TARGETS = {"answer": "the gold answer", "running_value": "the running value"}


def compute_figure(result: Result, layer: int | None = None) -> Figure:
    """Return decoding accuracy against the share of reasoning read, one line per model.

    ``layer``: the layer shown (default: each model's last). Solid: the probe on the true labels with
    its 95% CI band; dotted: the same probe refitted on shuffled labels (chance).
    """
    t = result.table
    last = t.groupby("model")["layer"].transform("max")
    t = t[t["layer"] == (last if layer is None else int(layer))]
    layers = sorted({int(v) for v in t["layer"]})
    where = f"layer {layers[0]}" if len(layers) == 1 else "each model's last layer"
    models = list(dict.fromkeys(t["model"]))
    fig = new_figure(6.4, 3.6)
    ax = fig.subplots()
    step = 0.012 if len(models) > 1 else 0.0
    for k, m in enumerate(models):
        st = model_style(m)
        d = t[t["model"] == m].sort_values("fraction")
        x = d["fraction"].to_numpy() + step * (k - (len(models) - 1) / 2)
        ax.plot(x, d["accuracy"], color=st.color, marker=st.marker, ms=4, label=m)
        ax.fill_between(x, d["ci_low"], d["ci_high"], color=st.color, alpha=0.15, lw=0)
        ax.plot(x, d["shuffled_mean"], color=st.color, ls=":", lw=1)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("share of the reasoning read (0 = prompt only, 1 = all of it)")
    ax.set_ylabel("decoding accuracy (proportion, out-of-fold)")
    target = TARGETS.get(str(result.meta.get("target")), str(result.meta.get("target")))
    ax.set_title(f"Is {target} decodable as the reasoning is read?\n({where})",
                 fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.4", ls=":", lw=1))
    labels.append("shuffled labels (chance)")
    legend_outside(ax, handles, labels)
    if step:
        note(fig, f"models shifted by ±{step:g} along x so that coinciding lines stay visible; "
                  "bands: 95% CI over items")
    return fig


def steer_figure(result: Result) -> Figure:
    """Return reasoning tokens and accuracy against α, one line style per direction.

    The grey band spans the random directions of the same norm; the coloured bands are the
    95% CIs of each direction (the model's run colour; directions differ by line style).
    """
    t = result.tables["curves"]
    model = result.meta.get("model", "")
    st = model_style(model)
    kinds = [x for x in dict.fromkeys(t["kind"]) if x != "random"]
    fig, axes = panel_grid(2, width=4.4, height=3.3)
    alphas = sorted(set(float(a) for a in t["alpha"]))
    step = 0.015 * (max(alphas) - min(alphas) or 1)
    for ax, key, lab, title in (
            (axes[0], "tokens", "reasoning tokens (mean per item)", "reasoning length"),
            (axes[1], "accuracy", "accuracy (proportion correct)", "accuracy")):
        rnd = t[t["kind"] == "random"]
        if len(rnd):
            band = rnd.groupby("alpha")[key].agg(["min", "max"])
            ax.fill_between(band.index, band["min"], band["max"], color="0.85", lw=0,
                            label=f"{rnd['direction'].nunique()} random directions (range)")
        for k, kind in enumerate(kinds):
            d = t[t["kind"] == kind].sort_values("alpha")
            x = d["alpha"].to_numpy() + step * (k - (len(kinds) - 1) / 2)
            ax.errorbar(x, d[key], yerr=[d[key] - d[f"{key}_ci_low"],
                                         d[f"{key}_ci_high"] - d[key]],
                        color=st.color, capsize=2, lw=1.3, ms=4, label=kind.replace("_", " "),
                        **condition_style(k))
        ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
        ax.set_xlabel("α (× the own hard − easy difference norm)")
        ax.set_ylabel(lab)
        ax.set_title(f"{title} under steering", fontsize=9)
    legend_outside(fig, where="right", title="direction (95% CI bars)")
    fig.suptitle(f"Steering {model} along effort directions at layer "
                 f"{result.meta.get('layer')} (held-out items, n = {result.meta.get('n_test')})",
                 fontsize=9.5)
    note(fig, f"directions shifted by ±{step:.2g} along α so that coinciding points stay "
              "visible")
    return fig


def patch_figure(result: Result) -> Figure:
    """Return the normalised patching effect per layer, one line style per direction.

    Effect = mean(patched − recipient) / mean(donor − recipient) reasoning tokens over pairs:
    1 (dotted) = the donor's length carried over in full, 0 = no effect; 95% CI bars.
    """
    t = result.table
    model = result.meta.get("model", "")
    st = model_style(model)
    fig = new_figure(6.4, 3.6)
    ax = fig.subplots()
    dirs = list(dict.fromkeys(t["direction"]))
    step = 0.08 if len(dirs) > 1 else 0.0
    for k, d in enumerate(dirs):
        g = t[t["direction"] == d].sort_values("layer")
        x = g["layer"].to_numpy(float) + step * (k - (len(dirs) - 1) / 2)
        ax.errorbar(x, g["effect"], yerr=[g["effect"] - g["ci_low"], g["ci_high"] - g["effect"]],
                    color=st.color, capsize=2, lw=1.3, ms=4,
                    label=d.replace("_to_", " → ").replace("_", " "), **condition_style(k))
    ax.axhline(0, color="k", lw=0.5)
    ax.axhline(1, color="0.5", lw=0.6, ls=":")
    layers = sorted({int(v) for v in t["layer"]})
    layer_axis(ax.xaxis, "patched layer (0 = embeddings)")
    ax.set_xticks(layers)
    lo = float(np.nanmin(t["ci_low"])) if len(t) else 0.0
    hi = float(np.nanmax(t["ci_high"])) if len(t) else 1.0
    ax.set_ylim(min(-0.1, lo - 0.05), max(1.1, hi + 0.05))
    ax.set_ylabel("effect (share of the donor − recipient\ngap in reasoning tokens)")
    ax.set_title(f"{model}: patching the last-prompt state between hard and easy items",
                 fontsize=9)
    legend_outside(ax, title="donor → recipient")
    if step:
        note(fig, f"directions shifted by ±{step / 2:g} layer so that coinciding points stay "
                  "visible; bars: 95% bootstrap CI over pairs")
    return fig
