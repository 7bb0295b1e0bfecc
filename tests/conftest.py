"""Shared fixtures: a locally trained tokenizer and tiny random-init models saved to disk."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads; on a busy 2-core box they thrash."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


def build_scripted_model(arch, tokenizer, sequences, out_dir, seed=0):
    """Save a tiny ``arch`` model whose greedy decoding follows fixed token chains.

    ``sequences``: lists of token ids; every id is followed by the next one in its list (a
    bigram model: attention and MLP outputs are zeroed, ``lm_head`` maps each token's final
    hidden state to its successor). Chains may merge but must not branch. Used to test the
    reasoning/answer split on real ``generate`` output, since random models rarely emit
    ``</think>``.
    """
    import torch

    from mimicry.testing import build_tiny_model

    succ: dict[int, int] = {}
    for seq in sequences:
        for a, b in zip(seq[:-1], seq[1:]):
            if succ.setdefault(a, b) != b:
                raise ValueError(f"token {a} would need two successors ({succ[a]}, {b})")
    model, _ = build_tiny_model(arch, tokenizer=tokenizer, seed=seed)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        head = torch.zeros_like(model.lm_head.weight)
        for a, b in succ.items():
            head[b] += emb[a] / emb[a].norm()
        model.lm_head.weight.copy_(head * 4.0)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    model.generation_config.save_pretrained(str(out_dir))
    return str(out_dir)


@pytest.fixture(scope="session")
def scripted_model_dir(tmp_path_factory):
    """Factory: ``scripted_model_dir(arch, [(prompt_end, completion), ...], open_think=False)``.

    Returns a folder with a tiny model that, after a prompt whose last token is that of
    ``prompt_end``, greedily writes ``completion`` (text, tokenised canonically; end it with
    ``<|im_end|>`` to stop). The tokenizer's chat template opens ``<think>`` if ``open_think``.
    """
    from mimicry.testing import build_tokenizer

    made: dict[tuple, str] = {}

    def make(arch: str, chains: list[tuple[str, str]], open_think: bool = False) -> str:
        key = (arch, tuple(chains), open_think)
        if key not in made:
            tok = build_tokenizer(open_think=open_think)
            seqs = [tok(start, add_special_tokens=False)["input_ids"][-1:]
                    + tok(comp, add_special_tokens=False)["input_ids"] for start, comp in chains]
            d = tmp_path_factory.mktemp(f"scripted-{arch}")
            made[key] = build_scripted_model(arch, tok, seqs, d)
        return made[key]

    return make
