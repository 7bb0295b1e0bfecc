"""The run report: ``report.md`` and a self-contained ``report.html`` from a run folder.

``write_report(run_dir)`` reads what the stages left (``status.json``, ``alignment/``,
``probes/``, ``caches/``) and writes both files. Sections: models, pipeline status (a stage
that did not run says so and why — no placeholder numbers), behaviour (alignment table,
log cost vs log RT, r̄ with CIs, Δr, negative transfer, inflation law, exclusions, and the
reliance probe: does the answer depend on what the reasoning says?), mechanism (each
activation probe's table and figure), the verdict. The HTML embeds every figure as
base64 PNG; the Markdown links the PNGs (PDFs sit beside them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from mimicry import __version__
from mimicry.io import atomic_write_text
from mimicry.io import read_csv_if_exists as _read_csv

from .layout import RunFolder
from .report_render import Block, _fmt, render_html, render_markdown

PROBE_TITLES = {
    "difficulty": "Difficulty probe: ρ by layer (cross-validated ridge, 95% CI)",
    "entropy": "Attention entropy by difficulty",
    "similarity": "Teacher × student layer similarity (debiased linear CKA)",
    "planning": "Planning: does the last prompt state predict the effort to come?",
    "ablation": "Ablation: own vs teacher vs content-scrambled traces",
    "reliance": "Reliance: accuracy after the model's own reasoning vs after it scrambled",
    "compute": "Computation: the gold answer decoded along the model's own reasoning",
    "steer": "Steering along effort directions: dose–response vs random directions",
    "patch": "Patching the plan state (last_prompt) between hard and easy items",
    "verdict": "Verdict",
}
BEHAVIOUR_PROBES = ("reliance",)  # shown under Behaviour: they read traces, not activations
RELIANCE_TEXT = (
    "Each model answers again after its own reasoning with the content scrambled (format, "
    "step markers and length kept). reliance = accuracy own − accuracy after the scrambled "
    "reasoning (paired over items; 95% paired bootstrap CI; McNemar p). Above 0: the answer "
    "depends on what the reasoning says; about 0: the reasoning does no work.")
ALIGN_COLS = ["model", "task", "n", "r", "ci_low", "ci_high", "p_perm", "spearman",
              "accuracy", "measure", "reliability", "r_disattenuated", "n_excluded"]


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


# ---------------------------------------------------------------- content


def _status_blocks(run: Path, stages: list[str]) -> list[Block]:
    st = _read_json(RunFolder(run).status)
    rows = []
    for s in stages:
        rec = st.get(s)
        if s == "report":
            rec = {"status": "done", "notes": []}
        if rec is None:
            rows.append({"stage": s, "status": "not run", "notes": ""})
        else:
            rows.append({"stage": s, "status": rec.get("status", "?"),
                         "notes": "; ".join(rec.get("notes") or [])})
    out: list[Block] = [("h", 2, "Pipeline status"), ("table", pd.DataFrame(rows))]
    missing = [r["stage"] for r in rows if r["status"] not in ("done", "skipped (done)")]
    if missing:
        out.append(("p", "Stages not complete: " + ", ".join(missing) + ". Their sections "
                    "below say what is missing; no numbers are shown for work that did not run."))
    return out


def _behaviour_blocks(run: Path, roles: dict[str, str], synthetic: bool = False) -> list[Block]:
    roles_cfg = roles
    from mimicry.alignment.figures import inflation_figure, negative_transfer_figure

    from .probing import save_figure

    ad = RunFolder(run).alignment
    out: list[Block] = [("h", 2, "Behaviour: does reasoning cost track human difficulty?")]
    table = _read_csv(ad / "alignment.csv")
    if table is None:
        out.append(("p", "**Not available yet**: the align stage has not produced "
                    "alignment/alignment.csv (see Pipeline status)."))
        return out
    summ = _read_json(ad / "summary.json")
    out.append(("p", "Cost = reasoning tokens. r = Pearson correlation of log cost with log "
                "human RT (ms) over the items of a task, or with the error rate where only "
                "accuracy norms exist (column measure); 95% percentile bootstrap CI over items, "
                f"permutation p. Seed {summ.get('seed', '?')}, {summ.get('n_boot', '?')} "
                "bootstrap resamples."
                + (" This suite's norms are synthetic (a difficulty parameter on the RT scale), "
                   "not human data." if synthetic else "")))
    cols = [c for c in ALIGN_COLS if c in table.columns]
    out.append(("table", table[cols]))
    out += _fig(ad / "scatter.png", "Log reasoning tokens vs log human difficulty, per task "
                "(one point per item; line: least-squares fit).")
    per = summ.get("per_model", {})
    if per:
        rows = [{"model": m, "role": roles.get(m) or _role_of(m, summ), "k tasks": d.get("k"),
                 "r̄": d.get("r_bar"), "ci_low": d.get("ci_low"), "ci_high": d.get("ci_high"),
                 "p": d.get("p"), "across-task r": (d.get("across_task") or {}).get("r")}
                for m, d in per.items()]
        out += [("h", 3, "Mean alignment r̄ per model (Fisher z, 95% CI over tasks)"),
                ("table", pd.DataFrame(rows))]
    out += _fig(ad / "forest.png", "r̄ per model with 95% CIs (teacher / student / base).")
    pairs = [(ad, summ)]
    pd_dir = RunFolder(run).alignment_pairs
    if pd_dir.exists():
        pairs += [(p, _read_json(p / "summary.json")) for p in sorted(pd_dir.iterdir())
                  if p.is_dir()]
    for d, s in pairs:
        roles = s.get("roles", {})
        tag = f" — {roles.get('student')}" if d is not ad else ""
        ref, who = roles.get("teacher", "teacher"), roles.get("student", "student")
        dr = _read_csv(d / "delta_r.csv")
        if dr is not None and len(dr):
            out += [("h", 3, f"Δr {ref} → {who} (paired bootstrap over shared items)"),
                    ("table", dr)]
            if roles_cfg.get(who) == "control":
                out.append(("p", f"{who} is a control trained after {ref}: here {ref} is the "
                            "reference, so Δr > 0 means the control restores alignment."))
            out += _fig(d / "delta_r.png", f"Δr = r({who}) − r({ref}) per task, 95% CI.")
        nt = _read_csv(d / "negative_transfer.csv")
        if nt is not None and len(nt):
            out += [("h", 3, f"Negative transfer: student vs base accuracy{tag}"), ("table", nt)]
            across = (s.get("negative_transfer") or {}).get("across_tasks")
            if across:
                out.append(("p", "Across tasks (paired test): " + _kv(across)))
            cap = "Accuracy per task, base vs student (95% Wilson CIs)."
            if (d / "negative_transfer.png").exists():  # drawn by the align stage
                out += _fig(d / "negative_transfer.png", cap)
            else:
                fig = negative_transfer_figure(nt, roles.get("student", "student"),
                                               roles.get("base", "base"))
                out += _save_and_fig(fig, d / "negative_transfer", save_figure, cap)
        inf = _read_csv(d / "inflation.csv")
        if inf is not None and len(inf):
            info = s.get("inflation") or {}
            out += [("h", 3, f"Inflation law: student vs base inverse efficiency{tag}"),
                    ("table", inf)]
            if info.get("fit_through_origin"):
                out.append(("p", "Slope through the origin: " + _kv(info["fit_through_origin"])))
            for dropped in info.get("dropped_tasks") or []:
                out.append(("p", f"Left out of the fit: {dropped.get('task')} "
                            f"({dropped.get('reason')})."))
            if inf.dropna(subset=["ie_base", "ie_student"]).empty:
                out.append(("p", "No task has a defined inverse efficiency for both models: "
                            "no inflation-law figure."))
            else:
                cap = ("Inverse efficiency (tokens per correct answer), one point per task, "
                       "with the fitted slope and its 95% CI.")
                if (d / "inflation.png").exists():  # drawn by the align stage
                    out += _fig(d / "inflation.png", cap)
                else:
                    fig = inflation_figure(inf, info.get("fit"), info.get("fit_through_origin"),
                                           student=roles.get("student", "student"),
                                           base=roles.get("base", "base"))
                    out += _save_and_fig(fig, d / "inflation", save_figure, cap)
    ex = summ.get("exclusions")
    if ex is not None:
        out += [("h", 3, "Exclusions"),
                ("p", f"{ex.get('total', 0)} exclusions. By reason: "
                 + (_kv(ex.get("by_reason", {})) or "none") + ". By model: "
                 + (_kv(ex.get("by_model", {})) or "none") + ". Details: alignment/"
                 "exclusions.csv.")]
    return out


def _role_of(model: str, summ: dict) -> str:
    return next((r for r, m in (summ.get("roles") or {}).items() if m == model), "")


def _kv(d: dict) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in d.items()
                     if not isinstance(v, dict | list))


def _fig(png: Path, caption: str) -> list[Block]:
    return [("fig", png, caption)] if png.exists() else []


def _save_and_fig(fig, stem: Path, saver, caption: str) -> list[Block]:
    import matplotlib.pyplot as plt

    saver(fig, stem)
    plt.close(fig)
    return _fig(stem.with_suffix(".png"), caption)


def _probe_notes(run: Path) -> dict[str, str]:
    """Return ``{probe: note}`` from the probe stage's notes in ``status.json``."""
    st = _read_json(RunFolder(run).status).get("probe", {})
    return {n.split(":", 1)[0]: n.split(":", 1)[1].strip() for n in st.get("notes") or []
            if ":" in n}


def _mechanism_blocks(run: Path, names: list[str]) -> list[Block]:
    notes = _probe_notes(run)
    out: list[Block] = [("h", 2, "Mechanism: probes on the cached activations")]
    caches = sorted(RunFolder(run).cache_paths().values())
    if caches:
        out.append(("table", pd.DataFrame(
            [{"cache": c.name, "size": f"{c.stat().st_size / 2**20:.1f} MiB"} for c in caches])))
    else:
        out.append(("p", "**No activation caches**: the capture stage has not produced any "
                    "(see Pipeline status)."))
    for name in [n for n in names if n not in ("verdict", *BEHAVIOUR_PROBES)]:
        out.append(("h", 3, PROBE_TITLES.get(name, name)))
        out += _probe_body(run, name, notes)
    return out


def _probe_body(run: Path, name: str, notes: dict[str, str]) -> list[Block]:
    t = _read_csv(RunFolder(run).probe_table(name))
    if t is None:
        why = notes.get(name, "the probe stage has not run")
        if why.startswith("failed"):
            return [("p", f"**Failed** — {why}. No numbers are shown for it.")]
        return [("p", f"**Not available yet**: {why}.")]
    out: list[Block] = []
    if notes.get(name):
        out.append(("p", f"Note: {notes[name]}."))
    calls = _read_csv(RunFolder(run).probe_table(name, "calls"))
    if calls is not None and len(calls):
        out += [("table", calls.drop(columns=["unit"], errors="ignore")),
                ("p", "Evidence behind each call (value with 95% CI, and what it reads as):")]
    extras = sorted(p.name for p in RunFolder(run).probes_dir.glob(f"{name}_*.csv")
                    if p.name != f"{name}_calls.csv")
    if "unit" in t.columns and any(c != "unit" and t[c].astype(str).equals(t["unit"].astype(str))
                                   for c in t.columns):
        t = t.drop(columns=["unit"])  # the same as another column (e.g. student)
    out.append(("table", t, RunFolder(run).probe_table(name)))
    if extras:
        rel = RunFolder(run).probes_dir.relative_to(run)
        out.append(("p", "More tables: " + ", ".join(f"{rel}/{e}" for e in extras) + "."))
    for png in sorted(RunFolder(run).probes_dir.glob(f"{name}__*.png")):
        unit = png.stem.split("__", 1)[1]
        out += _fig(png, f"{PROBE_TITLES.get(name, name)} — {unit}.")
    return out


def _summary_blocks(run: Path) -> list[Block]:
    """Return the headline: one row per model (r̄, Δr, reliance, call, what decided it)."""
    from .headline import headline

    df = headline(run)
    if not len(df) or (df.iloc[:, 2:] .replace("", "–") == "–").all().all():
        return []
    return [("h", 2, "Summary"), ("table", df),
            ("p", "r̄: Pearson r of log reasoning tokens with the difficulty norm, Fisher z over "
             "tasks (one task: its bootstrap CI). Δr = r(student) − r(teacher), paired "
             "bootstrap. reliance = accuracy after the model's own reasoning − after it "
             "scrambled. The call and the rules that decided it come from the verdict below.")]


def _suite_blocks(suite) -> list[Block]:
    rows = []
    for task in suite.tasks:
        its = [it for it in suite if it.task == task]
        rel = suite.reliability.get(task)
        rows.append({"task": task, "items": len(its), "norm": its[0].human.measure,
                     "reliability (split-half)": rel})
    note = ("Synthetic norms (the organism's difficulty parameter), not human data."
            if suite.synthetic else "Human norms: median RT of correct trials (ms) or, where "
            "only responses exist, the error rate; reliability = split-half Spearman–Brown.")
    return [("h", 2, f"Task suite: {suite.name}"), ("table", pd.DataFrame(rows)), ("p", note)]


def build_blocks(run: Path, cfg: dict | None = None, suite=None) -> list[Block]:
    """Return the report as a list of blocks (headings, paragraphs, tables, figures)."""
    cfg = cfg or _read_json(RunFolder(run).config)
    name = cfg.get("name", run.name)
    blocks: list[Block] = [("h", 1, f"mimicry report: {name}")]
    if cfg.get("description"):
        blocks.append(("p", " ".join(str(cfg["description"]).split())))
    blocks.append(("p", f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
                   f"mimicry {__version__}; config {cfg.get('source') or '?'}; seed "
                   f"{cfg.get('seed', '?')}; suites {', '.join(cfg.get('suites', []))}."))
    blocks += _summary_blocks(run)
    models = cfg.get("models", [])
    if models:
        blocks += [("h", 2, "Models"), ("table", pd.DataFrame(
            [{"key": m["key"], "role": m["role"], "name": m["name"], "label": m.get("label") or m["key"],
              "local_path": m.get("local_path") or ""} for m in models]))]
    roles = {m["key"]: m["role"] for m in models}
    from .config import STAGES

    if suite is not None:
        blocks += _suite_blocks(suite)
    blocks += _status_blocks(run, list(STAGES))
    blocks += _behaviour_blocks(run, roles, bool(getattr(suite, "synthetic", False)))
    names = (cfg.get("probes") or {}).get("names") or list(PROBE_TITLES)
    for name in [n for n in BEHAVIOUR_PROBES if n in names]:
        blocks += [("h", 3, PROBE_TITLES[name]), ("p", RELIANCE_TEXT)] \
            + _probe_body(run, name, _probe_notes(run))
    blocks += _mechanism_blocks(run, names)
    blocks.append(("h", 2, "Verdict: policy transfer or surface mimicry?"))
    blocks += _probe_body(run, "verdict", _probe_notes(run))
    return blocks


def write_report(run: str | Path, cfg=None, suite=None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``run``; return both paths.

    ``cfg``: the :class:`~experiments.config.ExperimentConfig` (default: ``RUN/config.json``);
    ``suite``: the task suite, for the suite table (left out when None).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    run = Path(run)
    cfg_dict = cfg.to_dict() | {"source": cfg.source} if cfg is not None else None
    blocks = build_blocks(run, cfg_dict, suite)
    title = blocks[0][2]
    md = atomic_write_text(RunFolder(run).report_md, render_markdown(blocks, run))
    page = atomic_write_text(RunFolder(run).report_html, render_html(blocks, title, run))
    return md, page
