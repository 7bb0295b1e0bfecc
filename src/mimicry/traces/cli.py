"""``mimicry scramble TRACES --out FILE``: a format-preserving content scramble of a traces file
(or, with ``--control``, a reliance control: the reasoning emptied or replaced by a filler)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``scramble`` sub-command."""
    s = subparsers.add_parser(
        "scramble", help="format-preserving content scramble of a traces file (for ablations)",
        description="Keep <think> tags, lines, step markers and lengths; destroy content.")
    s.add_argument("traces", help="traces JSONL to scramble")
    s.add_argument("--out", required=True,
                   help="scrambled traces JSONL (name it *__scrambled.jsonl: align skips it)")
    s.add_argument("--mode", default="within", choices=["within", "across"],
                   help="shuffle words within each trace, or swap content across traces")
    s.add_argument("--seed", type=int, default=0, help="shuffle seed (recorded)")
    s.add_argument("--tokenizer", help="tokenizer path/name to recount reasoning_tokens "
                                       "(with --control filler: to match lengths exactly)")
    s.add_argument("--control", choices=["empty", "filler"],
                   help="write a reliance control instead of a scramble: the reasoning emptied, "
                        "or replaced by a content-free filler of the same length")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=_scramble)


def _scramble(args: argparse.Namespace) -> int:
    from ..preflight import check_output_file
    from .scramble import scramble_file

    check_output_file(args.out, overwrite=args.force)
    tok = None
    if args.tokenizer:
        from ..models import ModelSpec, load_tokenizer

        tok = load_tokenizer(ModelSpec(args.tokenizer))
    if args.control:
        from .controls import control_file
        from .trace import read_traces

        control_file(args.traces, args.out, args.control, tokenizer=tok)
        print(f"{args.control} control of {len(read_traces(args.out))} traces -> {args.out}")
        return 0
    n = scramble_file(args.traces, args.out, mode=args.mode, seed=args.seed, tokenizer=tok)
    print(f"scrambled {n} traces ({args.mode}, seed {args.seed}) -> {args.out}")
    return 0
