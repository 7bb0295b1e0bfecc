"""``mimicry run CONFIG`` and ``mimicry demo``: the whole pipeline, resumable, cost known first.

``run_experiment(cfg)`` logs the cost estimate, checks that every model it needs can be
had (before any stage runs), then runs generate → align → capture → reliance → intervene →
probe → report. Each stage delegates to its step's own resume (finished items are skipped) and, when
complete, leaves a marker ``RUN/.stages/<stage>.json`` holding the config hash: a second run
skips finished stages; a changed config, ``--force`` or a re-run upstream stage re-runs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from mimicry import __version__
from mimicry.errors import InputError, MimicryError
from mimicry.io import atomic_write_json
from mimicry.locking import writer_lock
from mimicry.preflight import check_output_dir

from .config import STAGES, ExperimentConfig, load_config
from .cost import estimate_model, format_estimates
from .layout import RunFolder
from .shapes import shape_for
from .support import check_fetchable, load_suites, model_source

CONFIGS = Path(__file__).resolve().parent / "configs"  # package data: works from a wheel
log = logging.getLogger(__name__)


def stage_functions() -> dict[str, Any]:
    """Return ``{stage: function(cfg, run, suite) -> StageResult}`` (imported on first use)."""
    from . import stages
    from .stage_intervene import stage_intervene
    from .stage_reliance import stage_reliance

    return {"generate": stages.stage_generate, "align": stages.stage_align,
            "capture": stages.stage_capture, "reliance": stage_reliance,
            "intervene": stage_intervene, "probe": stages.stage_probe,
            "report": stages.stage_report}


def organism_config(**overrides: Any) -> ExperimentConfig:
    """Return the organism experiment (``experiments/configs/organism.toml``) with overrides."""
    return load_config(CONFIGS / "organism.toml", overrides)


def parse_stages(text: str | None) -> list[str]:
    """Return the stage names in ``text`` (comma-separated), in pipeline order."""
    if not text:
        return list(STAGES)
    asked = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in asked if s not in STAGES]
    if bad:
        raise InputError(f"unknown stage(s) {bad}", fix=f"use some of {','.join(STAGES)}")
    return [s for s in STAGES if s in asked]


def stage_is_done(run: RunFolder, cfg: ExperimentConfig, stage: str) -> bool:
    """Return whether ``stage`` finished in ``run`` under the same config hash."""
    p = RunFolder(run).marker(stage)
    if not p.exists():
        return False
    try:
        return json.loads(p.read_text()).get("config_hash") == cfg.stage_hash(stage)
    except json.JSONDecodeError:
        return False


def plan_stages(run: RunFolder, cfg: ExperimentConfig, stages: list[str], force: bool) -> list[str]:
    """Return the asked stages that are not already done (all of them with ``force``)."""
    return [s for s in stages if force or not stage_is_done(run, cfg, s)]


def _needs_weights(cfg: ExperimentConfig, run: RunFolder, todo: list[str]):
    """Yield the models whose weights the stages to run will load."""
    rel = {m.key for m in cfg.reliance_models()} if "reliance" in todo else set()
    itv = _intervene_keys(cfg) if "intervene" in todo else set()
    for m in cfg.models:
        gen = ("generate" in todo and m.generate and not m.traces
               and cfg.generation.backend == "hf")
        cap = "capture" in todo and m.capture
        if gen or cap or m.key in itv or (m.key in rel
                                         and not _known_without_reasoning(run, m.key)):
            yield m


def _intervene_keys(cfg: ExperimentConfig) -> set[str]:
    """Return the models whose weights the intervene stage loads (if they have traces)."""
    from .intervene_runs import wanted

    names = wanted(cfg)
    keep = set(cfg.intervene.models)
    hf = cfg.generation.backend == "hf"
    return {m.key for m in cfg.models
            if (m.local_path or m.capture or (m.generate and not m.traces and hf))
            and ("compute" in names and m.role in ("teacher", "student", "control"))
            or ({"steer", "patch"} & set(names) and m.role in ("student", "control")
                and (not keep or m.key in keep))}


def _known_without_reasoning(run: RunFolder, key: str) -> bool:
    """Return whether ``key``'s traces exist and hold no reasoning (reliance skips it)."""
    from mimicry.traces import read_traces

    p = RunFolder(run).traces(key)
    if not p.exists():
        return False
    try:
        return not any((t.reasoning or "").strip() for t in read_traces(p))
    except MimicryError:
        return False


def _longest_answer(run: RunFolder, key: str) -> int | None:
    """Return the longest answer (tokens) in the model's own traces in ``run``, if any."""
    path = RunFolder(run).traces(key)
    if not path.is_file():
        return None
    longest = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                longest = max(longest, int(json.loads(line).get("answer_tokens") or 0))
            except (ValueError, TypeError, AttributeError):
                continue
    return longest or None


def dry_run_text(cfg: ExperimentConfig, run: RunFolder, todo: list[str], suite) -> str:
    """Return the cost estimate and plan, computed from shapes (nothing is downloaded)."""
    n_items = len(suite) if suite is not None else 0
    prompt_tokens = 0
    if suite is not None and n_items:
        # ≈ 3 characters per token for these prompts, plus the chat template's ~32 tokens.
        prompt_tokens = max(len(it.prompt or "") for it in suite) // 3 + 32
    ests = []
    for m in cfg.models:
        why = ""
        try:
            local = m.local_path or (model_source(m) if m.is_organism else None)
            shape = shape_for(m.name, local)
        except MimicryError as e:
            shape, why = None, e.render()
        est = estimate_model(cfg, m, shape, n_items, prompt_tokens,
                             longest_answer=_longest_answer(run, m.key))
        if why:
            est.warnings = [why]
        ests.append(est)
    text = format_estimates(cfg, ests, n_items, todo)
    if suite is None:
        text += "\n  ! the task suites could not be loaded: item counts are unknown (0)"
    return text


def run_experiment(cfg: ExperimentConfig, *, stages: list[str] | None = None,
                   out: str | Path | None = None, dry_run: bool = False,
                   force: bool = False) -> dict[str, Any]:
    """Run (or, with ``dry_run``, only plan) the experiment; return each stage's status."""
    from .probing import probe_options  # pandas: not for --help

    stages = stages or list(STAGES)
    run = RunFolder(out or cfg.out)
    for name in {*cfg.probes.names, *cfg.probes.options}:  # unknown probes or options: an
        probe_options(name, cfg.probes.options.get(name),  # error before any stage runs
                      where=f"{cfg.source or 'the config'}: [probes]")
    try:
        suite = load_suites(cfg)
    except MimicryError:
        if not dry_run:
            raise
        suite = None
    from mimicry.plots import set_model_roles

    set_model_roles({m.key: m.role for m in cfg.models})  # one colour per model, every figure
    todo = plan_stages(run, cfg, stages, force)
    log.info("%s", dry_run_text(cfg, run, todo, suite))
    skipped = [s for s in stages if s not in todo]
    if skipped:
        log.info("already done (config hash matches): %s", ", ".join(skipped))
    if dry_run:
        return {s: "planned" for s in todo}
    check_output_dir(run.root)
    for m in _needs_weights(cfg, run, todo):  # fail before any stage runs
        check_fetchable(m, cfg.source or "the config")
    status: dict[str, Any] = {s: {"status": "skipped (done)"} for s in skipped}
    if not todo:
        log.info("nothing to do; outputs in %s (--force re-runs)", run)
        return status
    run.root.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(run.root, "run"):  # one writer per run folder; refused before any write
        return _run_stages(cfg, run, suite, stages, todo, status)


def _run_stages(cfg: ExperimentConfig, run: RunFolder, suite, stages: list[str],
                todo: list[str], status: dict[str, Any]) -> dict[str, Any]:
    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.config, {**cfg.to_dict(), "source": cfg.source,
                                   "mimicry_version": __version__})  # inputs.RUN_RECORD_KEYS
    rerun_upstream = False
    t_all = time.time()
    for k, stage in enumerate(stages, start=1):
        if stage not in todo and not rerun_upstream:
            continue
        log.info("[%d/%d] %s ...", k, len(stages), stage)
        t0 = time.time()
        from .stages import write_status  # pandas, torch: not for --help

        res = stage_functions()[stage](cfg, run, suite)
        dt = time.time() - t0
        for n in res.notes:
            log.info("  note: %s", n)
        log.info("[%d/%d] %s: %s (%.1f s)", k, len(stages), stage, res.status, dt)
        status[stage] = {"status": res.status, "notes": res.notes, "seconds": round(dt, 2)}
        write_status(run, {stage: status[stage]})
        if res.complete:
            atomic_write_json(run.marker(stage), {
                "stage": stage, "config_hash": cfg.stage_hash(stage),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(dt, 2),
                "mimicry_version": __version__})
            rerun_upstream = rerun_upstream or stage != "report"
        else:
            run.marker(stage).unlink(missing_ok=True)
    log.info("done in %.1f s; outputs in %s", time.time() - t_all, run)
    return status


def norms_summary_text() -> str:
    """Return the bundled human norms as text: suites, items, norm source, reliability."""
    from mimicry.tasks.registry import suite_summary

    with _pd_wide():
        return "Bundled task suites and human norms:\n" + suite_summary().to_string(index=False)


def print_norms_summary() -> None:
    """Print :func:`norms_summary_text` (what ``mimicry demo`` shows first)."""
    print(norms_summary_text())


class _pd_wide:
    def __enter__(self):
        import pandas as pd

        self._ctx = pd.option_context("display.width", 160, "display.max_columns", 20,
                                      "display.max_colwidth", 40)
        return self._ctx.__enter__()

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def demo(out: str | Path = "cache/demo", *, max_items: int | None = None,
         force: bool = False) -> dict[str, Any]:
    """Run the organism end to end into ``out`` (report.md + report.html); return statuses."""
    check_output_dir(Path(out))
    log.info("%s", norms_summary_text())
    over: dict[str, Any] = {"out": str(out)}
    if max_items:
        over["max_items_per_task"] = max_items
    cfg = organism_config(**over)
    _ensure_organism(cfg, RunFolder(out))
    log.info("\nRunning the model organism end to end into %s ...", out)
    status = run_experiment(cfg, out=out, force=force)
    log.info("report: %s (and report.html)", RunFolder(out).report_md)
    return status


def _ensure_organism(cfg: ExperimentConfig, out: RunFolder) -> None:
    """Point organism models at trained checkpoints; train them into ``out`` if none ship."""
    from mimicry.organism import checkpoint_path as ckpt
    from mimicry.organism import train

    missing = []
    for m in cfg.models:
        if m.is_organism and not m.local_path:
            try:
                ckpt(m.name.removeprefix("organism:"))
            except MimicryError:
                missing.append(m)
    if not missing:
        return
    root = out.organism_models
    have = all((root / m.name.removeprefix("organism:") / "config.json").exists()
               for m in missing)
    if not have:
        log.info("organism checkpoints are not bundled: training them into %s "
                 "(deterministic, a few minutes on a CPU) ...", root)
        train(root, seed=cfg.seed)
    for m in missing:
        m.local_path = str(root / m.name.removeprefix("organism:"))


def _cmd_run(args: argparse.Namespace) -> int:
    over: dict[str, Any] = {}
    if args.max_items:
        over["max_items_per_task"] = args.max_items
    cfg = load_config(args.config, over)
    if args.out:
        cfg.out = args.out
    status = run_experiment(cfg, stages=parse_stages(args.stages), dry_run=args.dry_run,
                            force=args.force)
    if not args.dry_run:
        _show_headline(cfg.out, status)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    _show_headline(args.out, demo(args.out, max_items=args.max_items, force=args.force))
    return 0


def _show_headline(out: str | Path, status: dict[str, Any]) -> None:
    """Print the headline table (r̄, Δr, reliance, call per model) when stages ran."""
    if any(isinstance(v, dict) and v.get("status") != "skipped (done)" for v in status.values()):
        from .headline import print_headline

        print_headline(RunFolder(out).root)


def register(subparsers) -> None:
    """Add ``mimicry run`` and ``mimicry demo``."""
    p = subparsers.add_parser(
        "run", help="run an experiment config: generate, align, capture, reliance, intervene, probe, "
             "report",
        description="Run an experiment config (experiments/configs/*.toml) stage by stage, "
                    "resumably; --dry-run prints the cost without downloading anything.")
    p.add_argument("config", help="TOML experiment config, e.g. experiments/configs/qwen-1.5b.toml")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma-separated subset of {','.join(STAGES)} (default: all)")
    p.add_argument("--dry-run", action="store_true",
                   help="print tokens, GPU memory, disk and the stages to run; run nothing")
    p.add_argument("--out", help="run folder (default: the config's out)")
    p.add_argument("--force", action="store_true", help="re-run stages already marked done")
    p.add_argument("--max-items", type=int, default=None,
                   help="keep N items per task, evenly spaced over the suite (quick runs)")
    p.set_defaults(func=_cmd_run)
    d = subparsers.add_parser(
        "demo", help="run the model organism end to end and write a report",
        description="Summarise the bundled human norms, then run the organism config "
                    "(generate, align, capture, reliance, intervene, probes, report) into --out.")
    d.add_argument("--out", default="cache/demo", help="output folder (cache/demo)")
    d.add_argument("--max-items", type=int, default=None,
                   help="keep N items per task, evenly spaced (quicker)")
    d.add_argument("--force", action="store_true", help="re-run finished stages")
    d.set_defaults(func=_cmd_demo)

