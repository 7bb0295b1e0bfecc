"""Run a capture job: encode traces, skip finished items, batch, run a backend, write, merge.

``capture(model, traces, out, config)`` is the Python entry point behind ``mimicry capture``;
it also accepts an already loaded ``(model, tokenizer)`` (benchmarks, notebooks).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..diskspace import check_room
from ..errors import CacheMismatchError, InputError, MimicryError
from ..models import ModelSpec, load_model, load_tokenizer, resolve_dtype, tokenizer_fingerprint
from ..store.shards import RankWriter, close_job, index_current, open_job
from ..store.vds import assemble
from ..store.writer import SHARD_OVERHEAD
from ..traces import Trace, read_traces
from .base import EncodedItem
from .config import ENTROPY_SEGMENTS, ENTROPY_VARIANTS, CaptureConfig
from .launch import DEFAULT_TIMEOUT_S, Group, deal, rank_device, rank_info
from .segments import encode_traces

# backend name -> (module, class) ; tl/nnsight are written by the capture-peers
BACKEND_CLASSES = {
    "hf": ("mimicry.capture.hf", "HFBackend"),
    "tl": ("mimicry.capture.tl_backend", "TLBackend"),
    "nnsight": ("mimicry.capture.nnsight_backend", "NNsightBackend"),
}


def make_backend(name: str, model, tokenizer, config: CaptureConfig):
    """Return the backend object ``name`` built from ``(model, tokenizer, config)``."""
    modname, clsname = BACKEND_CLASSES[name]
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        raise InputError(f"backend {name!r} is not available ({e})",
                         fix="use --backend hf, or install the extra: pip install "
                             f"'mimicry[{name}]'") from None
    cls = getattr(mod, clsname, None)
    if cls is None:
        raise InputError(f"backend module {modname} has no {clsname}", fix="use --backend hf")
    return cls(model, tokenizer, config)


def pack_batches(items: list[EncodedItem], batch_tokens: int) -> list[list[EncodedItem]]:
    """Return batches of items sorted by length, each with ``n * max_len <= batch_tokens``.

    An item longer than ``batch_tokens`` runs alone.
    """
    order = sorted(items, key=lambda it: -it.length)
    batches: list[list[EncodedItem]] = []
    cur: list[EncodedItem] = []
    for it in order:
        lmax = cur[0].length if cur else it.length
        if cur and (len(cur) + 1) * lmax > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(it)
    if cur:
        batches.append(cur)
    return batches


def estimate_bytes(n_items: int, dims: dict, config: CaptureConfig, n_token_rows: int = 0) -> int:
    """Return the approximate size in bytes of a cache of ``n_items`` items."""
    per = 2 if config.dtype == "float16" else 4
    row = (dims["n_layers"] + 1) * dims["d_model"] * per
    ent = 0 if config.entropy == "off" else (
        len(ENTROPY_VARIANTS) * len(ENTROPY_SEGMENTS) * dims["n_layers"] * dims["n_heads"] * 4)
    return n_items * (len(config.sites) * row + ent + 200) + n_token_rows * row


def _dims_from_config(spec: ModelSpec) -> tuple[dict, object]:
    from transformers import AutoConfig

    from .base import model_dims

    try:
        cfg = AutoConfig.from_pretrained(spec.name_or_path, revision=spec.revision,
                                         trust_remote_code=spec.trust_remote_code)
    except OSError as e:
        from ..models import _not_found

        raise _not_found(spec, e) from None
    return model_dims(cfg), cfg


def _dtype_name(d) -> str:
    return str(d).removeprefix("torch.")


def build_attrs(model_name: str, spec: ModelSpec | None, dtype: str, tok, dims: dict,
                config: CaptureConfig) -> dict:
    """Return the root attrs of a cache for this model/tokenizer/config."""
    from ..fingerprint import model_identity

    return {
        "model": Path(model_name.rstrip("/")).name, "model_path": model_name,
        "weights_hash": model_identity(model_name, spec.revision if spec else None)[
            "weights_hash"],
        "revision": (spec.revision if spec else None) or "", "dtype": dtype,
        **tokenizer_fingerprint(tok), "capture_config": config.to_json(),
        "mimicry_version": __version__, **dims,
    }


def capture(model, traces: str | Path | list[Trace], out: str | Path,
            config: CaptureConfig | None = None, *, tokenizer=None, device: str | None = None,
            dtype: str | None = None, limit: int | None = None, progress: bool = True,
            log: Callable[[str], None] | None = None, gpus_per_rank: int = 1,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> Path:
    """Return the path of the HDF5 cache written for ``model`` over ``traces``.

    ``model``: hub id / local folder / :class:`ModelSpec`, or a loaded HF model (then pass
    ``tokenizer``). ``traces``: a JSONL file or a list of :class:`Trace`. Resumes: items
    already in ``out`` (or its shards) are skipped; a cache from another model/config is
    refused. ``log`` receives the cost summary and progress lines (default: the logger).
    Under ``torchrun`` each rank captures its slice (:mod:`mimicry.capture.launch`) into its
    own shard and rank 0 joins the shards with virtual datasets (:mod:`.shards`);
    ``gpus_per_rank`` > 1 gives each rank that many GPUs for ``device_map``; ``timeout_s``:
    how long ranks wait for each other.
    """
    from ..preflight import check_output_file

    config = config or CaptureConfig()
    check_output_file(out)
    say = log or logging.getLogger(__name__).info
    loaded = not isinstance(model, (str, Path, ModelSpec))
    spec = None if loaded else ModelSpec.coerce(str(model) if isinstance(model, Path) else model)
    if loaded:
        if tokenizer is None:
            raise InputError("a loaded model needs its tokenizer", fix="pass tokenizer=...")
        from .base import model_dims

        dims = model_dims(model)
        name = str(getattr(model.config, "_name_or_path", "") or type(model).__name__)
        dtype_name = _dtype_name(next(model.parameters()).dtype)
    else:
        from ..models import check_model_source
        from ..preflight import check_chat_template, check_device

        check_device(device)
        check_chat_template(config.chat_template)
        check_model_source(spec, weights=True)
        tokenizer = load_tokenizer(spec)
        dims, cfg = _dims_from_config(spec)
        want = resolve_dtype(dtype or spec.dtype)
        if want == "auto":
            want = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None) or "float32"
        dtype_name = _dtype_name(want)
        name = spec.name_or_path
    if config.chat_template not in ("auto", "none"):
        tokenizer.chat_template = config.chat_template
    tfile = None
    if isinstance(traces, (str, Path)):
        tfile = str(traces)
        traces = read_traces(traces)
    if limit is not None:
        traces = traces[:limit]
    if not traces:
        raise InputError("no traces to capture", file=tfile, fix="check the traces file")
    items = encode_traces(tokenizer, traces, config, file=tfile)
    attrs = build_attrs(name, spec, dtype_name, tokenizer, dims, config)
    out = Path(out)
    info = rank_info()
    if info.world > 1:  # one process keeps every visible GPU (device_map spreads over them)
        device = rank_device(device, info, gpus_per_rank,
                             None if spec is None else spec.device_map)
    group = Group(info, timeout_s)
    lock = None
    try:
        msg = None
        if info.main:
            try:
                lock, done = open_job(out, attrs)
                msg = ("ok", sorted(done))
            except MimicryError as e:
                msg = ("error", type(e).__name__, e.problem, e.file, e.fix)
                group.broadcast(msg)
                raise
        msg = group.broadcast(msg)
        if msg[0] == "error":
            cls = CacheMismatchError if msg[1] == "CacheMismatchError" else MimicryError
            raise cls(f"rank 0: {msg[2]}", file=msg[3], fix=msg[4])
        done = set(msg[1])
        todo = [it for it in items if it.key not in done]
        n_done = len(items) - len(todo)
        mine = deal([it.length for it in todo], info.world)
        if info.main:
            n_tok = sum(it.length for it in todo)
            n_rows = sum(len(it.token_positions) for it in todo
                         if it.token_positions is not None)
            size = estimate_bytes(len(todo), dims, config, n_rows)
            n_batches = sum(len(pack_batches([todo[i] for i in m], config.batch_tokens))
                            for m in mine)
            # each batch is a small HDF5 part file with its own per-dataset overhead; the
            # assembled index only maps them (a --copy pack needs the size once more)
            peak = size + n_batches * SHARD_OVERHEAD
            say(f"capture: {len(items)} traces, {n_done} already in cache "
                f"(skipped), {len(todo)} to capture: {n_tok:,} tokens (longest "
                f"{max((it.length for it in todo), default=0):,}); {dims['n_layers']} layers x "
                f"d_model {dims['d_model']}, sites {','.join(config.sites)}, entropy "
                f"{config.entropy}; ~{peak / 2**20:,.1f} MiB more in {out} and its parts "
                f"({n_batches} batch files)")
            if todo:
                check_room(out.parent, peak, "this capture",
                           largest=max(SHARD_OVERHEAD, size // max(n_batches, 1)))
            if info.world > 1:
                say(f"capture: {info.world} ranks, tokens per rank: "
                    + ", ".join(f"{sum(todo[i].length for i in m):,}" for m in mine))
        batch_items = [todo[i] for i in mine[info.rank]]
        if batch_items:
            if not loaded:
                model, _ = load_model(spec, device=device, dtype=dtype)
            elif device is not None:
                model.to(device)
            backend = make_backend(config.backend, model, tokenizer, config)
            writer = RankWriter(out, attrs, info.rank, config.dtype)
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(it.length for it in batch_items), unit="tok",
                       disable=not progress or not info.main, desc="capture")
            for batch in pack_batches(batch_items, config.batch_tokens):
                writer.write_batch(batch, backend.run(batch))
                bar.update(sum(it.length for it in batch))
            bar.close()
        group.barrier()  # every rank's parts are committed
        if info.main:
            if todo or not index_current(out):
                assemble(out, attrs)
            say(f"capture: captured {len(todo)} items; {out} holds {n_done + len(todo)} items")
        group.barrier()  # nobody returns before the index exists
    finally:
        if info.main:
            close_job(out, lock)
        group.close()
    return out
