"""RunFolder: every path of a run folder, in one place (nothing else spells them).

Layout of ``RUN/`` (written by ``mimicry run`` / ``mimicry demo``, read by ``load_run``)::

    config.json, status.json                  the config as run; each stage's status and notes
    .stages/<stage>.json                      done-markers (config hash), see runner.py
    traces/<key>.jsonl                        one per model (generated or imported)
    traces/<teacher>__scrambled.jsonl         content-scrambled teacher traces (ablation)
    traces/<key>__self_scrambled.jsonl        a model's own traces, reasoning scrambled (reliance)
    traces/<key>__after_scrambled.jsonl       its answers after them (reliance)
    traces/<key>__self_{empty,filler}.jsonl   its own traces, reasoning emptied / filler (control)
    traces/<key>__after_{empty,filler}.jsonl  its answers after them (reliance controls)
    traces/<key>__after_{empty,filler}.jsonl  answers after an empty / a filler reasoning
    alignment/                                alignment.csv, summary.json, figures (all models)
    alignment/pairs/<key>/                    the same for each further student / control pair
    caches/<key>.h5                           activations on the model's own traces
    caches/<key>__on_<teacher>.h5             a student reading the teacher's traces
    caches/<key>__scrambled.h5                ... and the scrambled teacher traces
    caches/<key>__tokens.h5                   per-token residuals along its reasoning (compute)
    intervene/<probe>__<key>.json             steer / patch plan: settings, layer, items (intervene)
    intervene/<probe>__<key>.jsonl            its runs' rows, appended run by run (resumable)
    probes/<name>.csv                         one table per probe (all units, ``unit`` column)
    probes/<name>_<table>.csv                 its extra tables (e.g. ``verdict_calls.csv``)
    probes/<name>__<unit>.png / .pdf          one figure per unit
    probes/<name>.json                        settings, seed, n, exclusions (``Result.meta``)
                                              (the probes/ files: probes.results' one format)
    report.md, report.html                    the report
    organism-models/<role>/                   organism checkpoints trained by the demo
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probes.results import figure_stem as probe_figure
from probes.results import meta_path as probe_meta
from probes.results import table_path as probe_table

CROSS = "__on_"          # cache of a student over another model's traces
SCRAMBLED = "__scrambled"
SELF_SCRAMBLED = "__self_scrambled"
AFTER_SCRAMBLED = "__after_scrambled"
TOKENS = "__tokens"
CONTROLS = ("empty", "filler")  # reliance controls (mimicry.traces.controls)


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder; ``RunFolder("cache/demo").cache("teacher")`` etc."""

    root: Path

    def __init__(self, root: str | Path | RunFolder) -> None:
        object.__setattr__(self, "root", Path(root))

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def _inside(self, *parts: str) -> Path:
        """Return ``root/parts...``; a model key that would leave the run folder is refused."""
        from .config_schema import inside_run

        return inside_run(self.root, *parts)

    # ------------------------------------------------------------ top level
    @property
    def config(self) -> Path:
        """Return ``RUN/config.json`` (the config as run)."""
        return self.root / "config.json"

    @property
    def status(self) -> Path:
        """Return ``RUN/status.json`` (each stage's status and notes)."""
        return self.root / "status.json"

    def marker(self, stage: str) -> Path:
        """Return the done-marker of ``stage``."""
        return self.root / ".stages" / f"{stage}.json"

    @property
    def report_md(self) -> Path:
        """Return ``RUN/report.md``."""
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        """Return ``RUN/report.html``."""
        return self.root / "report.html"

    @property
    def organism_models(self) -> Path:
        """Return the folder the demo trains organism checkpoints into when none ship."""
        return self.root / "organism-models"

    # ------------------------------------------------------------ traces
    @property
    def traces_dir(self) -> Path:
        """Return ``RUN/traces``."""
        return self.root / "traces"

    def traces(self, key: str) -> Path:
        """Return the traces file of model ``key``."""
        return self._inside("traces", f"{key}.jsonl")

    def scrambled_traces(self, teacher: str) -> Path:
        """Return the content-scrambled copy of the teacher's traces (ablation input)."""
        return self._inside("traces", f"{teacher}{SCRAMBLED}.jsonl")

    def self_scrambled(self, key: str) -> Path:
        """Return model ``key``'s own traces with the reasoning's content scrambled."""
        return self._inside("traces", f"{key}{SELF_SCRAMBLED}.jsonl")

    def after_scrambled(self, key: str) -> Path:
        """Return model ``key``'s answers after its own reasoning scrambled (reliance)."""
        return self._inside("traces", f"{key}{AFTER_SCRAMBLED}.jsonl")

    def self_control(self, key: str, control: str) -> Path:
        """Return model ``key``'s own traces with a control reasoning (``empty``/``filler``)."""
        if control not in CONTROLS:
            raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
        return self._inside("traces", f"{key}__self_{control}.jsonl")

    def after_control(self, key: str, control: str) -> Path:
        """Return model ``key``'s answers after a reliance control (``empty`` or ``filler``)."""
        if control not in CONTROLS:
            raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
        return self._inside("traces", f"{key}__after_{control}.jsonl")

    def model_traces(self) -> list[Path]:
        """Return the models' own traces files (not the scrambled or forced ones)."""
        d = self.traces_dir
        return sorted(p for p in d.glob("*.jsonl") if "__" not in p.stem) if d.exists() else []

    # ------------------------------------------------------------ alignment
    @property
    def alignment(self) -> Path:
        """Return ``RUN/alignment`` (all models with the config's roles)."""
        return self.root / "alignment"

    @property
    def alignment_pairs(self) -> Path:
        """Return ``RUN/alignment/pairs`` (one folder per further student or control)."""
        return self.alignment / "pairs"

    def alignment_pair(self, key: str) -> Path:
        """Return the alignment folder of the pair teacher (or reference) / ``key``."""
        return self._inside("alignment", "pairs", key)

    # ------------------------------------------------------------ caches
    @property
    def caches_dir(self) -> Path:
        """Return ``RUN/caches``."""
        return self.root / "caches"

    def cache(self, stem: str) -> Path:
        """Return the cache file named ``stem`` (``key``, ``key__on_T``, ``key__scrambled``)."""
        return self._inside("caches", f"{stem}.h5")

    @staticmethod
    def cross_stem(key: str, teacher: str) -> str:
        """Return the cache stem of ``key`` reading ``teacher``'s traces."""
        return f"{key}{CROSS}{teacher}"

    @staticmethod
    def scrambled_stem(key: str) -> str:
        """Return the cache stem of ``key`` reading the scrambled teacher traces."""
        return f"{key}{SCRAMBLED}"

    @staticmethod
    def tokens_stem(key: str) -> str:
        """Return the cache stem of ``key``'s per-token residuals along its reasoning (compute)."""
        return f"{key}{TOKENS}"

    def cache_paths(self) -> dict[str, Path]:
        """Return ``{cache stem: path}`` for every cache in the run."""
        d = self.caches_dir
        return {p.stem: p for p in sorted(d.glob("*.h5"))} if d.exists() else {}

    # ------------------------------------------------------------ intervene
    @property
    def intervene_dir(self) -> Path:
        """Return ``RUN/intervene`` (steering and patching runs, written by the intervene stage)."""
        return self.root / "intervene"

    def intervene_plan(self, probe: str, key: str) -> Path:
        """Return the plan of ``probe`` (``steer``/``patch``) on model ``key``."""
        return self._inside("intervene", f"{probe}__{key}.json")

    def intervene_rows(self, probe: str, key: str) -> Path:
        """Return the rows (JSON lines) of ``probe``'s runs on model ``key``."""
        return self._inside("intervene", f"{probe}__{key}.jsonl")

    # ------------------------------------------------------------ probes
    @property
    def probes_dir(self) -> Path:
        """Return ``RUN/probes``."""
        return self.root / "probes"

    def probe_table(self, name: str, table: str | None = None) -> Path:
        """Return probe ``name``'s main table, or its extra ``table`` (``verdict``, ``calls``)."""
        return probe_table(self.probes_dir, name, table)

    def probe_meta(self, name: str) -> Path:
        """Return probe ``name``'s settings/meta JSON."""
        return probe_meta(self.probes_dir, name)

    def probe_figure(self, name: str, unit: str) -> Path:
        """Return the figure stem (no suffix) of probe ``name`` for ``unit``."""
        return probe_figure(self.probes_dir, name, unit)

    def probe_names(self) -> list[str]:
        """Return the probes that wrote results (their meta JSON exists)."""
        d = self.probes_dir
        return sorted(p.stem for p in d.glob("*.json")) if d.exists() else []
