"""What an experiment will cost, computed from shapes before any weight is downloaded.

Formulas (all printed numbers follow them; ``b`` = bytes per value, 2 for bf16):

- tokens to generate (upper bound) = items × max_new_tokens, per model that generates;
- weights = params × b (params from :mod:`experiments.shapes`);
- KV cache at the max length = 2 (K,V) × layers × kv_heads × head_dim × b × seq_len × batch,
  with seq_len = longest prompt + max_new_tokens;
- capture working set = (layers + 1) × seq_len × d_model × b (every hidden state of one
  sequence) + 3 × seq_len × intermediate × b (the MLP of one layer);
- cache on disk = captured items × [sites × (layers + 1) × d_model × store bytes
  + 3 segments × layers × heads × 4 bytes × 3 entropy variants (raw, normalised, no sink)];
- reliance (teachers, students, controls with weights): items × seq_len tokens prefilled
  (prompt + reasoning, at most prompt + max_new_tokens) and items × max_answer_tokens decoded.

With ``device_map = "auto"`` the layers (their weights, KV cache and hidden states) are
split over ``gpus`` devices, so the per-GPU numbers are the totals ÷ ``gpus``.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import scale
from .config import ExperimentConfig, ModelConfig
from .shapes import ArchShape

GIB = 1024**3
ENTROPY_SEGMENTS = 3
ENTROPY_VARIANTS = 3
_BYTES = {"bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "float32": 4, "fp32": 4,
          "auto": 2}


@dataclass
class ModelEstimate:
    """The estimate for one model (bytes and tokens; ``shape`` None when unknown)."""

    key: str
    name: str
    shape: ArchShape | None
    tokens_to_generate: int
    seq_len: int
    weights_bytes: int
    kv_bytes: int
    capture_work_bytes: int
    captures: int
    cache_bytes: int
    gpus: int
    warnings: list[str]
    reliance_prefill_tokens: int = 0
    reliance_decode_tokens: int = 0

    @property
    def generate_gpu_bytes(self) -> int:
        """Return (weights + KV cache) per GPU during generation (layers split evenly)."""
        return (self.weights_bytes + self.kv_bytes) // self.gpus

    @property
    def capture_gpu_bytes(self) -> int:
        """Return (weights + capture working set) per GPU during capture."""
        return (self.weights_bytes + self.capture_work_bytes) // self.gpus


def captures_for(cfg: ExperimentConfig, m: ModelConfig) -> int:
    """Return how many caches the capture stage writes for ``m`` (own + cross traces)."""
    if not m.capture:
        return 0
    n = 1
    teacher = cfg.roles().get("teacher")
    if cfg.capture.cross and teacher and m.key != teacher and m.role in ("student", "control"):
        n += 2  # the teacher's traces, and content-scrambled teacher traces
    return n


def reliance_budget(cfg: ExperimentConfig, max_new: int) -> int:
    """Return the answer budget per item for the dry run ("auto": at most 2 × max_new_tokens)."""
    b = cfg.reliance.max_answer_tokens
    return 2 * max_new if b == "auto" else int(b)


def estimate_model(cfg: ExperimentConfig, m: ModelConfig, shape: ArchShape | None,
                   n_items: int, prompt_tokens: int) -> ModelEstimate:
    """Return the cost of one model of ``cfg`` over ``n_items`` items."""
    b = _BYTES.get(m.dtype.lower(), 2)
    max_new = m.max_new_tokens or cfg.generation.max_new_tokens
    seq = prompt_tokens + max_new
    gen_tokens = n_items * max_new if (m.generate and not m.traces) else 0
    gpus = cfg.gpus if m.device_map == "auto" else 1
    warns: list[str] = []
    captures = captures_for(cfg, m)
    rel = any(r.key == m.key for r in cfg.reliance_models())
    rel_tokens = {"reliance_prefill_tokens": n_items * seq if rel else 0,
                  "reliance_decode_tokens": n_items * reliance_budget(cfg, max_new) if rel
                  else 0}
    if shape is None:
        warns.append("shape unknown: set local_path (config.json is read) to get estimates")
        return ModelEstimate(m.key, m.name, None, gen_tokens, seq, 0, 0, 0, captures, 0, gpus,
                             warns, **rel_tokens)
    if shape.max_positions and seq > shape.max_positions:
        warns.append(f"prompt + max_new_tokens = {seq} exceeds the model's "
                     f"max_position_embeddings {shape.max_positions}; lower max_new_tokens "
                     "for this model")
    weights = shape.params * b
    kv = shape.kv_bytes_per_token(b) * seq * cfg.generation.batch_size
    if cfg.generation.backend != "hf":
        kv = 0  # served elsewhere (vLLM pages its own KV cache)
    work = (shape.layers + 1) * seq * shape.hidden * b + 3 * seq * shape.intermediate * b
    cache = captures * n_items * cache_bytes_per_item(cfg, shape)
    return ModelEstimate(m.key, m.name, shape, gen_tokens, seq, weights, kv, work, captures,
                         cache, gpus, warns, **rel_tokens)


def cache_bytes_per_item(cfg: ExperimentConfig, shape: ArchShape) -> int:
    """Return the HDF5 bytes one captured item takes (residual sites + entropy)."""
    sb = 2 if cfg.capture.store_dtype == "float16" else 4
    resid = len(cfg.capture.sites) * (shape.layers + 1) * shape.hidden * sb
    ent = 0
    if cfg.capture.entropy != "off":
        ent = ENTROPY_SEGMENTS * shape.layers * shape.heads * 4 * ENTROPY_VARIANTS
    return resid + ent


def human_bytes(n: float) -> str:
    """Return ``n`` bytes as a short string (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def human_count(n: float) -> str:
    """Return a count as ``3.1M`` / ``12.0k`` / ``950``."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(int(n))


def format_estimates(cfg: ExperimentConfig, ests: list[ModelEstimate], n_items: int,
                     stages: list[str]) -> str:
    """Return the dry-run text: one line per model, totals and the stages to run."""
    lines = [f"experiment {cfg.name}: {len(cfg.models)} models × {n_items} items "
             f"({', '.join(cfg.suites)}), out {cfg.out}"]
    hdr = (f"{'model':<22}{'params':>8}{'layers×d':>11}{'gen tokens ≤':>14}{'GPUs':>6}"
           f"{'GPU gen':>11}{'GPU capture':>13}{'caches':>8}{'disk':>11}")
    lines += [hdr, "-" * len(hdr)]
    for e in ests:
        if e.shape is None:
            lines.append(f"{e.key:<22}{'?':>8}{'?':>11}{human_count(e.tokens_to_generate):>14}"
                         f"{e.gpus:>6}{'?':>11}{'?':>13}{e.captures:>8}{'?':>11}")
        else:
            lines.append(
                f"{e.key:<22}{human_count(e.shape.params):>8}"
                f"{f'{e.shape.layers}×{e.shape.hidden}':>11}"
                f"{human_count(e.tokens_to_generate):>14}{e.gpus:>6}"
                f"{human_bytes(e.generate_gpu_bytes):>11}{human_bytes(e.capture_gpu_bytes):>13}"
                f"{e.captures:>8}{human_bytes(e.cache_bytes):>11}")
        for w in e.warnings:
            lines.append(f"  ! {e.key}: {w}")
    tot_tok = sum(e.tokens_to_generate for e in ests)
    tot_disk = sum(e.cache_bytes for e in ests)
    lines.append(f"total: ≤ {human_count(tot_tok)} tokens to generate "
                 f"(upper bound: items × max_new_tokens; real traces stop earlier), "
                 f"cache on disk {human_bytes(tot_disk)}")
    if "reliance" in stages:
        who = [e.key for e in ests if e.reliance_decode_tokens]
        lines.append(
            f"reliance: ≤ {human_count(sum(e.reliance_prefill_tokens for e in ests))} tokens "
            f"prefilled (prompt + own reasoning) + "
            f"{human_count(sum(e.reliance_decode_tokens for e in ests))} decoded (answers, "
            + ("auto budget: 2 × the model's longest own answer, ≤ 2 × max_new_tokens each"
               if cfg.reliance.max_answer_tokens == "auto"
               else f"≤ {cfg.reliance.max_answer_tokens} each") + ") "
            f"for {', '.join(who) or 'no model'}; "
            "GPU memory ≈ GPU gen (same batch, same length)")
    lines += per_rank_lines(cfg, ests, n_items)
    lines.append("per GPU: gen = weights + KV cache at the max length × batch "
                 f"{cfg.generation.batch_size}; capture = weights + all hidden states of one "
                 "max-length sequence (bf16; split evenly over GPUs with device_map auto)")
    lines.append(f"stages to run: {', '.join(stages) if stages else 'none (all done)'}")
    return "\n".join(lines)


def per_rank_lines(cfg, ests, n_items: int) -> list[str]:
    """Return the dry-run lines of the capture launcher: ranks, GPUs and work per rank."""
    n = scale.world(cfg)
    cap = cfg.capture
    lines = []
    if n > 1 or cap.gpus_per_rank > 1:
        tok = sum(e.captures * n_items * e.seq_len for e in ests)  # ≤ items × seq per cache
        disk = sum(e.cache_bytes for e in ests)
        gpu = max((e.weights_bytes // cap.gpus_per_rank + e.capture_work_bytes
                   // cap.gpus_per_rank for e in ests if e.shape is not None), default=0)
        lines.append(
            f"capture launcher: {cap.nodes} node(s) × {cap.ranks_per_node} ranks × "
            f"{cap.gpus_per_rank} GPU(s) = {n} ranks on {n * cap.gpus_per_rank} GPUs; per rank "
            f"≈ 1/{n} of the items: ≤ {human_count(tok / n)} tokens, "
            f"{human_bytes(disk / n)} of shards, GPU {human_bytes(gpu)} per GPU")
    if cfg.reliance.backend == "openai":
        lines.append(f"reliance backend: openai ({cfg.generation.base_url}/completions, "
                     "no local weights loaded)")
    return lines
