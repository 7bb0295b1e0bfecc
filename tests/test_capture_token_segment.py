"""Per-token stride rows restricted to the reasoning (``per_token_segment="reasoning"``).

Checked against a stride-1 capture over the whole sequence (every row): the reasoning rows
are exactly those positions' rows, the positions are the reasoning segment at the stride plus
its last token, and an item cut before ``</think>`` still gets its reasoning rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from mimicry import open_cache
from mimicry.capture import CaptureConfig, capture
from mimicry.capture.segments import encode_traces
from mimicry.errors import InputError
from mimicry.traces import Trace


def _traces():
    r = "Let me think step by step. First, compose the relations. " * 2
    return [Trace(item_id="a", model="m", task="t", prompt="A is left of B. Is A left of C?",
                  reasoning=r + "So yes", answer_text="yes"),
            Trace(item_id="b", model="m", task="t", prompt="Compute 12 + 7 * 3 - 5 = ?",
                  reasoning=r, finish_reason="length")]


def test_positions(tiny_tokenizer):
    cfg = CaptureConfig(per_token_stride=3, per_token_segment="reasoning", entropy="off")
    for it in encode_traces(tiny_tokenizer, _traces(), cfg):
        a, b = it.n_prompt, it.reasoning_end
        want = sorted(set(range(a, b, 3)) | {b - 1})
        assert it.token_positions.tolist() == want


def test_rows_equal_full_capture(tmp_path, tiny_model_dir):
    d = tiny_model_dir("llama")
    full = capture(d, _traces(), tmp_path / "full.h5",
                   CaptureConfig(per_token_stride=1, entropy="off", sites=("last_prompt",)),
                   progress=False, log=lambda s: None)
    part = capture(d, _traces(), tmp_path / "part.h5",
                   CaptureConfig(per_token_stride=4, per_token_segment="reasoning",
                                 entropy="off", sites=("last_prompt",)),
                   progress=False, log=lambda s: None)
    with open_cache(full) as f, open_cache(part) as p:
        items = p.items
        for i in range(len(items)):
            pos, rows = p.token_resid(i)
            a = int(items.loc[i, "n_prompt"])
            assert pos[0] == a and pos[-1] == a + int(items.loc[i, "n_reasoning"]) - 1
            fpos, frows = f.token_resid(i)
            assert fpos.tolist() == list(range(int(items.loc[i, "n_tokens"])))
            np.testing.assert_allclose(rows, frows[pos], atol=1e-6)


def test_bad_segment():
    with pytest.raises(InputError, match="per_token_segment"):
        CaptureConfig(per_token_segment="answer")
