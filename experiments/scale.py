"""Scale-out settings of an experiment: the capture launcher and the reliance backend.

``[capture]`` ``ranks_per_node`` × ``nodes`` data-parallel ranks (``torchrun``), each with
``gpus_per_rank`` GPUs for a ``device_map``-split model; ``[reliance] backend = "openai"``
answers through the ``[generation]`` server's ``/v1/completions`` instead of local weights.
This module (runner side) validates them, launches a one-node capture under torchrun from the runner,
prints the command for several nodes, and adds the per-rank cost to the dry run.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from pathlib import Path

from mimicry.errors import InputError, MimicryError

log = logging.getLogger(__name__)
LAUNCH_FIELDS = ("ranks_per_node", "nodes", "gpus_per_rank")  # change no stored number
RELIANCE_BACKENDS = ("hf", "openai")


def validate(cfg, source: str) -> None:
    """Raise :class:`InputError` for a bad launcher or reliance-backend setting of ``cfg``."""
    cap, rel = cfg.capture, cfg.reliance
    for k in LAUNCH_FIELDS:
        v = getattr(cap, k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"[capture] {k} must be a whole number >= 1, got {v!r}",
                             file=source, fix=f"e.g. {k} = 1")
    if rel.backend not in RELIANCE_BACKENDS:
        raise InputError(f"[reliance] backend '{rel.backend}' is not valid", file=source,
                         fix="use 'hf' (local weights) or 'openai' (the [generation] server)")
    if rel.backend == "openai" and not cfg.generation.base_url:
        raise InputError("[reliance] backend = 'openai' needs [generation] base_url",
                         file=source, fix="e.g. base_url = 'http://localhost:8000/v1'")


def world(cfg) -> int:
    """Return the number of capture ranks of ``cfg`` (ranks_per_node × nodes)."""
    return cfg.capture.ranks_per_node * cfg.capture.nodes


def capture_argv(spec, traces: Path, out: Path, conf) -> list[str]:
    """Return the ``mimicry capture`` arguments that reproduce one capture job."""
    argv = ["capture", "--model", spec.name_or_path, "--traces", str(traces), "--out", str(out),
            "--sites", ",".join(conf.sites), "--entropy", conf.entropy,
            "--n-sampled", str(conf.n_sampled), "--seed", str(conf.seed),
            "--per-token-stride", str(conf.per_token_stride), "--backend", conf.backend,
            "--store-dtype", conf.dtype, "--batch-tokens", str(conf.batch_tokens),
            "--query-chunk", str(conf.query_chunk), "--dtype", str(spec.dtype or "auto"),
            "--chat-template", conf.chat_template, "--no-progress"]
    if spec.revision:
        argv += ["--revision", spec.revision]
    if isinstance(spec.device_map, str):
        argv += ["--device-map", spec.device_map]
    return argv


def launch_capture(cfg, spec, traces: Path, out: Path, conf) -> str | None:
    """Run one capture job under torchrun on this node; return a note, or None when done.

    Several nodes cannot be started from here: the note then holds the command to run on
    every node (same command, rank-0 node's address as rendezvous endpoint).
    """
    from mimicry.capture.launch import torchrun_command

    cap = cfg.capture
    argv = capture_argv(spec, traces, out, conf)
    if cap.gpus_per_rank > 1:
        argv += ["--gpus-per-rank", str(cap.gpus_per_rank)]
    if cap.nodes > 1:
        cmd = torchrun_command([shlex.quote(a) for a in argv], cap.ranks_per_node, cap.nodes)
        return (f"{out.name}: [capture] nodes = {cap.nodes}: run on every node, then re-run "
                f"this stage (it finds the cache complete): {cmd}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", str(cap.ranks_per_node), "-m", "mimicry", *argv]
    log.info("launching %s", " ".join(shlex.quote(c) for c in cmd))
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        raise MimicryError(f"torchrun capture of {out.name} exited with status {rc}",
                           fix="see the ranks' messages above; finished items are kept and "
                               "re-running the stage resumes")
    return None


def reliance_kwargs(cfg) -> dict:
    """Return the answer_after keywords of the reliance backend (none for ``hf``)."""
    if cfg.reliance.backend != "openai":
        return {}
    return {"backend": "openai", "base_url": cfg.generation.base_url,
            "concurrency": cfg.generation.concurrency}
