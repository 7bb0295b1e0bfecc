"""The organism's word-level tokenizer: a fixed vocabulary, one token per whitespace word.

Vocabulary: special tokens (``<pad>``, ``<unk>``, ``<|im_start|>``, ``<|im_end|>``,
``<|endoftext|>``, ``<think>``, ``</think>``), chat roles, numbers ``0``-``18``,
operations ``+0``..``+9``, step markers ``s0``..``s12`` and ``=``. No chat
template: :func:`mimicry.traces.prompt.render_prompt` feeds the raw prompt (fewer tokens to train
on; the chat roles stay in the vocabulary so a template can be added). Decoding joins tokens
with single spaces, so ``decode(encode(text))`` returns ``text`` whenever words are space
separated.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<pad>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>",
            "</think>"]


def vocabulary() -> list[str]:
    """Return the token strings in id order."""
    words = ["user", "assistant", "system", "="]
    words += [str(d) for d in range(19)]
    words += [f"+{d}" for d in range(10)]
    words += [f"s{j}" for j in range(13)]
    return SPECIALS + words


def build_tokenizer(out_dir: str | Path | None = None, words: list[str] | None = None):
    """Return the organism ``PreTrainedTokenizerFast`` (saved to ``out_dir`` when given).

    ``words``: the vocabulary in id order (default :func:`vocabulary`; organism v2 passes its
    own, which starts with this one).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(words or vocabulary())}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>",
        bos_token=None, padding_side="left",
        additional_special_tokens=["<|im_start|>", "<think>", "</think>", "<|endoftext|>"])
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok
