"""Architecture shapes of the hub models the experiments use, so estimates need no download.

``shape_for(name)`` returns an :class:`ArchShape` for a known hub id; ``shape_from_config_json``
reads a local ``config.json`` (a ``save_pretrained`` folder) instead. Parameter counts are
computed from the shapes (embeddings, attention with optional q/k/v bias, gated MLP, RMSNorms,
untied LM head), not typed in; tests check them against the published sizes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mimicry.errors import InputError


@dataclass(frozen=True)
class ArchShape:
    """The numbers that decide memory and disk: layers, widths, heads, vocabulary.

    ``layers``: transformer blocks; ``hidden``: d_model; ``heads`` / ``kv_heads``: query and
    key/value heads (GQA); ``head_dim``: per-head width; ``intermediate``: MLP width;
    ``vocab``: embedding rows; ``tied``: LM head shares the embedding; ``qkv_bias``: Qwen2-style
    biases on q/k/v; ``max_positions``: the context the config declares.
    """

    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    head_dim: int
    tied: bool
    qkv_bias: bool
    max_positions: int

    @property
    def params(self) -> int:
        """Return the parameter count implied by the shapes (exact for Qwen2/Llama blocks)."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        q_out = self.heads * self.head_dim
        attn = h * q_out + 2 * h * kv + q_out * h
        if self.qkv_bias:
            attn += q_out + 2 * kv
        mlp = 3 * h * self.intermediate
        norms = 2 * h
        per_layer = attn + mlp + norms
        embed = self.vocab * h
        head = 0 if self.tied else self.vocab * h
        return embed + self.layers * per_layer + h + head

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """Return the KV-cache bytes one token costs across all layers (K and V)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value


def _qwen2(layers, hidden, heads, kv, inter, vocab, tied, max_pos) -> ArchShape:
    return ArchShape("qwen2", layers, hidden, heads, kv, inter, vocab, hidden // heads, tied,
                     True, max_pos)


def _llama(layers, hidden, heads, kv, inter, vocab, tied, max_pos) -> ArchShape:
    return ArchShape("llama", layers, hidden, heads, kv, inter, vocab, hidden // heads, tied,
                     False, max_pos)


# From each repository's config.json (layers, hidden, heads, kv heads, MLP, vocab, tying,
# max_position_embeddings).
KNOWN_SHAPES: dict[str, ArchShape] = {
    "Qwen/Qwen2.5-Math-1.5B": _qwen2(28, 1536, 12, 2, 8960, 151936, True, 4096),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": _qwen2(28, 1536, 12, 2, 8960, 151936, False,
                                                        131072),
    "agentica-org/DeepScaleR-1.5B-Preview": _qwen2(28, 1536, 12, 2, 8960, 151936, False,
                                                   131072),
    "Qwen/Qwen2.5-Math-7B": _qwen2(28, 3584, 28, 4, 18944, 152064, False, 4096),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": _qwen2(28, 3584, 28, 4, 18944, 152064, False,
                                                      131072),
    "Qwen/Qwen2.5-32B": _qwen2(64, 5120, 40, 8, 27648, 152064, False, 131072),
    "Qwen/QwQ-32B": _qwen2(64, 5120, 40, 8, 27648, 152064, False, 40960),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": _qwen2(64, 5120, 40, 8, 27648, 152064, False,
                                                       131072),
    "meta-llama/Llama-3.1-8B": _llama(32, 4096, 32, 8, 14336, 128256, False, 131072),
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": _llama(32, 4096, 32, 8, 14336, 128256, False,
                                                       131072),
    # Random-init shapes used by benchmarks/gpu.py (same blocks as the 1.5B/7B models).
    "Qwen2-1.5B-shape": _qwen2(28, 1536, 12, 2, 8960, 151936, True, 131072),
    "Qwen2-7B-shape": _qwen2(28, 3584, 28, 4, 18944, 152064, False, 131072),
}


def shape_from_config_json(path: str | Path) -> ArchShape:
    """Return the shape described by a Hugging Face ``config.json`` (file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        raise InputError("config.json not found", file=path,
                         fix="point local_path at a save_pretrained folder (it holds config.json)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg})", file=path, row=e.lineno) from None
    if "text_config" in cfg and "hidden_size" not in cfg:
        cfg = cfg["text_config"]
    try:
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        shape = ArchShape(
            model_type=str(cfg.get("model_type", "unknown")),
            layers=int(cfg["num_hidden_layers"]),
            hidden=hidden,
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            intermediate=int(cfg["intermediate_size"]),
            vocab=int(cfg["vocab_size"]),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            tied=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
            max_positions=int(cfg.get("max_position_embeddings") or 0),
        )
    except KeyError as e:
        raise InputError(f"config.json lacks {e.args[0]!r}", file=path,
                         fix="expected a decoder-only causal LM config") from None
    return shape


def shape_for(name: str, local_path: str | Path | None = None) -> ArchShape | None:
    """Return the shape for a model: from ``local_path``'s config.json, else the known table.

    Returns ``None`` for a hub id that is not in :data:`KNOWN_SHAPES` and has no local copy.
    """
    if local_path:
        return shape_from_config_json(local_path)
    return KNOWN_SHAPES.get(name)
