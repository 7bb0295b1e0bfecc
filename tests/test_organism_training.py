"""Training mechanics on a miniature config: folders, metadata, loading, determinism, CLI."""

from __future__ import annotations

import json

import pytest

from mimicry.organism.training import OrganismConfig, Shape


def _mini(**kw) -> OrganismConfig:
    return OrganismConfig(teacher=Shape(16, 2, 2, 1, 32), student=Shape(8, 1, 2, 1, 16),
                          pool_size=300, distill_size=40, teacher_steps=3, base_steps=3,
                          student_steps=2, batch_size=4, **kw)


@pytest.fixture(scope="module")
def mini_runs(tmp_path_factory):
    from mimicry.organism import train

    root = tmp_path_factory.mktemp("organism-mini")
    a = train(root / "a", seed=3, config=_mini(), progress=False)
    b = train(root / "b", seed=3, config=_mini(), progress=False)
    c = train(root / "c", seed=4, config=_mini(), progress=False,
              roles=("teacher", "base"))
    return a, b, c


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_every_role_is_saved_with_its_seed_and_config(mini_runs):
    from mimicry.organism import ROLES

    a, _, c = mini_runs
    assert list(a) == list(ROLES) and list(c) == ["teacher", "base"]
    for role, path in a.items():
        info = json.loads((path / "organism.json").read_text())
        assert info["role"] == role and info["seed"] == 3
        assert info["config"]["teacher_steps"] == 3 and info["train"]["steps"] > 0
    summary = json.loads((a["teacher"].parent / "train_summary.json").read_text())
    assert summary["seed"] == 3 and set(summary["roles"]) == set(ROLES)
    assert not list(a["teacher"].parent.glob(".*.tmp"))  # no half-written folders left


def test_saved_models_load_with_the_word_level_tokenizer(mini_runs):
    """Regression: a qwen2 config makes transformers 5 swap in Qwen2Tokenizer (mangling
    ``s1`` into ``1``); the organism's llama folders must round-trip its own vocabulary."""
    from mimicry.models import load_model
    from mimicry.organism.tokenizer import build_tokenizer

    a, _, _ = mini_runs
    model, tok = load_model(str(a["student_mastery"]))
    text = "<think> 3 s1 +4 7 7 s2 +7 14 4 </think> 4"
    ref = build_tokenizer()
    assert tok(text)["input_ids"] == ref(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in tok(text)["input_ids"]
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.vocab_size == len(ref)


def test_same_seed_same_weights_other_seed_other_weights(mini_runs):
    import torch

    a, b, c = mini_runs
    for role in a:
        wa, wb = _weights(a[role]), _weights(b[role])
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), role
    wa, wc = _weights(a["teacher"]), _weights(c["teacher"])
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_students_start_from_the_base(mini_runs):
    import torch

    a, _, _ = mini_runs
    base = _weights(a["base"])
    stu = _weights(a["student_mimic_length"])
    # same architecture, moved by a few optimiser steps, far closer to base than to a fresh init
    for k in base:
        assert base[k].shape == stu[k].shape
    diff = sum(float((base[k] - stu[k]).abs().sum()) for k in base)
    size = sum(float(base[k].abs().sum()) for k in base)
    assert 0 < diff < 0.5 * size
    assert not torch.equal(base["model.embed_tokens.weight"], stu["model.embed_tokens.weight"])


def test_cli_rejects_bad_arguments_without_output(tmp_path, capsys):
    from experiments.cli import main

    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["organism", "train", "--out", str(f)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["organism", "train", "--out", str(tmp_path / "o"), "--seed", "-1"]) == 2
    assert main(["organism", "train", "--out", str(tmp_path / "o"), "--threads", "0"]) == 2
    assert not (tmp_path / "o").exists()
    err = capsys.readouterr().err
    assert err.count("error:") == 2


def test_unknown_role_is_refused(tmp_path):
    from mimicry.errors import ModelNotFoundError
    from mimicry.organism import checkpoint_path, train

    with pytest.raises(ValueError, match="unknown organism roles"):
        train(tmp_path / "x", roles=("teacher", "studnet"), config=_mini(), progress=False)
    with pytest.raises(ModelNotFoundError, match="unknown organism role"):
        checkpoint_path("studnet")
    with pytest.raises(ModelNotFoundError, match="mimicry organism train"):
        checkpoint_path("teacher", root=tmp_path)
