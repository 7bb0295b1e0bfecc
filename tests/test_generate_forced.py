"""answer_after: the answer decoded after a GIVEN reasoning (the behavioural reliance test).

Checked against an independent greedy loop on hand-built prefixes (tiny random qwen2, three
chat-template layouts), replayed on the organism (answer after its own reasoning == its own
answer, all 96 items; after scrambled reasoning the teacher's answers change), plus exclusions,
resume and the CLI.
"""

from __future__ import annotations

import json

import pytest
import torch

from experiments.cli import main
from mimicry.errors import InputError
from mimicry.generate import answer_after, generate
from mimicry.models import load_model
from mimicry.tasks.items import HumanNorms, Item, TaskSuite
from mimicry.testing import build_tokenizer
from mimicry.traces import Trace, read_traces
from mimicry.traces.scramble import scramble_traces

PROMPTS = ["The mall is north of the station. Where is the bar?", "A is left of B.",
           "Compute 12 + 7 * 3 - 5 = ?"]
REASONINGS = ["Let me think step by step. First, compose the relations.",
              "A left B", "12 + 21 = 33, 33 - 5 = 28. So the answer is: 28"]
MAX_ANSWER = 8


def _suite(prompts=PROMPTS) -> TaskSuite:
    return TaskSuite("t", [Item(f"q{i}", "demo", prompt=p, answer="north",
                                human=HumanNorms(rt_ms=1000.0 + i))
                           for i, p in enumerate(prompts)])


def _own(model="tiny", reasonings=REASONINGS, prompts=PROMPTS) -> list[Trace]:
    return [Trace(item_id=f"q{i}", model=model, task="demo", prompt=p, reasoning=r,
                  answer_text="north", correct=True, finish_reason="stop")
            for i, (p, r) in enumerate(zip(prompts, reasonings))]


def _greedy_reference(model, tok, text: str, stops: set[int], n: int) -> list[int]:
    """Greedy ids after ``text``: full forward per step, no cache, no padding, no generate()."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids + out])).logits[0, -1]
            nxt = int(logits.argmax())
            if nxt in stops:
                break
            out.append(nxt)
    return out


@pytest.mark.parametrize("layout", ["template", "template_opens_think", "no_template"])
def test_answer_equals_independent_greedy_decode(layout, tiny_model_dir, tmp_path):
    """A random tiny model rarely writes </think> itself, so the own traces are built by hand
    and the prefix text is spelled out here (not via mimicry.traces.prompt.build_text)."""
    path = tiny_model_dir("qwen2")
    model, _ = load_model(path, dtype="float32")
    tok = build_tokenizer(open_think=layout == "template_opens_think")
    chat = "none" if layout == "no_template" else "auto"
    stops = {tok.convert_tokens_to_ids("<|im_end|>")}
    res = answer_after(path, _own(), _suite(), tmp_path / "f.jsonl", batch_size=3,
                       max_answer_tokens=MAX_ANSWER, chat_template=chat, progress=False,
                       hf_model=model, tokenizer=tok)
    assert [t.item_id for t in res] == ["q0", "q1", "q2"]
    lens = set()
    for t, p, r in zip(res, PROMPTS, REASONINGS):
        if layout == "no_template":
            prefix = f"{p}<think>\n{r}\n</think>"
        else:   # the template's assistant turn; "<think>\n" is written once either way
            prefix = (f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"
                      f"<think>\n{r}\n</think>")
        lens.add(len(tok(prefix, add_special_tokens=False)["input_ids"]))
        ref = _greedy_reference(model, tok, prefix, stops, MAX_ANSWER)
        assert t.answer_text == tok.decode(ref, skip_special_tokens=False,
                                           clean_up_tokenization_spaces=False).strip()
        assert t.answer_tokens == len(ref)
        assert t.finish_reason == ("stop" if len(ref) < MAX_ANSWER else "length")
        assert t.reasoning == r
        assert t.meta["prompt_tokens"] == len(tok(prefix, add_special_tokens=False)["input_ids"])
        assert t.backend == "hf-forced" and t.meta["forced_reasoning"] is True
    assert len(lens) == 3   # one batch of three lengths: left padding was exercised
    assert (tmp_path / "f.jsonl").exists()
    assert [t.to_dict() for t in read_traces(tmp_path / "f.jsonl")] == \
        [t.to_dict() for t in sorted(res, key=lambda t: -t.meta["prompt_tokens"])]


# --- the organism: a trained model whose answer depends on its reasoning ---------------------

@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    org = pytest.importorskip("mimicry.organism")
    path = str(org.checkpoint_path("teacher"))
    model, tok = load_model(path, dtype="float32")
    suite = org.organism_suite()
    d = tmp_path_factory.mktemp("forced")
    own = generate(path, suite, d / "own.jsonl", max_new_tokens=80, batch_size=32,
                   progress=False, name="teacher")
    return {"path": path, "model": model, "tok": tok, "suite": suite, "own": list(own),
            "dir": d}


def _after(tc, traces, out, **kw):
    kw.setdefault("batch_size", 16)
    return answer_after(tc["path"], traces, tc["suite"], out, progress=False, name="teacher",
                        hf_model=tc["model"], tokenizer=tc["tok"], **kw)


def test_organism_replay_and_scramble(teacher, tmp_path):
    own = teacher["own"]
    assert len(own) == 96 and all(t.meta["think_closed"] for t in own)
    rep = _after(teacher, teacher["dir"] / "own.jsonl", tmp_path / "replay.jsonl")
    assert rep.summary["items"] == 96 and rep.summary["generated"] == 96
    # the file holds the own traces in generation order; the result follows the file
    assert [t.item_id for t in rep] == [t.item_id for t in read_traces(teacher["dir"] /
                                                                        "own.jsonl")]
    by_id = {t.item_id: t for t in rep}
    assert [by_id[t.item_id].answer_text for t in own] == [t.answer_text for t in own]
    assert [by_id[t.item_id].correct for t in own] == [t.correct for t in own]
    assert rep.summary["accuracy"] == sum(t.correct for t in own) / 96 > 0.9

    scr = scramble_traces(own, seed=0)
    forced = _after(teacher, scr, tmp_path / "scrambled.jsonl")
    changed = sum(a.answer_text != b.answer_text for a, b in zip(own, forced))
    assert changed >= 48, changed          # the teacher's answer is computed in its reasoning
    assert forced.summary["accuracy"] < rep.summary["accuracy"] - 0.3
    assert [t.reasoning for t in forced] == [t.reasoning for t in scr]
    assert all(t.meta["reasoning_from"] == "teacher" for t in forced)


def test_truncated_and_not_in_suite_are_counted(teacher, tmp_path):
    own = teacher["own"][:12]
    cut = [Trace(**{**t.to_dict(), "answer_text": "", "finish_reason": "length"})
           for t in own[:3]]
    alien = [Trace(item_id=f"zz{i}", model="teacher", prompt="1 s1 +1 =", reasoning="1 +1 = 2",
                   answer_text="2", finish_reason="stop") for i in range(2)]
    res = _after(teacher, cut + own[3:] + alien, tmp_path / "f.jsonl")
    s = res.summary
    assert (s["items"], s["skipped_truncated"], s["not_in_suite"]) == (9, 3, 2)
    assert [t.item_id for t in res] == [t.item_id for t in own[3:]]
    with pytest.raises(InputError, match="3 cut before </think>"):
        _after(teacher, cut + alien[:0], tmp_path / "g.jsonl")
    with pytest.raises(InputError, match="2 not in the suite"):
        _after(teacher, alien, tmp_path / "g.jsonl")
    assert not (tmp_path / "g.jsonl").exists()
    counts_only = [Trace(**{**own[0].to_dict(), "reasoning": None})]
    with pytest.raises(InputError, match="no reasoning text"):
        _after(teacher, counts_only, tmp_path / "g.jsonl")
    with pytest.raises(InputError, match="several traces for one item"):
        _after(teacher, own[:2] + own[:1], tmp_path / "g.jsonl")


def test_resume(teacher, tmp_path):
    scr = scramble_traces(teacher["own"][:20], seed=1)
    out = tmp_path / "f.jsonl"
    first = _after(teacher, scr[:8], out)
    assert first.summary["generated"] == 8
    full = _after(teacher, scr, out, batch_size=5)
    assert (full.summary["generated"], full.summary["skipped"]) == (12, 8)
    again = _after(teacher, scr, out)
    assert (again.summary["generated"], again.summary["skipped"]) == (0, 20)
    assert [t.to_dict() for t in again] == [t.to_dict() for t in full]
    assert len(out.read_text().splitlines()) == 20
    # a fresh run in one go gives the same answers as the resumed one
    fresh = _after(teacher, scr, tmp_path / "g.jsonl")
    assert [t.answer_text for t in fresh] == [t.answer_text for t in full]
    with pytest.raises(InputError, match="max_answer_tokens='auto'"):
        _after(teacher, scr, out, max_answer_tokens=32)
    import dataclasses

    longer = [dataclasses.replace(scr[0], answer_tokens=50), *scr[1:]]  # "auto" -> 100
    with pytest.raises(InputError, match="budget of 64 tokens"):
        _after(teacher, longer, out)
    other = scramble_traces(teacher["own"][:20], seed=2)
    with pytest.raises(InputError, match="after another reasoning"):
        _after(teacher, other, out)
    with out.open("a") as f:          # a crash mid-append leaves a partial line: dropped
        f.write('{"item_id": "x')
    assert _after(teacher, scr, out).summary["generated"] == 0
    assert len(out.read_text().splitlines()) == 20


def test_cli_after_reasoning(teacher, tmp_path, capsys):
    scr = tmp_path / "scr.jsonl"
    assert main(["scramble", str(teacher["dir"] / "own.jsonl"), "--out", str(scr)]) == 0
    out = tmp_path / "after.jsonl"
    def base(o):
        return ["generate", "--model", teacher["path"], "--tasks", "organism", "--out", str(o),
                "--name", "teacher", "--dtype", "float32", "--batch-size", "32"]
    capsys.readouterr()
    assert main([*base(out), "--after-reasoning", str(scr), "--max-answer-tokens", "16"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = read_traces(out)
    assert len(rows) == 96 == summary["items"] == summary["generated"]
    assert summary["accuracy"] == sum(t.correct for t in rows) / 96
    assert all(t.meta["max_answer_tokens"] == 16 for t in rows)
    assert {t.item_id: t.reasoning for t in rows} == \
        {t.item_id: t.reasoning for t in read_traces(scr)}

    missing = tmp_path / "nope.jsonl"
    out2 = tmp_path / "after2.jsonl"
    base2 = base(out2)
    assert main([*base2, "--after-reasoning", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "nope.jsonl" in err and "not found" in err and len(err.strip().splitlines()) == 1
    assert not out2.exists()
    assert main([*base2, "--after-reasoning", str(scr), "--backend", "openai"]) == 2
    assert "needs local weights (hf backend)" in capsys.readouterr().err
    assert main([*base2, "--after-reasoning", str(scr), "--temperature", "0.7"]) == 2
    assert main([*base2, "--max-answer-tokens", "16"]) == 2
    assert not out2.exists()


def test_organism_reliance_separates_mastery_from_content_mimicry(teacher, tmp_path):
    """Ground truth of the organism: the teacher's answer is computed in its reasoning; the
    content mimic's reasoning computes nothing, so scrambling it costs nothing."""
    from mimicry.organism import checkpoint_path
    from probes import reliance

    path = str(checkpoint_path("student_mimic_content"))
    own = generate(path, teacher["suite"], tmp_path / "own.jsonl", max_new_tokens=80,
                   batch_size=32, progress=False, name="mimic")
    forced = answer_after(path, scramble_traces(list(own), seed=0), teacher["suite"],
                          tmp_path / "forced.jsonl", batch_size=32, progress=False,
                          name="mimic", dtype="float32")
    t_forced = _after(teacher, scramble_traces(teacher["own"], seed=0), tmp_path / "t.jsonl")
    r = reliance.run(teacher["own"] + list(own), list(t_forced) + list(forced), n_boot=500)
    rows = r.table.set_index("model")
    assert rows.loc["teacher", "reliance"] > 0.3 and rows.loc["teacher", "p"] < 1e-3
    assert not (rows.loc["mimic", "reliance"] > 0 and rows.loc["mimic", "p"] < 0.05)
    assert r.meta["n"] == {"teacher": 96, "mimic": 96}


def test_auto_answer_budget():
    from mimicry.generate.forced import answer_budget

    def tr(*n):
        return [Trace(item_id=str(i), model="m", answer_tokens=k) for i, k in enumerate(n)]

    assert answer_budget("auto", tr(3, 40, None)) == 80      # 2 × the longest own answer
    assert answer_budget("auto", tr(1, 2)) == 64             # at least 64
    assert answer_budget("auto", []) == 64
    assert answer_budget(7, tr(500)) == 7                    # a number is taken as given
    for bad in (0, -3, "many", 2.5, True):
        with pytest.raises(InputError, match="'auto' or a whole number"):
            answer_budget(bad, [])
