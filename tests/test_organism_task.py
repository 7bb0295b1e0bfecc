"""The organism's task family, tokenizer and training traces (no model training here)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from mimicry.organism import task as T
from mimicry.organism import traces as TR
from mimicry.organism.tokenizer import build_tokenizer


def test_hand_worked_chain():
    p = T.Problem(start=3, ops=(4, 7, 2))
    # 3+4=7, 7+7=14->4, 4+2=6 (mod 10)
    assert p.results() == [7, 4, 6]
    assert p.answer == 6 and p.k == 3
    assert p.prompt() == "3 s1 +4 s2 +7 s3 +2 ="
    # each step: marker, operation, plain sum, last digit (the running value)
    assert p.reasoning() == "3 s1 +4 7 7 s2 +7 14 4 s3 +2 6 6"
    assert TR.teacher_completion(p) == "<think> 3 s1 +4 7 7 s2 +7 14 4 s3 +2 6 6 </think> 6"
    assert TR.direct_completion(p) == "6 6"  # final addition 4+2 only, no reasoning
    assert TR.direct_completion(T.Problem(9, (8, 7))) == "14 4"  # 9+8=17->7, 7+7=14->4
    assert T.Problem(9, (3,)).answer == 2  # wrap-around


def test_parse_prompt_round_trip_and_errors():
    rng = random.Random(1)
    for _ in range(200):
        p = T.random_problem(rng, rng.randint(1, 8))
        assert T.parse_prompt(p.prompt()) == p
        # independent recomputation of the answer
        assert p.answer == (p.start + sum(p.ops)) % 10
    for bad in ["", "x s1 +1 =", "3 s2 +1 =", "3 s1 *1 =", "3 s1 -1 ="]:
        with pytest.raises(ValueError):
            T.parse_prompt(bad)


def test_suite_is_synthetic_and_balanced():
    suite = T.organism_suite()
    assert suite.synthetic is True and "NOT human" in suite.source
    ks = Counter(it.meta["difficulty"] for it in suite)
    assert ks == {k: T.ITEMS_PER_LEVEL for k in range(1, T.MAX_STEPS + 1)}
    assert len({it.prompt for it in suite}) == len(suite)
    for it in suite:
        k = it.meta["difficulty"]
        assert it.meta["synthetic_norm"] is True
        assert it.human.rt_ms == 300 + 500 * k
        assert T.parse_prompt(it.prompt).k == k
        assert it.answer == str(T.parse_prompt(it.prompt).answer)
    # same seed -> same items
    assert [it.prompt for it in T.organism_suite()] == [it.prompt for it in suite]


def test_registered_suite_and_scorer():
    from mimicry.tasks import scoring
    from mimicry.tasks.registry import list_suites, load_suite

    assert "organism" in list_suites()
    suite = load_suite("organism")
    assert suite.synthetic and len(suite) == 96
    it = suite.items[0]
    wrong = str((int(it.answer) + 1) % 10)
    assert scoring.score_answer(it, f" {it.answer}") == (it.answer, True)
    assert scoring.score_answer(it, wrong) == (wrong, False)
    assert scoring.score_answer(it, "") == (None, False)
    assert T.parse_answer("s3 +2 7") == "7"  # markers and operations are not answers
    assert T.parse_answer("14 4") == "4"  # the base's "sum digit" answer: last digit counts
    assert T.parse_answer("14") is None


def test_tokenizer_covers_everything_and_round_trips():
    tok = build_tokenizer()
    unk = tok.unk_token_id
    rng = random.Random(0)
    for _ in range(100):
        p = T.random_problem(rng, rng.randint(1, 8))
        text = p.prompt() + " " + TR.teacher_completion(p)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert unk not in ids
        assert len(ids) == len(text.split())  # one token per word
        assert tok.decode(ids) == text
        r_ids = tok(p.reasoning(), add_special_tokens=False)["input_ids"]
        assert len(r_ids) == 1 + 4 * p.k
    assert tok.convert_tokens_to_ids("<think>") != unk
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<pad>"


def test_scrambled_content_keeps_form_but_not_computation():
    rng = random.Random(0)
    probs = [T.random_problem(rng, rng.randint(2, 8)) for _ in range(400)]
    hits, total = 0, 0
    for p in probs:
        real = p.reasoning().split()
        fake = TR.scramble_content(p.reasoning(), rng).split()
        assert len(fake) == len(real)
        assert [w for w in fake if not w.isdigit()] == [w for w in real if not w.isdigit()]
        for j, o in enumerate(p.ops):  # does step j still compute prev + op?
            prev, r = int(fake[4 * j]), int(fake[4 * j + 4])
            assert len(fake[4 * j + 3]) == len(real[4 * j + 3])  # plain sum keeps its width
            hits += (prev + o) % 10 == r
            total += 1
    # random digits: a step is "right" by chance 1 time in 10, never systematically
    assert 0.05 < hits / total < 0.15


def test_shuffled_traces_keep_the_multiset_but_not_the_pairing():
    rng = random.Random(0)
    probs = [T.random_problem(rng, rng.randint(1, 8)) for _ in range(500)]
    reas = [p.reasoning() for p in probs]
    shuffled, perm = TR.shuffle_traces(reas, random.Random(1))
    assert sorted(perm) == list(range(len(reas)))
    assert Counter(shuffled) == Counter(reas)
    k = np.array([p.k for p in probs], float)
    own = np.log([len(r.split()) for r in reas])
    new = np.log([len(r.split()) for r in shuffled])
    assert np.corrcoef(own, np.log(k))[0, 1] > 0.99
    assert abs(np.corrcoef(new, np.log(k))[0, 1]) < 0.15
