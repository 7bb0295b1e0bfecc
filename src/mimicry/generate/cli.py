"""``mimicry generate`` (behavioural runs) and ``mimicry traces import`` (outside traces)."""

from __future__ import annotations

import argparse
import json

from ..errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``generate`` and ``traces import`` sub-commands."""
    g = sub.add_parser(
        "generate", help="run a model over a task suite and write one trace per item",
        description="Run a model over a task suite (greedy by default) and append one JSONL "
                    "trace per item to --out. Re-running the same command resumes.")
    g.add_argument("--model", required=True, help="hub id or local folder (openai: the "
                   "model name the server serves)")
    g.add_argument("--tasks", required=True, help="built-in suite name or items CSV/JSONL")
    g.add_argument("--out", required=True, help="traces JSONL (appended; resumable)")
    g.add_argument("--backend", choices=["hf", "openai"], default="hf",
                   help="hf: transformers.generate here; openai: any OpenAI-compatible server")
    g.add_argument("--name", help="model name written in traces (default: last path part)")
    g.add_argument("--batch-size", type=int, default=8, help="hf: prompts per generate call")
    g.add_argument("--max-new-tokens", type=int, default=4096,
                   help="token budget per item (reasoning + answer); longer traces are cut")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (recorded in each trace)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass")
    g.add_argument("--chat-template", default="auto",
                   help="auto (the tokenizer's, if any), none (raw prompt), or a Jinja string")
    g.add_argument("--limit", type=int, help="only the first N items of the suite")
    g.add_argument("--device", help="hf: cpu, cuda, cuda:1 ...")
    g.add_argument("--dtype", help="hf: float32, bfloat16, float16, auto")
    g.add_argument("--revision", help="hf: hub revision (commit or tag) to pin")
    g.add_argument("--base-url", help="openai: server URL, e.g. http://localhost:8000/v1")
    g.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight")
    g.add_argument("--timeout", type=float, default=600.0, help="openai: seconds per request")
    g.add_argument("--retries", type=int, default=5, help="openai: retries on transient errors")
    g.add_argument("--tokenizer", help="openai: local tokenizer to count reasoning tokens")
    g.add_argument("--extra-body", help="openai: JSON merged into each request body, e.g. "
                   "'{\"skip_special_tokens\": false}'")
    g.add_argument("--after-reasoning", metavar="TRACES",
                   help="hf: do not generate reasoning; answer after the reasoning in TRACES "
                        "(e.g. `mimicry scramble` of the model's own traces), greedily, for "
                        "the reliance probe")
    g.add_argument("--max-answer-tokens", type=_budget, default="auto",
                   help="with --after-reasoning: tokens for each answer, or auto (default: "
                        "max(64, 2 x the longest own answer in TRACES))")
    g.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    g.set_defaults(func=_cmd_generate)

    t = sub.add_parser("traces", help="work with trace files (import traces made elsewhere)")
    tsub = t.add_subparsers(dest="traces_command", metavar="ACTION")
    imp = tsub.add_parser(
        "import", help="validate a CSV/JSONL of outside traces and write trace JSONL",
        description="Minimal rows: item_id, model, and reasoning_tokens (or reasoning text "
                    "plus --tokenizer); optional correct, answer_text (scored with --tasks).")
    imp.add_argument("file", help="CSV or JSONL with one trace per row")
    imp.add_argument("--out", required=True, help="trace JSONL to write")
    imp.add_argument("--tasks", help="suite name or items file: check ids, fill task, score")
    imp.add_argument("--tokenizer", help="tokenizer to count 'reasoning' text")
    imp.add_argument("--model", help="model name for rows without one")
    imp.add_argument("--force", action="store_true", help="replace --out if it exists")
    imp.set_defaults(func=_cmd_import)
    t.set_defaults(func=lambda args: (t.print_help(), 0)[1])


def _load_suite(name: str):
    from ..tasks import registry

    return registry.load_suite(name)


def _budget(text: str) -> int | str:
    """Return ``"auto"`` or the positive int in ``text`` (argparse type of --max-answer-tokens)."""
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number >= 1, got {text!r}")
    return n


def _cmd_generate(args: argparse.Namespace) -> int:
    from ..models import ModelSpec
    from .generation import generate

    if args.after_reasoning is not None:
        return _cmd_after(args)
    if args.max_answer_tokens != "auto":
        raise InputError("--max-answer-tokens is only used with --after-reasoning",
                         fix="drop it, or add --after-reasoning TRACES")
    if args.backend == "hf":
        for opt in ("base_url", "tokenizer", "extra_body"):
            if getattr(args, opt):
                raise InputError(f"--{opt.replace('_', '-')} is only used with --backend "
                                 "openai", fix="drop it, or add --backend openai")
        kwargs: dict = {}
    else:
        extra = None
        if args.extra_body:
            try:
                extra = json.loads(args.extra_body)
            except json.JSONDecodeError as e:
                raise InputError(f"--extra-body is not valid JSON ({e.msg})",
                                 fix="pass a JSON object, e.g. '{\"top_k\": 1}'") from None
            if not isinstance(extra, dict):
                raise InputError("--extra-body must be a JSON object")
        kwargs = {"base_url": args.base_url, "concurrency": args.concurrency,
                  "timeout": args.timeout, "max_retries": args.retries,
                  "tokenizer": args.tokenizer, "extra_body": extra}
    suite = _load_suite(args.tasks)
    spec = ModelSpec(name_or_path=args.model, revision=args.revision)
    generate(spec, suite, args.out, backend=args.backend, batch_size=args.batch_size,
             max_new_tokens=args.max_new_tokens, seed=args.seed,
             temperature=args.temperature, top_p=args.top_p, chat_template=args.chat_template,
             device=args.device, dtype=args.dtype, progress=not args.quiet, limit=args.limit,
             name=args.name, **kwargs)
    return 0


def _cmd_after(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..models import ModelSpec
    from .forced import answer_after

    if args.backend != "hf":
        raise InputError("--after-reasoning needs local weights (hf backend): the answer is "
                         "decoded after a reasoning the model did not write",
                         fix="drop --backend openai and give --model a local folder or hub id")
    if args.temperature != 0 or args.limit is not None:
        raise InputError("--after-reasoning answers every given trace greedily: --temperature "
                         "and --limit do not apply", fix="drop them")
    from ..preflight import check_chat_template, check_device, check_output_file

    check_output_file(args.out)
    check_device(args.device)
    check_chat_template(args.chat_template)
    if not Path(args.after_reasoning).is_file():
        raise InputError("traces to answer after not found", file=args.after_reasoning,
                         fix="give a traces JSONL, e.g. the output of `mimicry scramble`")
    suite = _load_suite(args.tasks)
    spec = ModelSpec(name_or_path=args.model, revision=args.revision)
    res = answer_after(spec, args.after_reasoning, suite, args.out, batch_size=args.batch_size,
                       max_answer_tokens=args.max_answer_tokens,
                       chat_template=args.chat_template, device=args.device, dtype=args.dtype,
                       name=args.name, progress=not args.quiet)
    if not args.quiet:
        s = res.summary
        print(json.dumps({k: s[k] for k in ("model", "items", "generated", "skipped",
                                            "accuracy", "skipped_truncated", "not_in_suite",
                                            "length_finished", "out")}))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from ..preflight import check_output_file
    from .importer import import_traces, imported_summary

    check_output_file(args.out, overwrite=args.force)
    suite = _load_suite(args.tasks) if args.tasks else None
    traces = import_traces(args.file, args.out, suite=suite, tokenizer=args.tokenizer,
                           model=args.model, overwrite=args.force)
    print(f"imported {imported_summary(traces)} -> {args.out}")
    return 0
