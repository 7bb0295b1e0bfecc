"""Organism v2 training mechanics: the GRPO reward by hand, a miniature run twice (same seed →
bit-identical weights, other seed → other weights), folders and metadata, the CLI."""

from __future__ import annotations

import json

import pytest

from mimicry.organism.training import Shape


def test_reward_matches_a_hand_computation():
    from mimicry.organism.v2.rl import CorrectMinusTokenCost, reward_value
    from mimicry.organism.v2.tokenizer import build_tokenizer

    # reasoning "3 s1 +4 7 7 |" = 6 tokens; right answer: 1 - 6 * 0.02 = 0.88
    assert reward_value("<think> 3 s1 +4 7 7 | </think> 7", "7", 0.02) == pytest.approx(0.88)
    # wrong answer: nothing, whatever its length (the cost is charged on right answers only)
    assert reward_value("<think> 3 s1 +4 7 7 | </think> 5", "7", 0.02) == 0.0
    assert reward_value("<think> 3 </think> 5", "7", 0.02) == 0.0
    # "sum digit" answers count by their last digit (as the scorer does): 1 - 1 * 0.1
    assert reward_value("<think> 3 </think> 14 7", "7", 0.1) == pytest.approx(0.9)
    # never closed: no answer, even with a 7 in it
    assert reward_value("<think> 3 s1 +4 7 7 7", "7", 0.05) == 0.0
    # no reasoning at all, right answer: the full reward
    assert reward_value("<think> </think> 7", "7", 0.05) == pytest.approx(1.0)
    tok = build_tokenizer()
    fn = CorrectMinusTokenCost(tok, 0.02)
    texts = ["<think> 3 s1 +4 7 7 | </think> 7", "<think> i l h 7 </think> 7",
             "<think> i l </think> l"]
    ids = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
    got = fn(prompts=[""] * 3, completions=["ignored"] * 3, completion_ids=ids,
             answer=["7", "7", "7"])
    assert got == pytest.approx([1 - 0.12, 1 - 0.08, 0.0])


def _mini(**kw):
    from mimicry.organism.v2.rl import RLConfig
    from mimicry.organism.v2.train import V2Config

    return V2Config(teacher=Shape(16, 1, 2, 1, 32), student=Shape(8, 1, 2, 1, 16),
                    pool_per_family=40, warm_steps=3, base_steps=3, student_steps=2,
                    batch_size=4, rl_prompts=12, distill_per_family=4,
                    rl=RLConfig(steps=2, prompts=2, generations=2, max_completion_length=12),
                    **kw)


@pytest.fixture(scope="module")
def mini_runs(tmp_path_factory):
    from mimicry.organism.v2.train import train

    root = tmp_path_factory.mktemp("organism-v2-mini")
    a = train(root / "a", seed=3, config=_mini(), progress=False, evaluate=False)
    b = train(root / "b", seed=3, config=_mini(), progress=False, evaluate=False)
    c = train(root / "c", seed=4, config=_mini(), progress=False, evaluate=False,
              roles=("teacher", "base"))
    return a, b, c


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_every_role_is_saved_with_seed_config_and_phase_times(mini_runs):
    from mimicry.organism.v2 import EXTRA_ROLES, ROLES

    a, _, c = mini_runs
    assert set(a) == set(ROLES + EXTRA_ROLES)
    assert set(c) == {"teacher_warm", "base", "teacher"}
    for role, path in a.items():
        info = json.loads((path / "organism.json").read_text())
        assert info["role"] == role and info["seed"] == 3 and info["version"] == 2
        assert info["synthetic"] is True and info["config"]["rl"]["steps"] == 2
    assert json.loads((a["teacher"] / "organism.json").read_text())["init"] == "teacher_warm"
    summary = json.loads((a["teacher"].parent / "train_summary.json").read_text())
    assert summary["seed"] == 3 and summary["cpu_seconds"] > 0
    assert {"teacher_warm", "base", "teacher_rl", "teacher_sampling"} <= set(summary["phases"])
    assert not list(a["teacher"].parent.glob(".*.tmp"))


def test_same_seed_same_weights_other_seed_other_weights(mini_runs):
    import torch

    a, b, c = mini_runs
    for role in a:
        wa, wb = _weights(a[role]), _weights(b[role])
        assert all(torch.equal(wa[k], wb[k]) for k in wa), role
    info = json.loads((a["teacher"] / "organism.json").read_text())
    assert info["train"]["steps"] == 2  # the GRPO phase ran (its effect: the full run, docs)
    wa, wc = _weights(a["teacher"]), _weights(c["teacher"])
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_v2_models_load_and_resolve_through_organism_names(mini_runs, tmp_path):
    from mimicry.errors import ModelNotFoundError
    from mimicry.models import load_model
    from mimicry.organism import checkpoint_path
    from mimicry.organism.v2.tokenizer import build_tokenizer

    a, _, _ = mini_runs
    model, tok = load_model(str(a["student_posthoc"]))
    text = "find 5 s1 3 s2 1 s3 7 s4 2 s5 4 s6 0 = <think> 5 s1 3 lo 3 3 | hi </think> 4"
    assert tok(text)["input_ids"] == build_tokenizer()(text, add_special_tokens=False)[
        "input_ids"]
    assert type(model).__name__ == "LlamaForCausalLM"
    with pytest.raises(ModelNotFoundError, match="organism v2"):
        checkpoint_path("v2/studnet")
    with pytest.raises(ModelNotFoundError, match="--v2"):
        checkpoint_path("v2/teacher", root=tmp_path)


def test_cli_v2_rejects_bad_arguments_without_output(tmp_path, capsys):
    from mimicry.cli import main

    assert main(["organism", "train", "--v2", "--out", str(tmp_path / "o"), "--seed", "-1"]) == 2
    assert main(["organism", "train", "--v2", "--out", str(tmp_path / "o"),
                 "--threads", "0"]) == 2
    assert not (tmp_path / "o").exists()
    assert capsys.readouterr().err.count("error:") == 2


def test_reuse_takes_the_warm_start_only_from_the_same_seed_format_and_settings(mini_runs):
    from mimicry.organism.v2 import train as T

    a, _, _ = mini_runs
    folder = a["teacher_warm"]
    cfg = _mini()
    assert T._reuse(folder, cfg, 3) is not None
    assert T._reuse(folder, cfg, 4) is None  # another seed
    other = _mini()
    other.warm_steps += 1
    assert T._reuse(folder, other, 3) is None  # another warm-start setting
    info = json.loads((folder / "organism.json").read_text())
    assert info["format"] == T.FORMAT
    info["format"] = 1  # a recipe-1 warm start (lookup keys and values apart): not reused
    (folder / "organism.json").write_text(json.dumps(info))
    try:
        assert T._reuse(folder, cfg, 3) is None
    finally:
        info["format"] = T.FORMAT
        (folder / "organism.json").write_text(json.dumps(info))
