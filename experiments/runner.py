"""``mimicry run CONFIG`` and ``mimicry demo``: the whole pipeline, resumable, cost known first.

``run_experiment(cfg)`` prints the cost estimate, checks that every model it needs can be
had (before any stage runs), then runs generate → align → capture → reliance → probe →
report. Each stage delegates to its step's own resume (finished items are skipped) and, when
complete, leaves a marker ``RUN/.stages/<stage>.json`` holding the config hash: a second run
skips finished stages; a changed config, ``--force`` or a re-run upstream stage re-runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mimicry import __version__
from mimicry.errors import InputError, MimicryError
from mimicry.io import atomic_write_json

from .config import STAGES, ExperimentConfig, config_from_dict, load_config
from .cost import estimate_model, format_estimates
from .shapes import shape_for
from .support import check_fetchable, load_suites, model_source

CONFIGS = Path(__file__).resolve().parent / "configs"

# experiments/organism.toml as data, so `mimicry demo` works from an installed wheel too
# (a test checks that the two agree).
ORGANISM_CONFIG: dict[str, Any] = {
    "name": "organism",
    "suites": ["organism"],
    "seed": 0,
    "gpus": 1,
    "generation": {"backend": "hf", "max_new_tokens": 96, "batch_size": 16,
                   "temperature": 0.0, "seed": 0},
    "capture": {"backend": "hf", "sites": ["last_prompt", "think_end", "mean_prompt",
                                           "mean_reasoning", "mean_answer"],
                "entropy": "exact", "store_dtype": "float32", "batch_tokens": 4096,
                "cross": True},
    "probes": {"names": ["difficulty", "entropy", "similarity", "planning", "ablation",
                         "reliance", "compute", "steer", "patch", "verdict"],
               "options": {"steer": {"alphas": [-1.0, 1.0], "n_random": 20,
                                     "max_new_tokens": 64},
                           "patch": {"max_new_tokens": 64}}},
    "models": [
        {"key": k, "name": f"organism:{k}", "role": r, "dtype": "float32"}
        for k, r in [("teacher", "teacher"), ("base", "base"),
                     ("student_mastery", "student"), ("student_mimic_content", "student"),
                     ("student_mimic_length", "student")]
    ],
}


def organism_config(**overrides: Any) -> ExperimentConfig:
    """Return the organism experiment (``experiments/organism.toml``) with overrides."""
    path = CONFIGS / "organism.toml"
    if path.exists():
        return load_config(path, overrides)
    return config_from_dict({**ORGANISM_CONFIG, **overrides}, source="<organism>")


def parse_stages(text: str | None) -> list[str]:
    """Return the stage names in ``text`` (comma-separated), in pipeline order."""
    if not text:
        return list(STAGES)
    asked = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in asked if s not in STAGES]
    if bad:
        raise InputError(f"unknown stage(s) {bad}", fix=f"use some of {','.join(STAGES)}")
    return [s for s in STAGES if s in asked]


def _marker(run: Path, stage: str) -> Path:
    return run / ".stages" / f"{stage}.json"


def stage_is_done(run: Path, cfg: ExperimentConfig, stage: str) -> bool:
    """Return whether ``stage`` finished in ``run`` under the same config hash."""
    p = _marker(run, stage)
    if not p.exists():
        return False
    try:
        return json.loads(p.read_text()).get("config_hash") == cfg.stage_hash(stage)
    except json.JSONDecodeError:
        return False


def plan_stages(run: Path, cfg: ExperimentConfig, stages: list[str], force: bool) -> list[str]:
    """Return the asked stages that are not already done (all of them with ``force``)."""
    return [s for s in stages if force or not stage_is_done(run, cfg, s)]


def _needs_weights(cfg: ExperimentConfig, run: Path, todo: list[str]):
    """Yield the models whose weights the stages to run will load."""
    rel = {m.key for m in cfg.reliance_models()} if "reliance" in todo else set()
    for m in cfg.models:
        gen = ("generate" in todo and m.generate and not m.traces
               and cfg.generation.backend == "hf")
        cap = "capture" in todo and m.capture
        if gen or cap or (m.key in rel and not _known_without_reasoning(run, m.key)):
            yield m


def _known_without_reasoning(run: Path, key: str) -> bool:
    """Return whether ``key``'s traces exist and hold no reasoning (reliance skips it)."""
    from mimicry.traces import read_traces

    from .support import traces_path

    p = traces_path(run, key)
    if not p.exists():
        return False
    try:
        return not any((t.reasoning or "").strip() for t in read_traces(p))
    except MimicryError:
        return False


def _longest_answer(run: Path, key: str) -> int | None:
    """Return the longest answer (tokens) in the model's own traces in ``run``, if any."""
    path = run / "traces" / f"{key}.jsonl"
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


def dry_run_text(cfg: ExperimentConfig, run: Path, todo: list[str], suite) -> str:
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
    stages = stages or list(STAGES)
    run = Path(out or cfg.out)
    try:
        suite = load_suites(cfg)
    except MimicryError:
        if not dry_run:
            raise
        suite = None
    from mimicry.plots import set_model_roles

    set_model_roles({m.key: m.role for m in cfg.models})  # one colour per model, every figure
    todo = plan_stages(run, cfg, stages, force)
    print(dry_run_text(cfg, run, todo, suite), flush=True)
    skipped = [s for s in stages if s not in todo]
    if skipped:
        print(f"already done (config hash matches): {', '.join(skipped)}", flush=True)
    if dry_run:
        return {s: "planned" for s in todo}
    for m in _needs_weights(cfg, run, todo):  # fail before any stage runs
        check_fetchable(m, cfg.source or "the config")
    status: dict[str, Any] = {s: {"status": "skipped (done)"} for s in skipped}
    if not todo:
        print(f"nothing to do; outputs in {run} (--force re-runs)", flush=True)
        return status
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "config.json", {**cfg.to_dict(), "source": cfg.source,
                                            "mimicry_version": __version__})
    rerun_upstream = False
    t_all = time.time()
    for k, stage in enumerate(stages, start=1):
        if stage not in todo and not rerun_upstream:
            continue
        print(f"[{k}/{len(stages)}] {stage} ...", flush=True)
        t0 = time.time()
        from .stages import STAGE_FUNCS, write_status  # pandas, torch: not for --help

        res = STAGE_FUNCS[stage](cfg, run, suite)
        dt = time.time() - t0
        for n in res.notes:
            print(f"  note: {n}", flush=True)
        print(f"[{k}/{len(stages)}] {stage}: {res.status} ({dt:.1f} s)", flush=True)
        status[stage] = {"status": res.status, "notes": res.notes, "seconds": round(dt, 2)}
        write_status(run, {stage: status[stage]})
        if res.complete:
            atomic_write_json(_marker(run, stage), {
                "stage": stage, "config_hash": cfg.stage_hash(stage),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(dt, 2),
                "mimicry_version": __version__})
            rerun_upstream = rerun_upstream or stage != "report"
        else:
            _marker(run, stage).unlink(missing_ok=True)
    print(f"done in {time.time() - t_all:.1f} s; outputs in {run}", flush=True)
    from .headline import print_headline

    print_headline(run)
    return status


def print_norms_summary() -> None:
    """Print the bundled human norms: suites, items, norm source, reliability."""
    from .support import lookup

    summary, why = lookup("mimicry.tasks.registry", "suite_summary")
    if summary is None:
        print(f"human norms: not available yet ({why})")
        return
    df = summary()
    with _pd_wide():
        print("Bundled task suites and human norms:")
        print(df.to_string(index=False))


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
    print_norms_summary()
    over: dict[str, Any] = {"out": str(out)}
    if max_items:
        over["max_items_per_task"] = max_items
    cfg = organism_config(**over)
    _ensure_organism(cfg, Path(out))
    print(f"\nRunning the model organism end to end into {out} ...", flush=True)
    status = run_experiment(cfg, out=out, force=force)
    print(f"report: {Path(out) / 'report.md'} (and report.html)")
    return status


def _ensure_organism(cfg: ExperimentConfig, out: Path) -> None:
    """Point organism models at trained checkpoints; train them into ``out`` if none ship."""
    from .support import lookup

    ckpt, why = lookup("mimicry.organism", "checkpoint_path")
    if ckpt is None:
        return  # the model check before the stages says so
    missing = []
    for m in cfg.models:
        if m.is_organism and not m.local_path:
            try:
                ckpt(m.name.removeprefix("organism:"))
            except MimicryError:
                missing.append(m)
    if not missing:
        return
    train, why = lookup("mimicry.organism", "train")
    if train is None:
        return
    root = out / "organism-models"
    have = all((root / m.name.removeprefix("organism:") / "config.json").exists()
               for m in missing)
    if not have:
        print(f"organism checkpoints are not bundled: training them into {root} "
              "(deterministic, a few minutes on a CPU) ...", flush=True)
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
    run_experiment(cfg, stages=parse_stages(args.stages), dry_run=args.dry_run,
                   force=args.force)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    demo(args.out, max_items=args.max_items, force=args.force)
    return 0


def register(subparsers) -> None:
    """Add ``mimicry run`` and ``mimicry demo``."""
    p = subparsers.add_parser(
        "run", help="run an experiment config: generate, align, capture, reliance, probe, report",
        description="Run an experiment config (experiments/*.toml) stage by stage, "
                    "resumably; --dry-run prints the cost without downloading anything.")
    p.add_argument("config", help="TOML experiment config, e.g. experiments/qwen-1.5b.toml")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma-separated subset of {','.join(STAGES)} (default: all)")
    p.add_argument("--dry-run", action="store_true",
                   help="print tokens, GPU memory, disk and the stages to run; run nothing")
    p.add_argument("--out", help="run folder (default: the config's out)")
    p.add_argument("--force", action="store_true", help="re-run stages already marked done")
    p.add_argument("--max-items", type=int, default=None,
                   help="keep N items per task, evenly spaced over the suite (quick runs)")
    p.set_defaults(func=_cmd_run)
    if "demo" not in getattr(subparsers, "choices", {}):
        d = subparsers.add_parser(
            "demo", help="run the model organism end to end and write a report",
            description="Summarise the bundled human norms, then run the organism config "
                        "(generate, align, capture, reliance, probes, report) into --out.")
        d.add_argument("--out", default="cache/demo", help="output folder (cache/demo)")
        d.add_argument("--max-items", type=int, default=None,
                       help="keep N items per task, evenly spaced (quicker)")
        d.add_argument("--force", action="store_true", help="re-run finished stages")
        d.set_defaults(func=_cmd_demo)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
