"""Segment boundaries located by character offsets, checked by decoding each segment."""

from __future__ import annotations

import pytest

from mimicry.capture.config import CaptureConfig
from mimicry.capture.segments import encode_trace, encode_traces, sampled_positions
from mimicry.errors import InputError
from mimicry.traces import Trace

PROMPT = "The mall is north of the station. Where is the bar?"
REASONING = "Let me think step by step. First, compose the relations."
ANSWER = "So the answer is: north"


def _decode(tok, ids):
    return tok.decode(list(ids), skip_special_tokens=False)


def test_segments_decode_to_the_hand_built_text(tiny_tokenizer):
    tok = tiny_tokenizer
    t = Trace(item_id="a", model="teacher", prompt=PROMPT, reasoning=REASONING,
              answer_text=ANSWER, finish_reason="stop")
    it = encode_trace(tok, t, 0, CaptureConfig())
    rendered = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    assert _decode(tok, it.input_ids[:it.n_prompt]) == rendered
    assert (_decode(tok, it.input_ids[it.n_prompt:it.reasoning_end])
            == f"<think>\n{REASONING}\n</think>")
    assert _decode(tok, it.input_ids[it.reasoning_end:]) == f"\n\n{ANSWER}"
    assert it.input_ids[it.think_end] == tok.convert_tokens_to_ids("</think>")
    assert it.input_ids[it.n_prompt] == tok.convert_tokens_to_ids("<think>")
    assert it.last_prompt == it.n_prompt - 1 and not it.truncated
    # the whole sequence is one tokenisation of the full text
    assert list(it.input_ids) == tok(rendered + f"<think>\n{REASONING}\n</think>\n\n{ANSWER}",
                                     add_special_tokens=False)["input_ids"]


def test_template_that_opens_think_is_not_opened_twice():
    from mimicry.testing import build_tokenizer

    tok = build_tokenizer(open_think=True)
    t = Trace(item_id="a", model="m", prompt=PROMPT, reasoning=REASONING, answer_text=ANSWER)
    it = encode_trace(tok, t, 0, CaptureConfig())
    text = _decode(tok, it.input_ids)
    assert text.count("<think>") == 1
    assert _decode(tok, it.input_ids[:it.n_prompt]).endswith("assistant\n<think>\n")
    assert _decode(tok, it.input_ids[it.n_prompt:it.reasoning_end]) == f"{REASONING}\n</think>"


def test_truncated_trace_has_empty_answer_and_no_think_end(tiny_tokenizer):
    t = Trace(item_id="a", model="m", prompt=PROMPT, reasoning=REASONING, answer_text="",
              finish_reason="length")
    it = encode_trace(tiny_tokenizer, t, 0, CaptureConfig())
    assert it.truncated and it.think_end == -1 and it.reasoning_end == it.length
    assert _decode(tiny_tokenizer, it.input_ids[it.n_prompt:]) == f"<think>\n{REASONING}"
    assert it.weights(["answer", "think_end"]).sum() == 0


def test_traces_from_another_tokenizer_are_retokenised():
    """The same trace text, two tokenizers: boundaries follow the text, not token counts."""
    from mimicry.testing import build_tokenizer

    t = Trace(item_id="a", model="teacher", prompt=PROMPT, reasoning=REASONING,
              answer_text=ANSWER)
    for tok in (build_tokenizer(vocab_size=300), build_tokenizer(vocab_size=700)):
        it = encode_trace(tok, t, 0, CaptureConfig())
        assert _decode(tok, it.input_ids[it.reasoning_end:]) == f"\n\n{ANSWER}"
        assert _decode(tok, it.input_ids[it.n_prompt:it.reasoning_end]).startswith("<think>")


def test_bad_traces_raise_input_errors(tiny_tokenizer):
    cfg = CaptureConfig()
    with pytest.raises(InputError, match="no prompt"):
        encode_trace(tiny_tokenizer, Trace(item_id="a", model="m", reasoning="x"), 0, cfg)
    with pytest.raises(InputError, match="no reasoning or answer_text"):
        encode_trace(tiny_tokenizer, Trace(item_id="a", model="m", prompt="p",
                                           reasoning_tokens=5), 0, cfg)
    t = Trace(item_id="a", model="m", prompt="p", reasoning="r", answer_text="x")
    with pytest.raises(InputError, match="duplicate trace.*row 1"):
        encode_traces(tiny_tokenizer, [t, t], cfg, file="t.jsonl")


def test_sampled_positions_are_seeded_and_include_point_sites():
    a = sampled_positions(1000, 16, 0, "m::x", always=(10, 999))
    assert (a == sampled_positions(1000, 16, 0, "m::x", always=(10, 999))).all()
    assert not (a == sampled_positions(1000, 16, 1, "m::x", always=(10, 999))).all()
    assert {10, 999} <= set(a.tolist()) and 16 <= len(a) <= 18
    assert (sampled_positions(5, 16, 0, "k") == [0, 1, 2, 3, 4]).all()
