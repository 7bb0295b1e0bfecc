"""Helpers of the fault-injection tests: the real CLI in a subprocess, real mounts, real flips.

Every fault is produced for real — another process holding the lock or racing, a tmpfs of a
few MiB, ``RLIMIT_FSIZE`` set in the child (``ulimit -f``), bytes flipped in a file on disk —
never by monkeypatching an exception.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c",
       "import sys; from experiments.cli import main; sys.exit(main())"]  # as the console script
ITEMS = [(f"a{i}", "demo", 900 + 100 * i, f"Where is the bar {i}?", "north") for i in range(40)]


def env() -> dict:
    """Return the environment of a CLI child: one thread, offline, unbuffered."""
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def run_cli(*args, fsize: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``mimicry ARGS`` in a child (with ``RLIMIT_FSIZE = fsize`` bytes if given)."""
    pre = None
    if fsize is not None:
        def pre():  # noqa: E306 - runs in the child before exec
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env(),
                          preexec_fn=pre, timeout=timeout)


def _interruptible() -> None:
    """Give the child a terminal's SIGINT: default disposition, not blocked (runs before exec).

    A test process started as a background job without job control (``make test > log &``,
    nohup) ignores SIGINT, and a child inherits that: Python then installs no
    KeyboardInterrupt handler and a Ctrl-C sent by the test would be silently ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def start_cli(*args) -> subprocess.Popen:
    """Start ``mimicry ARGS`` in a child that a SIGINT interrupts; stdout, stderr are pipes."""
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(),
                            preexec_fn=_interruptible)


def assert_one_line_error(p, *words: str) -> str:
    """Assert exit 2, exactly one ``error:`` line (containing ``words``) and no traceback."""
    err = p.stderr if isinstance(p.stderr, str) else ""
    assert p.returncode == 2, (p.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def write_items(path: Path, n: int = 8) -> Path:
    """Write an items CSV with ``n`` items (prompts, answers, human RTs)."""
    rows = ["item_id,task,human_rt_ms,prompt,answer"]
    rows += [",".join(map(str, it)) for it in ITEMS[:n]]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_traces(path: Path, n: int = 12, model: str = "teacher") -> Path:
    """Write ``n`` traces with reasoning text of varying length (seeded by position)."""
    words = "the mall is north of station bar south east west step first answer so".split()
    with open(path, "w") as f:
        for i in range(n):
            r = " ".join(words[(i * 7 + j) % len(words)] for j in range(5 + 3 * i))
            f.write(json.dumps(dict(item_id=f"q{i}", model=model, task="demo",
                                    prompt=f"Item {i}?", reasoning=r, answer_text="north",
                                    reasoning_tokens=len(r.split()))) + "\n")
    return path


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m", ro: bool = False):
    """Mount a real tmpfs of ``size`` at ``path`` (read-only with ``ro``); skip if not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def leftovers(folder: Path) -> list[str]:
    """Return temp files left anywhere under ``folder`` (``*.tmp``)."""
    return sorted(str(p) for p in folder.rglob("*.tmp"))
