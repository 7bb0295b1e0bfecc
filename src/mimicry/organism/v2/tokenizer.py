"""The v2 organism's word-level tokenizer: v1's vocabulary plus the v2 families' words.

Added to :func:`mimicry.organism.tokenizer.vocabulary`: the family heads (``add``, ``ptr``,
``find``), the stop bar ``|``, comparison results ``lo``/``hi``, the letters ``a``..``l`` and
the lookup pair tokens ``A:a``..``L:9`` (a key with its value; after the letters: ids of the
earlier words unchanged).
One token per whitespace word, no chat template (prompts are fed raw), as in v1.
"""

from __future__ import annotations

from pathlib import Path

from ..tokenizer import build_tokenizer as v1_build_tokenizer
from ..tokenizer import vocabulary as v1_vocabulary
from .families import HEAD, LETTERS, PAIRS


def vocabulary() -> list[str]:
    """Return the token strings in id order (v1's, then the v2 words)."""
    return v1_vocabulary() + [*HEAD.values(), "|", "lo", "hi", *LETTERS, *PAIRS]


def build_tokenizer(out_dir: str | Path | None = None):
    """Return the v2 organism ``PreTrainedTokenizerFast`` (saved to ``out_dir`` when given)."""
    return v1_build_tokenizer(out_dir, words=vocabulary())
