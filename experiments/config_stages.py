"""Stage settings of an experiment config: one dataclass per stage, every field documented.

The ``[generation]``, ``[alignment]``, ``[capture]``, ``[reliance]``, ``[intervene]`` and
``[probes]`` tables of an experiment TOML become these dataclasses; :mod:`experiments.config`
holds the experiment and its models, parses and validates the file, and re-exports every
name here. A new stage's
settings go here as one more dataclass (and one field of ``ExperimentConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mimicry.capture.config import ALL_SITES as SITES

SCRAMBLE_MODES = ("within", "across")
RELIANCE_CONTROLS = ("empty", "filler")  # = mimicry.traces.controls.CONTROLS


@dataclass
class GenerationConfig:
    """Settings of the generate stage (behaviour: one trace per model × item).

    Fields:
        backend: ``hf`` (``transformers.generate``, batched) or ``openai`` (an
            OpenAI-compatible server such as ``vllm serve``; see docs/experiments.md).
        max_new_tokens: generation budget per item; traces that hit it are flagged
            ``finish_reason = "length"`` and excluded from alignment (counted).
        batch_size: prompts per ``generate`` call (hf backend).
        temperature: 0 means greedy decoding, as in the paper.
        seed: sampling seed (recorded in every trace).
        base_url: server URL for the openai backend (``http://localhost:8000/v1``).
        concurrency: parallel requests for the openai backend.
    """

    backend: str = "hf"
    max_new_tokens: int = 32768
    batch_size: int = 8
    temperature: float = 0.0
    seed: int = 0
    base_url: str | None = None
    concurrency: int = 16


@dataclass
class AlignStageConfig:
    """Settings of the align stage (behavioural statistics, see docs/alignment.md).

    Fields:
        n_boot: bootstrap resamples for every CI (≥ 10 000 for reported numbers).
        n_perm: permutations for every permutation p.
        min_items: a model × task cell with fewer included items is not analysed (counted).
        exclude_truncated: leave out traces that hit max_new_tokens (counted in exclusions).
        cooks: also exclude points with Cook's distance > 4/n (counted).
        cost: ``reasoning_tokens`` (default) or ``total_tokens`` for models without ``<think>``.
    """

    n_boot: int = 10_000
    n_perm: int = 10_000
    min_items: int = 5
    exclude_truncated: bool = True
    cooks: bool = False
    cost: str = "reasoning_tokens"


@dataclass
class CaptureStageConfig:
    """Settings of the capture stage (activations to ``caches/<key>.h5``).

    Fields:
        backend: ``hf`` (stock model, SDPA; the fast default), ``tl`` or ``nnsight``.
        sites: residual-stream sites recorded after the embeddings and after every layer.
        entropy: attention entropy mode: ``exact``, ``sampled`` (a fixed set of query
            positions per item) or ``off``.
        entropy_samples: query positions per item in ``sampled`` mode.
        store_dtype: on-disk dtype of residuals, ``float16`` or ``float32`` (h5py has no bf16).
        batch_tokens: token budget per forward batch.
        cross: also capture each student/control over the teacher's traces and over
            content-scrambled teacher traces (what the ablation probe needs).
        ranks_per_node, nodes, gpus_per_rank: data-parallel capture under ``torchrun``
            (each rank a slice of the items, its own shard; :mod:`experiments.scale`); a rank
            splits its model over ``gpus_per_rank`` GPUs with ``device_map``.
    """

    backend: str = "hf"
    sites: list[str] = field(default_factory=lambda: list(SITES))
    entropy: str = "sampled"
    entropy_samples: int = 512
    store_dtype: str = "float16"
    batch_tokens: int = 32768
    cross: bool = True
    ranks_per_node: int = 1
    nodes: int = 1
    gpus_per_rank: int = 1


@dataclass
class RelianceStageConfig:
    """Settings of the reliance stage (answers after the model's own reasoning, scrambled).

    Each teacher/student/control with reasoning answers again after its own traces with the
    reasoning's content scrambled (:func:`mimicry.traces.scramble.scramble_traces`, seed = the
    experiment's ``seed``); ``probes.reliance`` compares the accuracy with its own run.

    Fields:
        max_answer_tokens: greedy decoding budget for the answer after ``</think>``, or
            ``"auto"``: max(64, 2 × the model's longest own answer), so that a model that
            summarises before its final answer (R1-style) is not cut off.
        mode: scramble mode, ``within`` (the trace's own tokens shuffled among positions of
            the same shape) or ``across`` (tokens drawn from all items' traces).
        backend: ``hf`` (local weights) or ``openai`` (the ``[generation]`` server's
            ``/v1/completions``: same prompt text, budget and scoring).
        controls: the model also answers after these control reasonings of its own traces
            (:mod:`mimicry.traces.controls`): ``empty`` (no reasoning) and ``filler``
            (content-free, length-matched in the model's tokens); ``[]`` turns them off.
    """

    max_answer_tokens: int | str = "auto"
    mode: str = "within"
    backend: str = "hf"
    controls: list[str] = field(default_factory=lambda: list(RELIANCE_CONTROLS))


@dataclass
class InterveneStageConfig:
    """Settings of the intervene stage (the model runs of the compute, steer and patch probes).

    What it runs follows ``[probes] names`` and their options (``[probes.options.steer]``:
    α, random directions, layer, budget ...; one set for the CLI, IPython and the runner);
    see :mod:`experiments.stage_intervene`.

    Fields:
        models: keys of the students/controls to steer and patch (``[]``: every one; each
            costs a full steering sweep, see the dry run). ``compute`` always covers the
            teacher and every student/control.
        token_rows: per-token residual rows kept along the longest reasoning for ``compute``
            (the capture stride is ``ceil((longest + 2) / token_rows)``; disk grows with it).
    """

    models: list[str] = field(default_factory=list)
    token_rows: int = 128


@dataclass
class ProbeStageConfig:
    """Settings of the probe stage.

    Fields:
        names: probes to run, in order (an unknown name is an error before any stage runs).
        options: per-probe options, e.g. ``{difficulty = {n_folds = 10}}``; an option the
            probe does not take is an error naming the valid ones
            (defaults: ``experiments.probing.PROBE_DEFAULTS``).
    """

    names: list[str] = field(default_factory=lambda: [
        "difficulty", "entropy", "similarity", "planning", "ablation", "reliance", "compute",
        "steer", "patch", "verdict"])
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
