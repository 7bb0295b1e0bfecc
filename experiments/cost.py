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
  (prompt + reasoning, at most prompt + max_new_tokens) and items × answer budget decoded;
  the "auto" budget is 2 × the model's longest own answer (read from its traces when they
  exist, else ``ASSUMED_ANSWER_TOKENS``), never more than 2 × max_new_tokens; all × (1 + the
  ``[reliance] controls``): the model answers after its scrambled reasoning and again after
  each control (3× with both, the default; the empty control prefills less);
- fit: each per-GPU number is compared with ``gpu_memory_gb`` (10⁹ bytes) less 10% for the
  CUDA context and fragmentation; a model that does not fit gets a warning with the fix;
- wall clock (a rough guide, stated assumptions ``DECODE_TOK_S_7B``, ``PREFILL_TOK_S_7B``):
  decode and prefill throughput per GPU of a 7B bf16 model at batch 16, scaled by 7B/params
  (so a 1.5B model decodes ~4.7× faster), over the GPUs the model is split across.

With ``device_map = "auto"`` the layers (their weights, KV cache and hidden states) are
split over ``gpus`` devices, so the per-GPU numbers are the totals ÷ ``gpus``.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import scale
from .config import ExperimentConfig, ModelConfig
from .shapes import ArchShape

GIB = 1024**3
GB = 1e9
ASSUMED_ANSWER_TOKENS = 32      # an answer after the reasoning, before any trace exists
DECODE_TOK_S_7B = 1500.0        # generated tokens/s, batch 16, one H100, 7B bf16, HF generate
PREFILL_TOK_S_7B = 20000.0      # forward tokens/s (capture, reliance prefill), same setting
USABLE = 0.9                    # share of a GPU's memory a job can count on
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
    n_items: int = 0

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


def reliance_budget(cfg: ExperimentConfig, max_new: int, longest_answer: int | None = None) -> int:
    """Return the answer budget per item for the dry run.

    "auto": 2 × the longest own answer (``longest_answer`` from the model's traces, else
    ``ASSUMED_ANSWER_TOKENS``), at most 2 × max_new_tokens.
    """
    b = cfg.reliance.max_answer_tokens
    if b != "auto":
        return int(b)
    return min(2 * max_new, 2 * (longest_answer or ASSUMED_ANSWER_TOKENS))


def estimate_model(cfg: ExperimentConfig, m: ModelConfig, shape: ArchShape | None,
                   n_items: int, prompt_tokens: int,
                   longest_answer: int | None = None) -> ModelEstimate:
    """Return the cost of one model of ``cfg`` over ``n_items`` items.

    ``longest_answer``: the longest answer (tokens) in the model's own traces, when they exist.
    """
    b = _BYTES.get(m.dtype.lower(), 2)
    max_new = m.max_new_tokens or cfg.generation.max_new_tokens
    seq = prompt_tokens + max_new
    gen_tokens = n_items * max_new if (m.generate and not m.traces) else 0
    gpus = cfg.gpus if m.device_map == "auto" else 1
    warns: list[str] = []
    captures = captures_for(cfg, m)
    rel = any(r.key == m.key for r in cfg.reliance_models())
    runs = 1 + len(cfg.reliance.controls)  # after the scrambled reasoning, each control
    rel_tokens = {"reliance_prefill_tokens": runs * n_items * seq if rel else 0,
                  "reliance_decode_tokens": runs * n_items
                  * reliance_budget(cfg, max_new, longest_answer) if rel else 0}
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
    est = ModelEstimate(m.key, m.name, shape, gen_tokens, seq, weights, kv, work, captures,
                        cache, gpus, warns, n_items=n_items, **rel_tokens)
    warns += fit_warnings(cfg, est)
    return est


def fit_warnings(cfg: ExperimentConfig, e: ModelEstimate) -> list[str]:
    """Return a warning with its fix for each stage whose per-GPU memory exceeds the GPU."""
    cap = cfg.gpu_memory_gb * GB * USABLE
    out = []
    for what, need in (("generation", e.generate_gpu_bytes), ("capture", e.capture_gpu_bytes)):
        if need <= cap:
            continue
        whole = e.weights_bytes + (e.kv_bytes if what == "generation" else e.capture_work_bytes)
        n = int(-(-whole // cap))
        fix = (f"set gpus = {n} (device_map = \"auto\" splits the layers)"
               if e.gpus < n else "")
        if what == "generation" and e.kv_bytes:
            per_seq = e.kv_bytes / max(1, cfg.generation.batch_size)
            room = cap * e.gpus - e.weights_bytes
            bs = int(room // per_seq) if room > 0 else 0
            if bs >= 1:
                fix += (" or " if fix else "") + f"lower generation.batch_size to {bs}"
        if what == "capture" and not fix:
            fix = "lower max_new_tokens for this model (the capture holds one sequence)"
        out.append(f"{what} needs {need / GB:.1f} GB per GPU, more than the "
                   f"{cfg.gpu_memory_gb:g} GB declared (gpu_memory_gb, {USABLE:.0%} usable): "
                   f"{fix or 'use a larger GPU'}")
    return out


def wall_clock_hours(e: ModelEstimate, stages: list[str]) -> float:
    """Return a rough wall-clock estimate (hours) for one model (the module's assumptions)."""
    if e.shape is None:
        return float("nan")
    scale = 7e9 / max(e.shape.params, 1)  # smaller models run proportionally faster
    dec, pre = DECODE_TOK_S_7B * scale, PREFILL_TOK_S_7B * scale
    sec = 0.0
    if "generate" in stages:
        sec += e.tokens_to_generate / dec
    if "capture" in stages:
        sec += e.captures * e.n_items * e.seq_len / pre
    if "reliance" in stages:
        sec += e.reliance_prefill_tokens / pre + e.reliance_decode_tokens / dec
    return sec / 3600


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
        ctl = cfg.reliance.controls
        times = (f" × {1 + len(ctl)} (after the scrambled reasoning, "
                 + ", ".join(f"after {'an' if c[0] in 'aeiou' else 'a'} {c} one" for c in ctl)
                 + ")" if ctl else "")
        lines.append(
            f"reliance: ≤ {human_count(sum(e.reliance_prefill_tokens for e in ests))} tokens "
            f"prefilled (prompt + own reasoning) + "
            f"{human_count(sum(e.reliance_decode_tokens for e in ests))} decoded (answers"
            f"{times}, "
            + ("auto budget: 2 × the model's longest own answer, read from its traces or "
               f"assumed {ASSUMED_ANSWER_TOKENS} tokens before they exist, ≤ 2 × "
               "max_new_tokens"
               if cfg.reliance.max_answer_tokens == "auto"
               else f"≤ {cfg.reliance.max_answer_tokens} each") + ") "
            f"for {', '.join(who) or 'no model'}; "
            "GPU memory ≈ GPU gen (same batch, same length)")
    if "intervene" in stages:
        lines += mechanistic_cost_lines(cfg, ests, n_items)
    dtypes = ", ".join(sorted({m.dtype for m in cfg.models})) or "?"
    lines += per_rank_lines(cfg, ests, n_items)
    lines.append("per GPU: gen = weights + KV cache at the max length × batch "
                 f"{cfg.generation.batch_size}; capture = weights + all hidden states of one "
                 f"max-length sequence ({dtypes}; split evenly over GPUs with device_map auto); "
                 f"checked against gpu_memory_gb = {cfg.gpu_memory_gb:g}")
    hours = [wall_clock_hours(e, stages) for e in ests]
    known = [h for h in hours if h == h]
    if known:
        tot = sum(known)
        when = "< 0.1 min" if tot * 60 < 0.1 else f"{tot * 60:.1f} min" if tot < 1 \
            else f"{tot:.1f} h"
        lines.append(
            f"wall clock ≈ {when} of GPU work for {', '.join(stages) or 'nothing'}"
            + (" (models of unknown shape not counted)" if len(known) < len(hours) else "")
            + f"; assumes {DECODE_TOK_S_7B:g} tokens/s decoded and {PREFILL_TOK_S_7B:g} "
            "tokens/s prefilled per GPU for a 7B bf16 model at batch 16 (H100, HF "
            "generate), scaled by 7B/params; probes and the report add CPU minutes"
            + ("; the intervene stage's steering and patching are not in it (their own "
               "lines above)" if "intervene" in stages
               and {"steer", "patch"} & set(cfg.probes.names) else ""))
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


def mechanistic_cost_lines(cfg, ests: list, n_items: int) -> list[str]:
    """Return the dry-run lines of the intervene stage: steering, patching, compute's capture.

    steering, per student/control (``[intervene] models``): held-out items × (1 + nonzero α ×
    (3 + n_random) directions) greedy generations, each ≤ prompt + max_new_tokens tokens (one
    prefill + ≤ max_new_tokens decode forwards; max_new_tokens: the steer option, else the
    model's budget); patching: 2 directions × n_pairs × (layers + 2 own runs) generations +
    2 × n_pairs prompt forwards; compute: one forward over each model's own traces,
    ≤ token_rows + 2 rows × (layers + 1) × d_model × 4 bytes per item on disk.
    """
    names = set(cfg.probes.names)
    out = []
    opts = cfg.probes.options
    from .probing import PROBE_DEFAULTS  # pandas: imported only when a run is planned

    st = {**PROBE_DEFAULTS["steer"], **opts.get("steer", {})}
    pa = {**PROBE_DEFAULTS["patch"], **opts.get("patch", {})}
    roles = {m.key: m.role for m in cfg.models}
    budget = {m.key: m.max_new_tokens or cfg.generation.max_new_tokens for m in cfg.models}
    keep = set(cfg.intervene.models)
    rows = cfg.intervene.token_rows
    for e in ests:
        if roles.get(e.key) not in ("student", "control") or e.shape is None or (
                keep and e.key not in keep):
            continue
        prompt = e.seq_len - budget[e.key]
        if "steer" in names:
            n_test = n_items - round(n_items * float(st["train_frac"]))
            n_alpha = sum(1 for a in st["alphas"] if float(a) != 0)
            gens = n_test * (1 + n_alpha * (3 + int(st["n_random"])))
            seq = prompt + int(st.get("max_new_tokens") or budget[e.key])
            out.append(f"steer {e.key}: {human_count(gens)} generations ({n_test} held-out items × "
                       f"{1 + n_alpha * (3 + int(st['n_random']))} runs), ≤ "
                       f"{human_count(gens * seq)} tokens (prefill + decode forwards), "
                       f"≤ {_decode_time(gens * seq, e)}")
        if "patch" in names:
            n_lay = len(pa["layers"]) if pa.get("layers") is not None else e.shape.layers + 1
            gens = 2 * int(pa["n_pairs"]) * (n_lay + 2)
            seq = prompt + int(pa.get("max_new_tokens") or budget[e.key])
            out.append(f"patch {e.key}: {human_count(gens)} generations (2 directions × "
                       f"{pa['n_pairs']} pairs × ({n_lay} layers + 2 own runs)), "
                       f"≤ {human_count(gens * seq)} tokens + {2 * int(pa['n_pairs'])} prompt "
                       f"forwards, ≤ {_decode_time(gens * seq, e)}")
    if "compute" in names:
        disk = sum(n_items * (rows + 2) * (e.shape.layers + 1) * e.shape.hidden * 4
                   for e in ests if e.shape is not None
                   and roles.get(e.key) in ("teacher", "student", "control"))
        out.append(f"compute: one capture forward per item over each reasoning model's own "
                   f"traces, ≤ {rows + 2} per-token rows each ([intervene] token_rows), "
                   f"~{disk / 2**30:.1f} GiB on disk")
    return out


def _decode_time(tokens: float, e) -> str:
    """Return the GPU time to decode ``tokens`` for model ``e`` (the wall-clock assumptions)."""
    h = tokens / (DECODE_TOK_S_7B * 7e9 / max(e.shape.params, 1)) / 3600
    if h * 60 < 0.1:
        return "0.1 GPU-min"
    return f"{h * 60:.1f} GPU-min" if h < 1 else f"{h:.1f} GPU-h"
