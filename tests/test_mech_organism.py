"""Row M on the organism: the computation probe separates mastery from both mimics.

For the committed checkpoints (c0) and the committed seeds 1 and 2: every reasoning model's
own greedy traces on the 96 items, its per-token residuals along the reasoning, the gold
answer decoded along it (``probes.compute``), row M judged as the verdict judges it. The
numbers are those reported in docs/probes.md ("Mechanistic evidence on the organism").
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from probes import compute, mechanistic_row

ROOT = Path(__file__).resolve().parents[1]
SETS = {"c0": ROOT / "src/mimicry/organism/checkpoints",
        "c1": ROOT / "tests/data/organism/seed1", "c2": ROOT / "tests/data/organism/seed2"}
MODELS = ("teacher", "student_mastery", "student_mimic_content", "student_mimic_length")


@pytest.mark.parametrize("name", list(SETS))
def test_row_m_separates_mastery(name, tmp_path):
    from mimicry import open_cache
    from mimicry.capture import CaptureConfig, capture
    from mimicry.generate import generate
    from mimicry.tasks.registry import load_suite

    ck = SETS[name]
    if not (ck / "teacher" / "config.json").exists():
        pytest.skip(f"{ck} not present")
    suite = load_suite("organism")
    res = {}
    for k in MODELS:
        tr = tmp_path / f"{k}.jsonl"
        generate(str(ck / k), suite, tr, max_new_tokens=96, batch_size=96, progress=False,
                 name=k)
        c = capture(str(ck / k), tr, tmp_path / f"{k}.h5",
                    CaptureConfig(sites=("last_prompt",), entropy="off", per_token_stride=1,
                                  per_token_segment="reasoning"),
                    progress=False, log=lambda s: None)
        res[k] = compute.run(open_cache(c), tasks=suite, target="answer", name=k)
    teacher = mechanistic_row.compute_row("s", "teacher", "teacher_compute_rise",
                                          res["teacher"])
    assert mechanistic_row.holds(teacher)
    calls = {}
    for s in MODELS[1:]:
        r = mechanistic_row.compute_row(s, s, "compute_rise", res[s])
        support, against, _, _ = mechanistic_row.judge(
            {"compute_rise": pd.Series(r), "teacher_compute_rise": pd.Series(teacher)},
            0.05 / 4)  # k = 4: C, N, W-, M- all measured on the organism
        calls[s] = "holds" if support else "fails" if against else "n/a"
        if s == "student_mastery":
            assert r["value"] > 0.6 and r["ci_low"] > 0.5
    assert calls == {"student_mastery": "holds", "student_mimic_content": "fails",
                     "student_mimic_length": "fails"}
