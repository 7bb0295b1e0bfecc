"""Up-front checks every command runs before it loads a model or writes a byte.

Each check raises one :class:`~mimicry.errors.MimicryError` line naming the input, the
problem and the fix: an output path that is a directory, lies under a regular file, or is on
a read-only filesystem; an existing output that would be overwritten without ``--force``; a
model folder without config, weights or tokenizer files; a device torch does not know; a chat
template that is not valid Jinja.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError, MimicryError, ModelNotFoundError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "tiktoken.model")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def _first_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, path: Path, flag: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mimicry-write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise MimicryError(f"{flag} is not writable ({e.strerror or e} in {folder})", file=path,
                           fix=f"choose a {flag} on a writable filesystem") from None


def check_output_file(path: str | Path, flag: str = "--out", *, overwrite: bool | None = None
                      ) -> Path:
    """Return ``path`` after checking a file can be written there; raise a one-line error.

    ``overwrite``: None = appending/resuming is fine; False = an existing file is refused
    (pass ``--force``); True = it will be replaced. Creates nothing that stays.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{flag} is a directory", file=p,
                         fix=f"give a file path for {flag}, e.g. {p / 'out.jsonl'}")
    if p.exists() and overwrite is False:
        raise InputError(f"{flag} already exists", file=p,
                         fix="choose another path or pass --force to replace it")
    anc = _first_existing(p.parent)
    if not anc.is_dir():
        raise InputError(f"{flag} lies under '{anc}', which is a file, not a folder", file=p,
                         fix=f"choose a {flag} in a folder")
    _probe_writable(anc, p, flag)
    return p


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Return ``path`` after checking a folder can be created/written there (nothing kept)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{flag} exists and is not a folder", file=p,
                         fix="pass a new or existing folder")
    anc = _first_existing(p)
    if not anc.is_dir():
        raise InputError(f"{flag} lies under '{anc}', which is a file, not a folder", file=p,
                         fix=f"choose a {flag} in a folder")
    _probe_writable(anc, p, flag)
    return p


def check_model_folder(path: str | Path, *, weights: bool = True) -> None:
    """Raise :class:`ModelNotFoundError` unless a local model folder is complete.

    Complete: ``config.json``, a tokenizer (``tokenizer.json`` or a vocabulary file), and
    (with ``weights``) at least one weights file. Hub ids (no such folder) are not checked.
    """
    p = Path(path).expanduser()
    if not p.is_dir():
        return
    fix = ("point at the whole folder written by save_pretrained (model and tokenizer), or "
           "download it again: huggingface-cli download NAME --local-dir DIR")
    if not (p / "config.json").is_file():
        raise ModelNotFoundError(f"model folder '{path}' has no config.json", fix=fix)
    names = {q.name for q in p.iterdir()}
    if not any(t in names for t in TOKENIZER_FILES):
        raise ModelNotFoundError(
            f"model folder '{path}' has no tokenizer files (none of "
            f"{', '.join(TOKENIZER_FILES[:4])})", fix=fix)
    if weights and not any(n.endswith(WEIGHT_SUFFIXES) for n in names):
        raise ModelNotFoundError(f"model folder '{path}' has no weights files "
                                 "(*.safetensors or *.bin)", fix=fix)


def check_device(device: str | None) -> None:
    """Raise :class:`InputError` unless ``device`` is None or a device torch can use here."""
    if device is None:
        return
    import torch

    try:
        d = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"--device {device!r} is not a device torch knows",
                         fix="use cpu, cuda, cuda:N or mps") from None
    if d.type == "cuda":
        n = torch.cuda.device_count()
        if n == 0:
            raise InputError(f"--device {device!r}: no CUDA GPU is visible here",
                             fix="use --device cpu, or run where a GPU is visible")
        if d.index is not None and d.index >= n:
            raise InputError(f"--device {device!r}: only {n} CUDA GPU(s) are visible",
                             fix=f"use cuda:0 .. cuda:{n - 1}")
    elif d.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device!r}: MPS is not available here", fix="use cpu")
    elif d.type not in ("cpu", "cuda", "mps", "meta"):
        raise InputError(f"--device {device!r} is not supported", fix="use cpu, cuda or mps")


def check_chat_template(template: str | None, flag: str = "--chat-template") -> None:
    """Raise :class:`InputError` unless ``template`` is auto, none or a parsable Jinja string."""
    if template in (None, "auto", "none"):
        return
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment().parse(template)
    except TemplateSyntaxError as e:
        raise InputError(f"{flag} is not a valid Jinja template ({e.message}, line "
                         f"{e.lineno})", fix="fix the template, or use auto or none") from None
