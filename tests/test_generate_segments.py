"""segment_ids: token counts of the think split, including tokenizers where </think> is several
tokens, checked against an independent tokenisation of hand-split text."""

from __future__ import annotations

import pytest

from mimicry.generate.segments import segment_ids, strip_stop


@pytest.fixture(scope="module")
def plain_tokenizer():
    """Byte-level BPE with NO <think>/</think> tokens: the tags are spelt with several tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<eos>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(["the answer is north because we think so. Let me think."] * 8,
                           trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>")


def n_tok(tok, text):
    return len(tok(text, add_special_tokens=False)["input_ids"])


CASES = [
    # completion, prompt_opens_think, finish, reasoning raw, answer raw, closed
    ("<think>\nLet me think so.\n</think>\n\nnorth", False, "stop",
     "\nLet me think so.\n", "\n\nnorth", True),
    ("we think so.</think> north", True, "stop", "we think so.", " north", True),
    ("we think so. the answer", True, "stop", "we think so. the answer", "", False),
    ("<think>we think so. the", False, "length", "we think so. the", "", False),
    ("the answer is north", False, "stop", "", "the answer is north", False),
    ("the answer is", False, "length", "the answer is", "", False),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_multi_token_think_tags(plain_tokenizer, case):
    tok = plain_tokenizer
    text, opens, finish, r_raw, a_raw, closed = case
    assert n_tok(tok, "</think>") > 1 and n_tok(tok, "<think>") > 1
    ids = tok(text, add_special_tokens=False)["input_ids"]
    seg = segment_ids(tok, ids, prompt_opens_think=opens, finish_reason=finish)
    assert seg.completion == text
    assert seg.closed is closed
    assert (seg.reasoning, seg.answer) == (r_raw.strip(), a_raw.strip())
    assert seg.reasoning_tokens == n_tok(tok, r_raw)
    assert seg.answer_tokens == n_tok(tok, a_raw)


def test_single_token_tags_and_stop(tiny_tokenizer):
    tok = tiny_tokenizer
    ids = tok("<think>\nab c</think>\nyes<|im_end|><pad><pad>", add_special_tokens=False)[
        "input_ids"]
    kept, stopped = strip_stop(ids, {tok.eos_token_id})
    assert stopped and len(kept) == len(ids) - 3
    seg = segment_ids(tok, kept)
    assert seg.reasoning_tokens == n_tok(tok, "\nab c") and seg.answer_tokens == n_tok(tok, "\nyes")
    assert (seg.reasoning, seg.answer, seg.closed) == ("ab c", "yes", True)
    assert strip_stop(ids[:3], {tok.eos_token_id}) == (ids[:3], False)
