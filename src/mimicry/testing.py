"""Tiny models and tokenizers built locally from configs, for tests and benchmarks.

No download is ever needed: :func:`build_tokenizer` trains a small byte-level BPE tokenizer
on a fixed corpus (deterministic) with a Qwen-style chat template and ``<think>``/``</think>``
as single tokens; :func:`build_tiny_model` writes a random-init model of a chosen
architecture next to it with ``save_pretrained``, so it loads through
:func:`mimicry.models.load_model` like any hub model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<pad>"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# A template that opens <think> for the model, as DeepSeek-R1-Distill's does.
CHAT_TEMPLATE_OPEN_THINK = CHAT_TEMPLATE.replace(
    "<|im_start|>assistant\n{% endif %}", "<|im_start|>assistant\n<think>\n{% endif %}")

_CORPUS = [
    "The mall is north of the station. The station is north of the bar. "
    "The bar is _____ of the mall. north south east west north-east north-west south-east "
    "south-west",
    "All models are managers. Some clerks are not divers. No linguists are carpenters. "
    "Therefore, what follows? No valid conclusion.",
    "A is left of B. B is left of C. Is A left of C? true false yes no",
    "Let me think step by step. First, compose the relations. So the answer is: 0123456789",
    "Compute 12 + 7 * 3 - 5 = ? carry step add subtract multiply result answer",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?()[]{}<>=+-*/_'\"\n\t",
]


def build_tokenizer(out_dir: str | Path | None = None, *, vocab_size: int = 512,
                    open_think: bool = False):
    """Return a small ``PreTrainedTokenizerFast`` (saved to ``out_dir`` when given).

    Byte-level BPE, so any text round-trips; special tokens as in :data:`SPECIAL_TOKENS`;
    left padding; chat template that opens ``<think>`` when ``open_think``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<pad>",
        bos_token=None, unk_token=None, padding_side="left",
        additional_special_tokens=["<|im_start|>", "<think>", "</think>", "<|endoftext|>"])
    tok.chat_template = CHAT_TEMPLATE_OPEN_THINK if open_think else CHAT_TEMPLATE
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


_ARCH = {
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
}


def tiny_config(arch: str, vocab_size: int, **overrides: Any):
    """Return a tiny config of ``arch`` (qwen2, llama, qwen3, mistral, gemma2) with GQA."""
    import transformers

    cfg_name, _ = _ARCH[arch]
    kw: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    if arch in ("qwen3", "gemma2"):
        kw["head_dim"] = 16
    kw.update(overrides)
    return getattr(transformers, cfg_name)(**kw)


def build_tiny_model(arch: str = "qwen2", out_dir: str | Path | None = None, *, tokenizer=None,
                     seed: int = 0, dtype: str = "float32", **overrides: Any):
    """Return ``(model, tokenizer)``: a random-init tiny ``arch`` model, saved when ``out_dir``.

    Weights are drawn with ``torch.manual_seed(seed)`` and scaled up a little so that greedy
    decoding is not stuck on one token. Saved folders load with ``mimicry.models.load_model``.
    """
    import torch
    import transformers

    tok = tokenizer if tokenizer is not None else build_tokenizer()
    cfg = tiny_config(arch, vocab_size=len(tok), **overrides)
    cfg.pad_token_id = tok.pad_token_id
    cfg.eos_token_id = tok.eos_token_id
    cfg.bos_token_id = None
    torch.manual_seed(seed)
    _, model_name = _ARCH[arch]
    model = getattr(transformers, model_name)(cfg).to(getattr(torch, dtype)).eval()
    if out_dir is not None:
        out_dir = Path(out_dir)
        model.save_pretrained(str(out_dir))
        tok.save_pretrained(str(out_dir))
        if model.generation_config is not None:
            model.generation_config.save_pretrained(str(out_dir))
    return model, tok
