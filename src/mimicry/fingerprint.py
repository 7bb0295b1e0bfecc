"""Model identity is the weights, not the name: fingerprints of weights and tokenizer files.

``model_identity(source, revision)`` returns ``{"weights_hash": ..., "tokenizer_files_hash":
...}`` for a local ``save_pretrained`` folder or a hub id already in the local Hugging Face
cache (never downloads). Caches record ``weights_hash`` in their root attrs and traces in
their ``meta``; a resume with other weights under the same name is refused.

How a weights file is hashed:
- a hub snapshot file is a symlink to a blob named by its content's SHA-256 (the LFS oid): that
  name is used, nothing is read;
- otherwise the file's SHA-256 is computed (once per process and file), in full when the
  model's weights total at most ``FULL_HASH_BYTES``; above that, the hash covers the file size,
  its first 1 MiB (the safetensors header: names, shapes, dtypes, offsets) and 256 blocks of
  64 KiB spread evenly over it (prefix ``sampled-``), so a 70B model is not read in full at
  every start. Any fine-tune or re-initialisation changes every block; an edit of a single
  weight of a huge local file might not (documented in docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .preflight import TOKENIZER_FILES, WEIGHT_SUFFIXES

FULL_HASH_BYTES = 4 << 30
_SHA = re.compile(r"^[0-9a-f]{64}$")
_MEMO: dict[tuple, str] = {}
TOKENIZER_EXTRA = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "merges.txt", "chat_template.jinja", "chat_template.json")


def _file_digest(path: Path, sampled: bool) -> str:
    real = Path(os.path.realpath(path))
    if _SHA.match(real.name):  # hub blob: named by its content hash
        return real.name
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns, sampled)
    if key in _MEMO:
        return _MEMO[key]
    h = hashlib.sha256()
    with open(real, "rb") as f:
        if not sampled:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(str(st.st_size).encode())
            h.update(f.read(1 << 20))
            for k in range(256):
                f.seek(st.st_size * k // 256)
                h.update(f.read(1 << 16))
    digest = ("sampled-" if sampled else "") + h.hexdigest()
    _MEMO[key] = digest
    return digest


def _combine(files: list[Path], sampled: bool) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\t{_file_digest(p, sampled)}\n".encode())
    return h.hexdigest()[:16]


def local_folder(source: str | Path, revision: str | None = None) -> Path | None:
    """Return the local folder holding ``source`` (a folder, or a cached hub snapshot), or None."""
    p = Path(source).expanduser()
    if p.is_dir():
        return p
    if str(source).startswith((".", "/", "~")) or str(source).count("/") > 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(source), revision=revision, local_files_only=True))
    except Exception:  # not cached (or not a hub id): unknown, never a download
        return None


def weights_hash(folder: str | Path) -> str:
    """Return a short hash of the weights files (and config.json) in a model folder."""
    folder = Path(folder)
    files = sorted(q for q in folder.iterdir()
                   if q.is_file() and q.name.endswith(WEIGHT_SUFFIXES)
                   and not q.name.startswith(("training_args", "optimizer", "scheduler", "rng")))
    total = sum(q.stat().st_size for q in files)
    extra = [folder / "config.json"] if (folder / "config.json").is_file() else []
    return _combine(files + extra, sampled=total > FULL_HASH_BYTES)


def tokenizer_files_hash(folder: str | Path) -> str:
    """Return a short hash of the tokenizer files (vocabulary, merges, template) in a folder."""
    folder = Path(folder)
    names = set(TOKENIZER_FILES) | set(TOKENIZER_EXTRA)
    files = sorted(q for q in folder.iterdir() if q.is_file() and q.name in names)
    return _combine(files, sampled=False)


def model_identity(source: str | Path, revision: str | None = None) -> dict[str, str]:
    """Return ``{"weights_hash", "tokenizer_files_hash"}`` ("" each when not available here)."""
    folder = local_folder(source, revision)
    if folder is None:
        return {"weights_hash": "", "tokenizer_files_hash": ""}
    return {"weights_hash": weights_hash(folder),
            "tokenizer_files_hash": tokenizer_files_hash(folder)}
