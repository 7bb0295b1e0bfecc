"""Experiment configs: one dataclass per job, every field documented, loaded from TOML.

An experiment (``experiments/qwen-1.5b.toml``) names the models of one family with their
roles, the task suites, and the settings of each stage (those dataclasses live in
:mod:`experiments.config_stages` and are re-exported here). ``load_config(path)`` validates it
(unknown keys, bad values: one line naming the file, the key and the fix) and returns an
:class:`ExperimentConfig`; :mod:`experiments.cost` prints what it will cost before it runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicry.errors import InputError
from mimicry.models import ORGANISM_PREFIX

from .config_stages import (
    RELIANCE_CONTROLS,
    SCRAMBLE_MODES,
    SITES,
    AlignStageConfig,
    CaptureStageConfig,
    GenerationConfig,
    InterveneStageConfig,
    ProbeStageConfig,
    RelianceStageConfig,
)

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROLES = ("teacher", "student", "base", "control")
STAGES = ("generate", "align", "capture", "reliance", "intervene", "probe", "report")
RELIANCE_ROLES = ("teacher", "student", "control")


@dataclass
class ModelConfig:
    """One model of the family and its part in the comparison.

    Fields:
        key: short label used for file names and tables (``student`` → ``traces/student.jsonl``).
        name: Hugging Face hub id, exactly as on the hub (``Qwen/Qwen2.5-Math-1.5B``), or
            ``organism:ROLE`` for a bundled organism checkpoint.
        role: ``teacher``, ``student``, ``base`` or ``control`` (e.g. an RL model trained
            after the student).
        label: how figures and tables name it (defaults to the last part of ``name``).
        local_path: a local ``save_pretrained`` folder to load instead of the hub (for
            machines without hub access: ``huggingface-cli download NAME --local-dir DIR``).
        revision: hub revision (commit or tag) to pin.
        dtype: weights dtype for generation and capture (``bfloat16`` for real models).
        device_map: ``"auto"`` spreads a model over every visible GPU (32B/70B); ``None``
            keeps it on one device.
        chat_template: ``"auto"`` (the tokenizer's), ``"none"`` (raw prompt) or a Jinja string.
        generate: run this model in the generate stage; ``False`` when its traces come from
            elsewhere (see ``traces``).
        traces: a JSONL of traces made elsewhere (an API run of DeepSeek-R1, say) imported in
            place of generating; ``mimicry traces import`` rows.
        max_new_tokens: per-model override of ``[generation] max_new_tokens`` (bases with a 4k
            context need less than a reasoning model).
        capture: capture this model's activations in the capture stage.
    """

    key: str
    name: str
    role: str
    label: str = ""
    local_path: str | None = None
    revision: str | None = None
    dtype: str = "bfloat16"
    device_map: str | None = None
    chat_template: str = "auto"
    generate: bool = True
    traces: str | None = None
    max_new_tokens: int | None = None
    capture: bool = True

    @property
    def display(self) -> str:
        """Return the label used in figures (``label`` or the name's last part)."""
        return self.label or self.name.split("/")[-1].removeprefix(ORGANISM_PREFIX)

    @property
    def is_organism(self) -> bool:
        """Return whether the name points at a bundled organism checkpoint."""
        return self.name.startswith(ORGANISM_PREFIX)


@dataclass
class ExperimentConfig:
    """One model family's experiment: models, suites, stage settings and outputs.

    Fields:
        name: the experiment's name (output folder name, report title).
        description: one paragraph on what the family tests.
        out: output folder (``cache/runs/<name>`` by default); ``--out`` overrides it.
        suites: task suites (built-in names or item files) whose items every model runs.
        max_items_per_task: keep N items of each task, evenly spaced over the suite (quick
            runs, tests);
            ``None`` keeps all.
        seed: seed for alignment bootstraps, probes and scrambling (recorded in outputs).
        gpus: GPUs the job will use (for the per-GPU memory estimate with device_map auto).
        gpu_memory_gb: memory of one GPU in GB (10⁹ bytes; 80 for an A100/H100 80GB); the
            dry run warns when a model's per-GPU estimate does not fit, with the fix.
        models: the family (see :class:`ModelConfig`).
        generation / alignment / capture / reliance / intervene / probes: stage settings.
        source: the TOML file it came from (set by ``load_config``).
    """

    name: str
    models: list[ModelConfig]
    description: str = ""
    out: str = ""
    suites: list[str] = field(default_factory=lambda: ["spatial", "relational", "syllogisms"])
    max_items_per_task: int | None = None
    seed: int = 0
    gpus: int = 1
    gpu_memory_gb: float = 80.0
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    alignment: AlignStageConfig = field(default_factory=AlignStageConfig)
    capture: CaptureStageConfig = field(default_factory=CaptureStageConfig)
    reliance: RelianceStageConfig = field(default_factory=RelianceStageConfig)
    intervene: InterveneStageConfig = field(default_factory=InterveneStageConfig)
    probes: ProbeStageConfig = field(default_factory=ProbeStageConfig)
    source: str = ""

    def model(self, key: str) -> ModelConfig:
        """Return the model with this key."""
        for m in self.models:
            if m.key == key:
                return m
        raise KeyError(key)

    def roles(self) -> dict[str, str]:
        """Return ``{role: key}`` for teacher/student/base (the first model of each role)."""
        out: dict[str, str] = {}
        for m in self.models:
            if m.role in ("teacher", "student", "base") and m.role not in out:
                out[m.role] = m.key
        return out

    def reliance_models(self) -> list[ModelConfig]:
        """Return the models whose weights the reliance stage loads (config order).

        Teachers, students and controls that have weights here: a ``local_path``, or weights
        the run loads anyway (captured, or generated with the ``hf`` backend). A model whose
        traces were only imported (an API run) is left out; the stage notes it.
        """
        hf = self.generation.backend == "hf"
        return [m for m in self.models if m.role in RELIANCE_ROLES and (
            self.reliance.backend == "openai" or  # the server answers: no weights needed
            m.local_path or m.capture or (m.generate and not m.traces and hf))]

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain data (``source`` left out)."""
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d

    def stage_hash(self, stage: str) -> str:
        """Return a short hash of everything that decides ``stage``'s outputs (and upstream)."""
        d = self.to_dict()
        parts: dict[str, Any] = {
            "models": d["models"], "suites": d["suites"],
            "max_items_per_task": d["max_items_per_task"], "generation": d["generation"]}
        order = STAGES.index(stage)
        if order >= STAGES.index("align"):
            parts["seed"] = d["seed"]
            parts["alignment"] = d["alignment"]
        if order >= STAGES.index("capture"):  # the launcher changes no stored number
            parts["capture"] = {k: v for k, v in d["capture"].items() if k not in (
                "ranks_per_node", "nodes", "gpus_per_rank")}
        if order >= STAGES.index("reliance"):
            parts["reliance"] = d["reliance"]
        if order >= STAGES.index("intervene"):  # the mechanistic probes and their options
            mech = [n for n in d["probes"]["names"] if n in ("compute", "steer", "patch")]
            parts["intervene"] = {**d["intervene"], "names": mech, "options": {
                n: d["probes"]["options"].get(n, {}) for n in mech}}
        if order >= STAGES.index("probe"):
            parts["probes"] = d["probes"]
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _build(cls, data: dict[str, Any], where: str, file: str):
    """Return ``cls(**data)`` after checking keys; errors name the TOML section and key."""
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names or k == "source":
            raise InputError(f"unknown key '{k}' in {where}", file=file,
                             fix=f"valid keys: {', '.join(sorted(names - {'source'}))}")
    try:
        return cls(**data)
    except TypeError as e:
        raise InputError(f"{where}: {e}", file=file) from None


def config_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> ExperimentConfig:
    """Return a validated :class:`ExperimentConfig` from TOML-shaped data."""
    from .config_schema import validate_config

    validate_config(data, source, {  # types, ranges, identifiers: every error, one line each
        "experiment": ExperimentConfig, "models": ModelConfig, "generation": GenerationConfig,
        "alignment": AlignStageConfig, "capture": CaptureStageConfig,
        "reliance": RelianceStageConfig, "intervene": InterveneStageConfig,
        "probes": ProbeStageConfig})
    data = dict(data)
    models_raw = data.pop("models", None)
    if not models_raw:
        raise InputError("no [[models]] entries", file=source,
                         fix="add at least one [[models]] table with key, name and role")
    models = []
    for i, m in enumerate(models_raw, start=1):
        m = dict(m)
        for req in ("name", "role"):
            if req not in m:
                raise InputError(f"[[models]] #{i} has no '{req}'", file=source,
                                 fix="each model needs name (hub id or local folder) and role")
        m.setdefault("key", m["role"])
        if m.get("local_path") == "":
            m["local_path"] = None
        mc = _build(ModelConfig, m, f"[[models]] #{i}", source)
        if mc.role not in ROLES:
            raise InputError(f"[[models]] #{i} ({mc.key}): role '{mc.role}' is not valid",
                             file=source, fix=f"use one of {', '.join(ROLES)}")
        if not mc.generate and not mc.traces:
            raise InputError(f"[[models]] {mc.key}: generate = false but no traces file",
                             file=source, fix="set traces = 'path.jsonl' or generate = true")
        models.append(mc)
    keys = [m.key for m in models]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InputError(f"duplicate model key(s) {dup}", file=source,
                         fix="give each [[models]] a distinct key")
    gen = _build(GenerationConfig, data.pop("generation", {}), "[generation]", source)
    aln = _build(AlignStageConfig, data.pop("alignment", {}), "[alignment]", source)
    cap = _build(CaptureStageConfig, data.pop("capture", {}), "[capture]", source)
    rel = _build(RelianceStageConfig, data.pop("reliance", {}), "[reliance]", source)
    prb = _build(ProbeStageConfig, data.pop("probes", {}), "[probes]", source)
    itv = _build(InterveneStageConfig, data.pop("intervene", {}), "[intervene]", source)
    if gen.backend not in ("hf", "openai"):
        raise InputError(f"[generation] backend '{gen.backend}' is not valid", file=source,
                         fix="use 'hf' or 'openai'")
    if gen.backend == "openai" and not gen.base_url:
        raise InputError("[generation] backend = 'openai' needs base_url", file=source,
                         fix="e.g. base_url = 'http://localhost:8000/v1' (see vllm serve)")
    if gen.max_new_tokens <= 0 or gen.batch_size <= 0:
        raise InputError("[generation] max_new_tokens and batch_size must be > 0", file=source)
    bad = [s for s in cap.sites if s not in SITES]
    if bad:
        raise InputError(f"[capture] unknown site(s) {bad}", file=source,
                         fix=f"use some of {', '.join(SITES)}")
    if cap.entropy not in ("exact", "sampled", "off"):
        raise InputError(f"[capture] entropy '{cap.entropy}' is not valid", file=source,
                         fix="use exact, sampled or off")
    if cap.store_dtype not in ("float16", "float32"):
        raise InputError(f"[capture] store_dtype '{cap.store_dtype}' is not valid",
                         file=source, fix="use float16 or float32")
    if rel.mode not in SCRAMBLE_MODES:
        raise InputError(f"[reliance] mode '{rel.mode}' is not valid", file=source,
                         fix=f"use {' or '.join(SCRAMBLE_MODES)}")
    bad = [c for c in rel.controls if c not in RELIANCE_CONTROLS]
    if bad or len(set(rel.controls)) != len(rel.controls):
        raise InputError(f"[reliance] controls {rel.controls!r}: "
                         + (f"unknown {bad}" if bad else "a control is named twice"),
                         file=source, fix=f"use some of {', '.join(RELIANCE_CONTROLS)} "
                                          "(or [] for none)")
    if rel.max_answer_tokens != "auto" and (
            isinstance(rel.max_answer_tokens, bool) or not isinstance(rel.max_answer_tokens, int)
            or rel.max_answer_tokens <= 0):
        raise InputError(f"[reliance] max_answer_tokens must be \"auto\" or a whole number > 0, "
                         f"got {rel.max_answer_tokens!r}", file=source,
                         fix='e.g. "auto" (the default) or 512')
    cfg = _build(ExperimentConfig, {**data, "models": models, "generation": gen,
                                    "alignment": aln, "capture": cap, "reliance": rel,
                                    "intervene": itv, "probes": prb},
                 "the top level", source)
    from .scale import validate

    validate(cfg, source)
    roles = {m.key: m.role for m in cfg.models}
    bad = [k for k in cfg.intervene.models if roles.get(k) not in ("student", "control")]
    if bad:
        raise InputError(f"[intervene] models {bad} are not students or controls of this "
                         "config", file=source, fix="use some of "
                         f"{', '.join(k for k, r in roles.items() if r in ('student', 'control'))}"
                         " or [] for all")
    if not cfg.name:
        raise InputError("'name' is empty", file=source, fix="name = 'my-experiment'")
    if not cfg.out:
        cfg.out = f"cache/runs/{cfg.name}"
    if cfg.max_items_per_task is not None and cfg.max_items_per_task <= 0:
        cfg.max_items_per_task = None
    cfg.source = source
    return cfg


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Return the experiment in a TOML file, with ``overrides`` (top-level keys) applied."""
    path = Path(path)
    if not path.exists():
        raise InputError("config file not found", file=path,
                         fix="pass a TOML file such as experiments/organism.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML ({e})", file=path) from None
    except UnicodeDecodeError:
        raise InputError("not valid UTF-8", file=path, fix="re-save the file as UTF-8") from None
    data.update(overrides or {})
    return config_from_dict(data, source=str(path))
