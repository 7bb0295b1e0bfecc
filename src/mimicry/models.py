"""Model specs and loading: a Hugging Face hub name, a local folder, or ``organism:ROLE``.

``organism:ROLE`` (``organism:teacher``, ``organism:student_mastery`` ...) names a committed
model-organism checkpoint; :class:`ModelSpec` resolves it to that folder, so it works
wherever a model is named (configs, the CLI, Python).

``load_model(spec)`` returns ``(model, tokenizer)`` in eval mode. It never forces eager
attention (SDPA is the default); pass ``attn_implementation="eager"`` only where attention
weights are needed (TransformerLens/nnsight parity paths).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import ModelNotFoundError
from .organism_paths import checkpoint_path  # organism:ROLE -> folder (raises listing roles)

Role = Literal["teacher", "student", "base", "control"]
ORGANISM_PREFIX = "organism:"

_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "auto": "auto",
}


@dataclass
class ModelSpec:
    """What to load and how.

    ``name_or_path``: hub id (``Qwen/Qwen2.5-Math-7B``) or local folder; ``role``: its part in
    a teacher/student/base comparison; ``revision``: hub revision (commit/tag) to pin;
    ``dtype``: ``float32``/``bfloat16``/``float16``/``auto``; ``device_map``: e.g. ``"auto"``
    to spread a 32B model over several GPUs, or a single device such as ``"cpu"``/``"cuda"``;
    ``chat_template``: ``"auto"`` (use the tokenizer's when it has one), ``"none"`` (raw
    prompt), or a Jinja template string; ``trust_remote_code``: off unless asked.
    ``organism:ROLE`` (``organism:teacher``, ``organism:student_mastery``...) names a model of
    the bundled model organism and resolves to its checkpoint folder.
    """

    name_or_path: str
    role: Role | None = None
    revision: str | None = None
    dtype: str = "auto"
    device_map: str | dict | None = None
    chat_template: str = "auto"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        self.name_or_path = resolve_name(self.name_or_path)

    @property
    def short_name(self) -> str:
        """Return the last path component (``DeepSeek-R1-Distill-Qwen-7B``)."""
        return Path(self.name_or_path.rstrip("/")).name

    @classmethod
    def coerce(cls, spec: ModelSpec | str, **kw: Any) -> ModelSpec:
        """Return ``spec`` as a ModelSpec (strings become ``ModelSpec(name_or_path=...)``)."""
        if isinstance(spec, ModelSpec):
            return spec
        return cls(name_or_path=str(spec), **kw)


def resolve_name(name: str) -> str:
    """Return ``name``, with ``organism:ROLE`` resolved to that organism model's folder."""
    name = str(name)
    if not name.startswith(ORGANISM_PREFIX):
        return name
    return str(checkpoint_path(name.removeprefix(ORGANISM_PREFIX)))


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).exists() or name.count("/") > 1


def resolve_dtype(dtype: str | Any):
    """Return a ``torch.dtype`` (or ``"auto"``) for a dtype name; raise on unknown names."""
    import torch

    if not isinstance(dtype, str):
        return dtype
    key = _DTYPES.get(dtype.lower())
    if key is None:
        raise ModelNotFoundError(f"unknown dtype {dtype!r}",
                                 fix=f"use one of {sorted(set(_DTYPES.values()))}")
    return key if key == "auto" else getattr(torch, key)


def check_model_source(spec: ModelSpec, *, weights: bool = False) -> None:
    """Raise :class:`ModelNotFoundError` early if a local path does not exist or is incomplete.

    A local folder needs config.json and tokenizer files (and weights, with ``weights``).
    """
    name = spec.name_or_path
    if _looks_like_path(name):
        p = Path(name).expanduser()
        if not p.exists():
            raise ModelNotFoundError(
                f"model path '{name}' does not exist",
                fix="pass an existing save_pretrained folder or a hub id like Qwen/Qwen2.5-7B")
        if p.is_dir() and not (p / "config.json").exists():
            raise ModelNotFoundError(
                f"model folder '{name}' has no config.json",
                fix="point at the folder written by save_pretrained (it holds config.json)")
        from .preflight import check_model_folder

        check_model_folder(p, weights=weights)


def load_tokenizer(spec: ModelSpec | str):
    """Return the tokenizer for ``spec`` with a pad token and left padding."""
    from transformers import AutoTokenizer

    spec = ModelSpec.coerce(spec)
    check_model_source(spec)
    try:
        tok = AutoTokenizer.from_pretrained(
            spec.name_or_path, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except OSError as e:
        raise _not_found(spec, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if spec.chat_template not in ("auto", "none"):
        tok.chat_template = spec.chat_template
    return tok


def load_model(spec: ModelSpec | str, *, attn_implementation: str | None = None,
               device: str | None = None, dtype: str | None = None):
    """Return ``(model, tokenizer)`` for ``spec``, in eval mode.

    ``attn_implementation`` defaults to the model's own (SDPA for current architectures);
    ``device`` moves a model loaded without ``device_map``; ``dtype`` overrides the spec's.
    """
    from transformers import AutoModelForCausalLM

    spec = ModelSpec.coerce(spec)
    check_model_source(spec, weights=True)
    tok = load_tokenizer(spec)
    kwargs: dict[str, Any] = {
        "revision": spec.revision,
        "trust_remote_code": spec.trust_remote_code,
        "dtype": resolve_dtype(dtype or spec.dtype),
    }
    if spec.device_map is not None:
        kwargs["device_map"] = spec.device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(spec.name_or_path, **kwargs)
    except OSError as e:
        raise _not_found(spec, e) from None
    if device is not None and spec.device_map is None:
        model.to(device)
    model.eval()
    return model, tok


def _not_found(spec: ModelSpec, err: Exception) -> ModelNotFoundError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelNotFoundError(
        f"cannot load model '{spec.name_or_path}' ({first[:160]})",
        fix=("check the name; if the hub is unreachable, download it elsewhere "
             "(huggingface-cli download NAME --local-dir DIR) and pass the local folder"))


def tokenizer_fingerprint(tok) -> dict[str, str]:
    """Return short hashes of the tokenizer's vocabulary and chat template (for cache attrs)."""
    vocab = tok.get_vocab()
    h = hashlib.sha256()
    for k in sorted(vocab):
        h.update(f"{k}\t{vocab[k]}\n".encode())
    tmpl = getattr(tok, "chat_template", None) or ""
    if isinstance(tmpl, dict):
        tmpl = repr(sorted(tmpl.items()))
    return {
        "tokenizer_hash": h.hexdigest()[:16],
        "chat_template_hash": hashlib.sha256(str(tmpl).encode()).hexdigest()[:16],
    }
