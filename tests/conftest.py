"""Shared fixtures: a locally trained tokenizer and tiny random-init models saved to disk."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A small byte-level BPE tokenizer with a chat template (built locally, no download)."""
    from mimicry.testing import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """Factory: ``tiny_model_dir("qwen2")`` -> folder with a saved random-init tiny model."""
    from mimicry.testing import build_tiny_model

    made: dict[tuple, str] = {}

    def make(arch: str = "qwen2", seed: int = 0, **overrides):
        key = (arch, seed, tuple(sorted(overrides.items())))
        if key not in made:
            d = tmp_path_factory.mktemp(f"tiny-{arch}")
            build_tiny_model(arch, d, tokenizer=tiny_tokenizer, seed=seed, **overrides)
            made[key] = str(d)
        return made[key]

    return make
