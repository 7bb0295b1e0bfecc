"""The format-preserving scrambler: format kept, content changed, length kept, seeded."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from mimicry.errors import InputError
from mimicry.traces import Trace
from mimicry.traces.scramble import (
    MARKER,
    build_pool,
    content_tokens,
    scramble_file,
    scramble_text,
    scramble_traces,
)

TEXT = """Let me work through this.
Step 1: 12 + 7 = 19, then carry the 1.
Step 2: 19 * 3 = 57 because three nineteens
  - check: 57 / 3 = 19 indeed
2. so the total is 57
<think-aside> nothing here </think-aside>
Final line with words only"""


def _format(text):
    out = []
    for line in text.split("\n"):
        m = MARKER.match(line)
        toks = line.split()
        out.append((m.group(1) if m else "", len(toks), [t for t in toks if t.startswith("<")],
                    [any(c.isdigit() for c in t) for t in toks]))
    return out


@pytest.mark.parametrize("mode", ["within", "across"])
def test_format_kept_content_changed(mode):
    pool = build_pool([TEXT, "Step 9: apples 345 oranges pears 88 = 1000 lemon"])
    rng = np.random.default_rng(0)
    s = scramble_text(TEXT, rng, mode=mode, pool=pool)
    assert s != TEXT
    assert _format(s) == _format(TEXT)               # markers, words per line, tags, number slots
    a, b = content_tokens(TEXT), content_tokens(s)
    changed = sum(x != y for x, y in zip(a, b)) / len(a)
    assert changed > 0.5
    if mode == "within":
        assert Counter(a) == Counter(b)
    else:
        assert [len(x) for x in a] == [len(y) for y in b]


def test_answer_after_think_close_untouched():
    s = scramble_text("a b c 1 2 3 d e f</think> The answer is 42", np.random.default_rng(1))
    assert s.endswith("</think> The answer is 42") and s != "a b c 1 2 3 d e f"


def test_token_length_nearly_kept(tiny_tokenizer):
    texts = [TEXT.replace("57", str(50 + k)).replace("12", str(10 + 3 * k)) for k in range(8)]
    traces = [Trace(item_id=f"i{k}", model="t", reasoning=t) for k, t in enumerate(texts)]
    for mode in ("within", "across"):
        new = scramble_traces(traces, mode=mode, seed=3, tokenizer=tiny_tokenizer)
        for old, nw in zip(traces, new):
            n0 = len(tiny_tokenizer(old.reasoning, add_special_tokens=False)["input_ids"])
            assert nw.reasoning_tokens == len(
                tiny_tokenizer(nw.reasoning, add_special_tokens=False)["input_ids"])
            assert abs(nw.reasoning_tokens - n0) <= max(3, 0.15 * n0), (mode, n0, nw)
            assert nw.meta["scrambled"] == {"mode": mode, "seed": 3, "fields": ["reasoning"]}


def test_seeded_and_order_independent():
    traces = [Trace(item_id=f"i{k}", model="t", reasoning=TEXT + f" {k}") for k in range(4)]
    a = scramble_traces(traces, seed=5)
    b = scramble_traces(traces[::-1], seed=5)[::-1]
    c = scramble_traces(traces, seed=6)
    assert [t.reasoning for t in a] == [t.reasoning for t in b]
    assert [t.reasoning for t in a] != [t.reasoning for t in c]
    assert traces[0].reasoning == TEXT + " 0"          # input not modified


def test_scramble_file(tmp_path):
    src = tmp_path / "traces.jsonl"
    rows = [Trace(item_id=f"i{k}", model="m", reasoning=TEXT, reasoning_tokens=40).to_dict()
            for k in range(3)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scr.jsonl"
    assert scramble_file(src, out, mode="across", seed=1) == 3
    back = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["reasoning"] != TEXT and r["reasoning_tokens"] == 40 for r in back)
    with pytest.raises(InputError, match="overwrite"):
        scramble_file(src, src)
    with pytest.raises(InputError):
        scramble_file(tmp_path / "missing.jsonl", tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_inline_markers_and_shapes_kept():
    """An organism-style one-line trace: markers in place, operations stay operations."""
    text = "3 s1 +4 7 s2 -7 0 s3 +2 2 s4 +5 7 s5 -1 6"
    outs = {scramble_text(text, np.random.default_rng(k)) for k in range(5)}
    assert text not in outs and len(outs) > 1
    for s in outs:
        toks, ref = s.split(), text.split()
        assert [t for t in toks if t.startswith("s")] == ["s1", "s2", "s3", "s4", "s5"]
        assert [t[0] in "+-" for t in toks] == [t[0] in "+-" for t in ref]
        assert sorted(toks) == sorted(ref)
