"""The capture job's configuration: one dataclass, every field documented, JSON in the cache.

The JSON form (:meth:`CaptureConfig.to_json`) is stored in the cache's root attrs; a resumed
run must match its *identity* fields (what changes the numbers), while performance knobs
(``batch_tokens``, ``query_chunk``) may differ between runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from ..errors import InputError
from ..store.identity import register_config_identity

POINT_SITES = ("last_prompt", "think_end")
MEAN_SITES = ("mean_prompt", "mean_reasoning", "mean_answer")
ALL_SITES = POINT_SITES + MEAN_SITES
# Entropy is always reduced over these five query sets (cheap: one weighted sum each).
ENTROPY_SEGMENTS = ("prompt", "reasoning", "answer", "last_prompt", "think_end")
ENTROPY_VARIANTS = ("raw", "norm", "nosink")
ENTROPY_MODES = ("exact", "sampled", "off")
STORE_DTYPES = ("float32", "float16")
BACKENDS = ("hf", "tl", "nnsight")
TOKEN_SEGMENTS = ("all", "reasoning")  # where per-token stride rows are taken
# Fields that do not change any stored number: a resume may use other values.
PERFORMANCE_FIELDS = ("batch_tokens", "query_chunk")


@dataclass
class CaptureConfig:
    """What one capture job records and how.

    ``sites``: residual-stream sites, any of ``last_prompt`` (last prompt token, the state
    that plans the effort), ``think_end`` (the ``</think>`` token), ``mean_prompt``,
    ``mean_reasoning``, ``mean_answer`` (means over the segment's tokens).
    ``entropy``: ``exact`` (every query position), ``sampled`` (``n_sampled`` query positions
    per item drawn with ``seed``, plus the two point sites; recorded in the cache) or ``off``.
    ``per_token_stride``: also store the residual at every N-th token (0 = off).
    ``per_token_segment``: where those rows are taken: ``all`` (the whole sequence, from
    position 0) or ``reasoning`` (only the reasoning segment, from its first token, plus its
    last token — what the computation probe reads; at 32k a stride of 256 keeps 128 rows).
    ``dtype``: storage dtype of residuals, ``float32`` or ``float16`` (h5py has no bfloat16;
    entropies are always float32). ``batch_tokens``: padded tokens per forward batch (items
    are sorted by length and packed). ``query_chunk``: query rows per entropy chunk (caps the
    ``[b, h, chunk, L]`` score block). ``backend``: ``hf`` (default, fast), ``tl`` or
    ``nnsight``. ``chat_template``: ``auto`` (the tokenizer's), ``none`` (raw prompt).
    """

    sites: tuple[str, ...] = ALL_SITES
    entropy: str = "exact"
    n_sampled: int = 512
    seed: int = 0
    per_token_stride: int = 0
    per_token_segment: str = "all"
    dtype: str = "float32"
    batch_tokens: int = 8192
    query_chunk: int = 256
    backend: str = "hf"
    chat_template: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.sites, str):
            self.sites = tuple(s.strip() for s in self.sites.split(",") if s.strip())
        self.sites = tuple(self.sites)
        bad = [s for s in self.sites if s not in ALL_SITES]
        if bad or not self.sites:
            raise InputError(f"unknown site(s) {bad or '(none)'}",
                             fix=f"choose from {','.join(ALL_SITES)}")
        if len(set(self.sites)) != len(self.sites):
            raise InputError(f"duplicate site in {','.join(self.sites)}", fix="list each once")
        if self.entropy not in ENTROPY_MODES:
            raise InputError(f"unknown entropy mode {self.entropy!r}",
                             fix=f"use one of {', '.join(ENTROPY_MODES)}")
        if self.dtype in ("fp32", "float"):
            self.dtype = "float32"
        if self.dtype in ("fp16", "half"):
            self.dtype = "float16"
        if self.dtype not in STORE_DTYPES:
            raise InputError(f"cannot store activations as {self.dtype!r}",
                             fix="use float32 or float16 (h5py has no bfloat16)")
        if self.backend not in BACKENDS:
            raise InputError(f"unknown backend {self.backend!r}",
                             fix=f"use one of {', '.join(BACKENDS)}")
        for name in ("n_sampled", "batch_tokens", "query_chunk"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.per_token_segment not in TOKEN_SEGMENTS:
            raise InputError(f"unknown per_token_segment {self.per_token_segment!r}",
                             fix=f"use one of {', '.join(TOKEN_SEGMENTS)}")
        if int(self.per_token_stride) < 0:
            raise InputError(f"per_token_stride must be >= 0, got {self.per_token_stride}")

    def to_json(self) -> str:
        """Return the config as a JSON string (stored in the cache's root attrs)."""
        d = asdict(self)
        d["sites"] = list(self.sites)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CaptureConfig:
        """Return the config stored by :meth:`to_json` (unknown keys are ignored)."""
        d = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def identity(self) -> dict:
        """Return the fields a resumed run must match (everything but performance knobs)."""
        d = json.loads(self.to_json())
        for k in PERFORMANCE_FIELDS:
            d.pop(k, None)
        if self.entropy != "sampled":  # n_sampled/seed only matter when sampling
            d.pop("n_sampled", None)
            d.pop("seed", None)
        return d


# the store compares caches by this rule without importing capture (mimicry.store.identity)
register_config_identity(lambda text: CaptureConfig.from_json(text).identity())
