"""hf backend: batching with left padding, think split and token counts on real generate output,
truncation, eos ids from generation_config, resume."""

from __future__ import annotations

import json

import pytest
import torch

from mimicry.errors import InputError
from mimicry.generate import generate
from mimicry.generate.hf import HFBackend
from mimicry.models import ModelSpec, load_model
from mimicry.tasks.items import HumanNorms, Item, TaskSuite
from mimicry.traces import read_traces

PROMPTS = [
    "The mall is north of the station. The station is north of the bar. Where is the bar?",
    "A is left of B.",
    "All models are managers. Some clerks are not divers. No linguists are carpenters. "
    "Therefore, what follows?",
    "Compute 12 + 7 * 3 - 5 = ?",
    "abc",
    "Is A left of C? true false yes no",
]


def make_suite(prompts=PROMPTS, answer="north") -> TaskSuite:
    return TaskSuite("t", [Item(f"q{i}", "demo", prompt=p, answer=answer,
                                human=HumanNorms(rt_ms=1000.0 + i))
                           for i, p in enumerate(prompts)])


def reference_ids(model, tok, prompt: str, max_new_tokens: int, eos: list[int]) -> list[int]:
    """Greedy ids for one prompt, unpadded, straight from model.generate (no mimicry code)."""
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, eos_token_id=eos,
                             pad_token_id=tok.pad_token_id)
    gen = out[0, ids.shape[1]:].tolist()
    for i, t in enumerate(gen):
        if t in eos:
            return gen[:i]
    return gen


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_batched_left_padding_equals_batch_of_one(arch, tiny_model_dir):
    path = tiny_model_dir(arch)
    model, tok = load_model(path)
    be = HFBackend(ModelSpec(path), model=model, tokenizer=tok)
    suite = make_suite()
    kw = dict(max_new_tokens=12, temperature=0.0, top_p=1.0, seed=0, chat_template="auto")
    batched = {c.item_id: c for b in be.run(list(suite), batch_size=4, **kw) for c in b}
    single = {c.item_id: c for b in be.run(list(suite), batch_size=1, **kw) for c in b}
    lens = {len(tok(p)["input_ids"]) for p in PROMPTS}
    assert len(lens) > 3  # prompts really differ in length, so padding is exercised
    for it in suite:
        ref = reference_ids(model, tok, it.prompt, 12, be.stop_ids)
        assert batched[it.item_id].ids == single[it.item_id].ids == ref, it.item_id
        assert batched[it.item_id].finish_reason == ("length" if len(ref) == 12 else "stop")


def scripted_suite():
    return make_suite(PROMPTS[:3])


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_think_split_and_token_counts_on_generated_output(arch, scripted_model_dir, tmp_path):
    completion = "<think> First, compose the relations.</think> north<|im_end|>"
    path = scripted_model_dir(arch, [("\n", completion)])
    out = tmp_path / "t.jsonl"
    res = generate(path, scripted_suite(), out, batch_size=2, max_new_tokens=40,
                   progress=False)
    from mimicry.testing import build_tokenizer

    tok = build_tokenizer()  # independent recount with a fresh tokenizer
    n_reason = len(tok(" First, compose the relations.", add_special_tokens=False).input_ids)
    n_answer = len(tok(" north", add_special_tokens=False).input_ids)
    assert n_reason > 3
    traces = read_traces(out)
    assert [t.item_id for t in traces] and len(traces) == 3 == len(res)
    for t in traces:
        assert t.reasoning == "First, compose the relations."
        assert t.answer_text == "north"
        assert t.finish_reason == "stop" and t.meta["think_closed"] is True
        assert (t.reasoning_tokens, t.answer_tokens) == (n_reason, n_answer)
        raw = t.meta["raw_completion"]
        assert raw == completion.replace("<|im_end|>", "")
        r_raw = raw.split("</think>")[0].removeprefix("<think>")
        assert t.reasoning_tokens == len(tok(r_raw, add_special_tokens=False).input_ids)
        assert t.correct is True and t.parsed_answer is not None
        assert t.backend == "hf" and t.meta["seed"] == 0 and t.meta["prompt_opened_think"] is False
        assert t.meta["temperature"] == 0.0 and t.meta["max_new_tokens"] == 40
        assert t.seconds > 0 and t.prompt in PROMPTS


def test_template_that_opens_think(scripted_model_dir, tmp_path):
    path = scripted_model_dir("qwen2", [("\n", "Let me think step</think>north<|im_end|>")],
                              open_think=True)
    res = generate(path, scripted_suite(), tmp_path / "t.jsonl", max_new_tokens=30,
                   progress=False)
    from mimicry.testing import build_tokenizer

    tok = build_tokenizer()
    n = len(tok("Let me think step", add_special_tokens=False).input_ids)
    n_ans = len(tok("north", add_special_tokens=False).input_ids)
    for t in res:
        assert t.meta["prompt_opened_think"] is True
        assert t.meta["raw_completion"] == "Let me think step</think>north"
        assert (t.reasoning, t.answer_text) == ("Let me think step", "north")
        assert (t.reasoning_tokens, t.answer_tokens) == (n, n_ans)


def test_truncated_traces_are_flagged_and_counted(scripted_model_dir, tmp_path):
    completion = "<think> First, compose the relations.</think> north<|im_end|>"
    path = scripted_model_dir("qwen2", [("\n", completion)])
    res = generate(path, scripted_suite(), tmp_path / "t.jsonl", max_new_tokens=4,
                   progress=False)
    for t in res:
        assert t.finish_reason == "length" and t.meta["think_closed"] is False
        assert t.answer_text == "" and t.answer_tokens == 0
        assert t.reasoning_tokens == 3  # 4 generated minus the <think> tag
        assert t.correct is False and t.parsed_answer is None
    assert res.summary["truncated_without_think_close"] == 3
    assert res.summary["length_finished"] == 3


def test_raw_prompts_with_different_lengths_in_one_batch(scripted_model_dir, tmp_path):
    # Two chains that merge: after '?' the model reasons 5 tokens, after '!' only 1.
    path = scripted_model_dir("llama", [
        ("?", "a b c d.</think>yes<|im_end|>"), ("!", " d.</think>yes<|im_end|>")])
    suite = make_suite(["Is A left of C?", "A is left of C!"], answer="yes")
    from mimicry.testing import build_tokenizer

    tok = build_tokenizer()
    want = {"q0": len(tok("a b c d.", add_special_tokens=False).input_ids),
            "q1": len(tok(" d.", add_special_tokens=False).input_ids)}
    assert want["q0"] > want["q1"]
    for bs in (2, 1):
        res = generate(path, suite, tmp_path / f"b{bs}.jsonl", batch_size=bs,
                       max_new_tokens=20, chat_template="none", progress=False)
        got = {t.item_id: t.reasoning_tokens for t in res}
        assert got == want
        assert all(t.finish_reason == "stop" and t.answer_text == "yes" for t in res)
        assert all(t.meta["chat_template"] == "none" for t in res)


def test_generation_config_eos_ids_stop_generation(scripted_model_dir, tmp_path):
    import shutil

    from transformers import GenerationConfig

    # The chain ends in <|endoftext|>, which is not the tokenizer's eos (<|im_end|>).
    src = scripted_model_dir("qwen2", [("\n", "<think>ab</think>yes<|endoftext|>xyz")])
    path = tmp_path / "m"
    shutil.copytree(src, path)
    res = generate(str(path), scripted_suite(), tmp_path / "a.jsonl", max_new_tokens=12,
                   progress=False)
    assert all(t.finish_reason == "length" for t in res)  # eos never produced
    gc = GenerationConfig.from_pretrained(path)
    tok_eos = json.loads((path / "config.json").read_text())["eos_token_id"]
    from mimicry.testing import build_tokenizer

    gc.eos_token_id = [tok_eos, build_tokenizer().convert_tokens_to_ids("<|endoftext|>")]
    gc.save_pretrained(path)
    res = generate(str(path), scripted_suite(), tmp_path / "b.jsonl", max_new_tokens=12,
                   progress=False)
    for t in res:
        assert t.finish_reason == "stop" and t.answer_text == "yes" and t.answer_tokens == 1
        assert "<|endoftext|>" not in t.meta["raw_completion"]


def test_resume_skips_finished_items(scripted_model_dir, tmp_path):
    path = scripted_model_dir("qwen2", [("\n", "<think>ab</think>north<|im_end|>")])
    out = tmp_path / "t.jsonl"
    suite = make_suite()
    first = generate(path, suite, out, limit=2, max_new_tokens=10, progress=False)
    assert first.summary["generated"] == 2 and first.summary["skipped"] == 0
    prefix = out.read_bytes()
    # a crash mid-append leaves a partial last line: it is dropped, never parsed as a trace
    with open(out, "ab") as f:
        f.write(b'{"item_id": "q2", "mod')
    res = generate(path, suite, out, max_new_tokens=10, progress=False)
    assert res.summary["skipped"] == 2 and res.summary["generated"] == len(PROMPTS) - 2
    data = out.read_bytes()
    assert data.startswith(prefix)  # finished rows untouched, not regenerated
    ids = [json.loads(line)["item_id"] for line in data.decode().splitlines()]
    assert sorted(ids) == sorted(it.item_id for it in suite)  # each item exactly once
    again = generate(path, suite, out, max_new_tokens=10, progress=False)
    assert again.summary["generated"] == 0 and out.read_bytes() == data
    # another model name in the same file is not "done"
    other = generate(path, suite, out, limit=1, max_new_tokens=10, progress=False, name="m2")
    assert other.summary["generated"] == 1
    # changed settings are refused instead of mixing runs
    with pytest.raises(InputError, match="max_new_tokens"):
        generate(path, suite, out, max_new_tokens=11, progress=False)


def test_bad_inputs(tmp_path, tiny_model_dir):
    out = tmp_path / "t.jsonl"
    with pytest.raises(InputError, match="no prompt"):
        generate(tiny_model_dir("qwen2"), TaskSuite("s", [Item("a", "demo")]), out,
                 progress=False)
    with pytest.raises(InputError, match="temperature"):
        generate(tiny_model_dir("qwen2"), make_suite(), out, temperature=-1, progress=False)
    assert not out.exists()


def test_sampling_is_seeded(tiny_model_dir, tmp_path):
    path = tiny_model_dir("qwen2")
    s = make_suite(PROMPTS[:3])
    kw = dict(temperature=1.0, top_p=0.95, max_new_tokens=8, progress=False)
    a = generate(path, s, tmp_path / "a.jsonl", seed=1, **kw)
    b = generate(path, s, tmp_path / "b.jsonl", seed=1, **kw)
    c = generate(path, s, tmp_path / "c.jsonl", seed=2, **kw)
    greedy = generate(path, s, tmp_path / "g.jsonl", max_new_tokens=8, progress=False)
    raw = lambda res: [t.meta["raw_completion"] for t in res]  # noqa: E731
    assert raw(a) == raw(b)
    assert raw(a) != raw(c) and raw(a) != raw(greedy)
    assert all(t.meta["seed"] == 1 and t.meta["top_p"] == 0.95 for t in a)
