"""``mimicry capture`` and ``mimicry cache info|consolidate``: the CLI of the capture step."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import ALL_SITES, CaptureConfig


def register(subparsers) -> None:
    """Add the ``capture`` and ``cache`` sub-commands."""
    d = CaptureConfig()
    p = subparsers.add_parser(
        "capture", help="record residuals and attention entropy over traces into HDF5",
        description="Forward passes over prompt + reasoning + answer (the model's chat "
                    "template) recording residual streams and attention entropy. Resumable: "
                    "re-run the same command after a crash.")
    p.add_argument("--model", required=True, help="hub id or local save_pretrained folder")
    p.add_argument("--traces", required=True, help="traces JSONL (any model's)")
    p.add_argument("--out", required=True, help="cache file, e.g. cache/RUN/MODEL.h5")
    p.add_argument("--sites", default=",".join(d.sites), help=f"any of {','.join(ALL_SITES)}")
    p.add_argument("--entropy", default=d.entropy, choices=["exact", "sampled", "off"],
                   help="attention entropy: every query (exact), --n-sampled positions, or none")
    p.add_argument("--n-sampled", type=int, default=d.n_sampled,
                   help="query positions per item in sampled mode")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the sampled positions")
    p.add_argument("--per-token-stride", type=int, default=d.per_token_stride,
                   help="also store the residual at every N-th token (0 = off)")
    p.add_argument("--per-token-segment", default=d.per_token_segment,
                   choices=["all", "reasoning"],
                   help="take the stride rows over the whole sequence or the reasoning only")
    p.add_argument("--backend", default=d.backend, choices=["hf", "tl", "nnsight"],
                   help="hf (fast, default path), TransformerLens or nnsight (parity)")
    p.add_argument("--dtype", default="auto", help="model dtype: auto, float32, bfloat16, ...")
    p.add_argument("--store-dtype", default=d.dtype, choices=["float32", "float16"],
                   help="dtype of stored residuals (h5py has no bfloat16)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: as loaded)")
    p.add_argument("--batch-tokens", type=int, default=d.batch_tokens,
                   help="padded tokens per forward batch")
    p.add_argument("--query-chunk", type=int, default=d.query_chunk,
                   help="query rows per entropy chunk")
    p.add_argument("--chat-template", default="auto", help="auto, none, or a Jinja template")
    p.add_argument("--revision", default=None, help="hub revision to pin")
    p.add_argument("--limit", type=int, default=None, help="only the first N traces")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--gpus-per-rank", type=int, default=1,
                   help="under torchrun: GPUs each rank splits its model over (device_map)")
    p.add_argument("--device-map", default=None,
                   help="e.g. auto: split the model over the visible (or the rank's) GPUs")
    p.add_argument("--dist-timeout", type=float, default=None,
                   help="under torchrun: seconds a rank waits for the slowest (default 7 days)")
    p.set_defaults(func=_capture)

    c = subparsers.add_parser("cache", help="inspect or repair an HDF5 activation cache")
    cs = c.add_subparsers(dest="cache_command", metavar="ACTION")
    i = cs.add_parser("info", help="print a summary of a cache file")
    i.add_argument("file", help="HDF5 cache written by mimicry capture")
    i.set_defaults(func=_info)
    k = cs.add_parser("consolidate", help="join the shards of an interrupted capture (no copy)",
                      description="Rewrite FILE as the virtual-dataset index over every shard "
                                  "in FILE.parts (kilobytes; nothing is copied). --copy "
                                  "instead writes one self-contained file and deletes the "
                                  "shards (needs free disk equal to the cache).")
    k.add_argument("file", help="HDF5 cache written by mimicry capture")
    k.add_argument("--copy", action="store_true",
                   help="write one self-contained file (to move the cache without its shards)")
    k.set_defaults(func=_consolidate)
    c.set_defaults(func=lambda a: (c.print_help(), 0)[1])


def _capture(args: argparse.Namespace) -> int:
    from ..models import ModelSpec
    from .driver import capture

    cfg = CaptureConfig(
        sites=args.sites, entropy=args.entropy, n_sampled=args.n_sampled, seed=args.seed,
        per_token_stride=args.per_token_stride,
        per_token_segment=args.per_token_segment, dtype=args.store_dtype,
        batch_tokens=args.batch_tokens, query_chunk=args.query_chunk, backend=args.backend,
        chat_template=args.chat_template)
    from .launch import DEFAULT_TIMEOUT_S

    spec = ModelSpec(args.model, revision=args.revision, dtype=args.dtype,
                     chat_template=args.chat_template, device_map=args.device_map)
    capture(spec, args.traces, args.out, cfg, device=args.device, limit=args.limit,
            progress=not args.no_progress, log=lambda s: print(s, flush=True),
            gpus_per_rank=args.gpus_per_rank, timeout_s=args.dist_timeout or DEFAULT_TIMEOUT_S)
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..store import open_cache, parts_dir
    from ..store.shards import list_parts, shard_summary

    with open_cache(args.file) as c:
        print(repr(c))
        for k, v in c.meta.items():
            if k != "shards":
                print(f"  {k}: {v}")
        df = c.items
        size = Path(args.file).stat().st_size
        shards = shard_summary(c.meta)
        if shards:
            data = sum(p.path.stat().st_size for p in list_parts(args.file))
            print(shards)
            print(f"  file size: {size / 2**20:,.2f} MiB index + {data / 2**20:,.1f} MiB in "
                  f"{parts_dir(args.file).name}/")
        else:
            print(f"  file size: {size / 2**20:,.1f} MiB")
        if len(df):
            print(f"  tokens per item: mean {df.n_tokens.mean():.0f}, max {df.n_tokens.max()}; "
                  f"truncated traces: {int(df.truncated.sum())}")
            print(f"  tasks: {df.task.value_counts().to_dict()}")
            print(f"  trace models: {df.trace_model.value_counts().to_dict()}")
    return 0


def _consolidate(args: argparse.Namespace) -> int:
    from ..locking import writer_lock
    from ..store.merge import _check_readable
    from ..store.vds import assemble, pack

    with writer_lock(Path(args.file), "capture"):
        if Path(args.file).exists():
            _check_readable(Path(args.file))  # not a cache: one line, file untouched
        (pack if args.copy else assemble)(args.file)
    print(f"consolidated {args.file}" + (" into one self-contained file" if args.copy else
                                         " (virtual datasets over its shards)"))
    return 0
