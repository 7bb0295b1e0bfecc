"""The v2 organism's word-level tokenizer: v1's vocabulary plus the v2 families' words.

Added to :func:`mimicry.organism.tokenizer.vocabulary`: the family heads (``add``, ``ptr``,
``find``), the stop bar ``|``, comparison results ``lo``/``hi`` and the letters ``a``..``l``.
One token per whitespace word, no chat template (prompts are fed raw), as in v1.
"""

from __future__ import annotations

from pathlib import Path

from ..tokenizer import SPECIALS
from ..tokenizer import vocabulary as v1_vocabulary
from .families import HEAD, LETTERS


def vocabulary() -> list[str]:
    """Return the token strings in id order (v1's, then the v2 words)."""
    return v1_vocabulary() + [*HEAD.values(), "|", "lo", "hi", *LETTERS]


def build_tokenizer(out_dir: str | Path | None = None):
    """Return the v2 organism ``PreTrainedTokenizerFast`` (saved to ``out_dir`` when given)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>",
        bos_token=None, padding_side="left",
        additional_special_tokens=[s for s in SPECIALS if s not in
                                   ("<pad>", "<unk>", "<|im_end|>")])
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok
