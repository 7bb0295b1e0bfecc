"""Organism v2 task families: hand-worked problems, constant prompt length, the bag-of-tokens
bound, the registered suite and scorers, and the training traces (no model training here)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from scipy import stats as sps

from mimicry.organism.v2 import families as F
from mimicry.organism.v2 import traces as TR


def test_hand_worked_chain():
    p = F.Problem("chain", 2, (3, 4, 7, 2, 5, 1, 8))
    assert p.prompt() == "add 3 s1 +4 s2 +7 | s3 +2 s4 +5 s5 +1 s6 +8 ="
    assert p.reasoning() == "3 s1 +4 7 7 s2 +7 14 4 |"  # 3+4=7, 7+7=14 -> 4, stop at the bar
    assert p.answer == "4"
    # past the bar the warm start keeps adding; the conclusion stays the value at the bar
    assert p.reasoning(3) == "3 s1 +4 7 7 s2 +7 14 4 | s3 +2 6 6"
    assert F.conclude("chain", p.reasoning(3)) == "4"
    assert F.conclude("chain", p.reasoning(1)) == "7"  # stopped before the bar: wrong
    assert F.direct_completion(p) == "14 4"


def test_hand_worked_lookup():
    c1, c2 = tuple("abcdef"), tuple("ghijkl")  # a->b->...->f->7, g->...->l->2
    p = F.Problem("lookup", 3, ("d",) + c1 + c2 + ("7", "2"))
    # each key is one token with its value (A..L, in order), values letters or exit digits
    assert p.prompt() == ("ptr d A:b B:c C:d D:e E:f F:7 G:h H:i I:j J:k K:l L:2 =")
    # three lookups, each the prompt token of the current letter's key: d->D:e, e->E:f, f->F:7
    assert p.reasoning() == "d D:e E:f F:7" and p.answer == "7"
    assert p.reasoning(5) == "d D:e E:f F:7 D:e E:f"  # past the exit: start over (a check)
    assert F.conclude("lookup", p.reasoning(2)) == "f"  # no exit reached: not an answer
    assert F.conclude("lookup", "d D:e E:f F:7 D:e") == "7"  # the first exit reached
    q = F.Problem("lookup", 6, ("g",) + c1 + c2 + ("7", "2"))
    assert q.answer == "2" and len(q.reasoning().split()) == 7
    assert F.unpair("C:h") == ("C", "h") and F.unpair("h") is None
    with pytest.raises(ValueError, match="lookup"):
        F.parse_problem(p.prompt().replace("B:c", "C:c"))  # keys out of order


def test_hand_worked_search():
    p = F.Problem("search", 3, (5, 3, 1, 7, 2, 4, 0))
    assert p.prompt() == "find 5 s1 3 s2 1 s3 7 s4 2 s5 4 s6 0 ="
    # 3 <= 5, 1 <= 5, 7 > 5: stop; running sum 3, 4, 11 -> 1; the comparison ends each step
    assert p.reasoning() == "5 s1 3 3 3 lo s2 1 4 4 lo s3 7 11 1 hi"
    assert p.answer == "1" and F.direct_completion(p) == "11 1"
    assert F.conclude("search", p.reasoning(6)) == "1"
    assert F.conclude("search", p.reasoning(2)) == "4"  # stopped before the hi step: wrong


@pytest.mark.parametrize("family", F.FAMILIES)
def test_random_problems_are_what_they_say(family):
    rng = random.Random(3)
    for _ in range(300):
        k = rng.randint(1, F.K_MAX)
        p = F.random_problem(rng, family, k)
        assert p.k == k
        q = F.parse_problem(p.prompt())  # an independent reading of the prompt
        assert q.k == k and q.answer == p.answer and q.prompt() == p.prompt()
        if family == "chain":  # independent recomputation
            assert p.answer == str((p.vals[0] + sum(p.vals[1:k + 1])) % 10)
        if family == "lookup":  # independent recomputation: follow the key of each letter
            words = p.prompt().split()[1:-1]
            table = {w[0].lower(): w[2:] for w in words[1:]}
            cur, hops = words[0], 0
            while not cur.isdigit():
                cur, hops = table[cur], hops + 1
            assert (hops, cur) == (k, p.answer)
            assert [w[0] for w in words[1:]] == list(F.KEYS) and len(words[0]) == 1
        if family == "search":
            t, xs = p.vals[0], p.vals[1:]
            assert [j for j, x in enumerate(xs, 1) if x > t] == [k]
            assert p.answer == str(sum(xs[:k]) % 10)
        eff = len(p.reasoning().split())
        assert eff == 1 + F.STEP_TOKENS[family] * k + (family == "chain")


@pytest.mark.parametrize("family", F.FAMILIES)
def test_prompt_length_is_constant_within_a_family(family):
    from mimicry.organism.v2.tokenizer import build_tokenizer

    tok = build_tokenizer()
    items = [it for it in F.organism_v2_suite() if it.meta["family"] == family]
    lengths = {len(tok(it.prompt, add_special_tokens=False)["input_ids"]) for it in items}
    assert len(lengths) == 1
    for it in items:
        assert tok.unk_token_id not in tok(it.prompt, add_special_tokens=False)["input_ids"]


def test_bag_of_tokens_cannot_read_difficulty():
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict

    from mimicry.organism.v2 import leakage

    res = leakage.measure(n=1200, seed=0)
    for fam, r in res.items():
        assert r["rho"] <= 0.3 and abs(r["rho"]) < 0.15, fam
        assert r["n_lengths"] == 1
    # independent recomputation for one family: counts by hand, sklearn ridge, scipy spearman
    probs = leakage.family_problems("search", 1200, 0)
    vocab = sorted({w for p in probs for w in p.prompt().split()})
    X = np.array([[p.prompt().split().count(w) for w in vocab] for p in probs], float)
    y = np.array([p.k for p in probs], float)
    pred = cross_val_predict(RidgeCV(alphas=leakage.ALPHAS), X, y,
                             cv=KFold(5, shuffle=True, random_state=0))
    assert res["search"]["rho"] == pytest.approx(sps.spearmanr(pred, y).statistic, abs=1e-9)
    # the v1 prompt reads difficulty from its length: the same probe finds it
    from mimicry.organism.task import make_items

    v1 = make_items()
    assert leakage.bag_of_tokens_rho([i.prompt for i in v1],
                                     [i.meta["difficulty"] for i in v1])["rho"] > 0.9
    for fam in F.FAMILIES:  # and on the 96 evaluation items of each family
        its = [i for i in F.organism_v2_suite() if i.meta["family"] == fam]
        assert leakage.bag_of_tokens_rho([i.prompt for i in its],
                                         [i.meta["difficulty"] for i in its])["rho"] <= 0.3


def test_registered_suite_is_synthetic_multi_task_and_scored():
    from mimicry.tasks import scoring
    from mimicry.tasks.registry import list_suites, load_suite

    assert F.SUITE in list_suites()
    suite = load_suite(F.SUITE)
    assert suite.synthetic and "NOT human" in suite.source and len(suite) == 288
    assert sorted(suite.tasks) == sorted(F.TASKS.values())
    counts = Counter((it.task, it.meta["difficulty"]) for it in suite)
    assert set(counts.values()) == {F.ITEMS_PER_LEVEL}
    assert len({it.prompt for it in suite}) == len(suite)
    for it in suite:
        assert it.meta["synthetic_norm"] is True
        assert it.human.rt_ms == 300 + 500 * it.meta["difficulty"]
    it = suite.items[0]
    wrong = str((int(it.answer) + 1) % 10)
    assert scoring.score_answer(it, f"12 {it.answer}") == (it.answer, True)
    assert scoring.score_answer(it, wrong) == (wrong, False)
    assert scoring.score_answer(it, "f") == (None, False)  # a letter is no answer


def test_warm_start_length_is_unrelated_to_difficulty():
    rng = random.Random(0)
    probs = [F.random_problem(rng, f, rng.randint(1, 6)) for f in F.FAMILIES
             for _ in range(400)]
    lens, ks, right = [], [], []
    for p in probs:
        c = TR.warm_completion(p, TR.warm_steps(rng))
        reasoning, answer = c.split("</think>")
        lens.append(len(reasoning.split()) - 1)
        ks.append(p.k)
        right.append(answer.strip() == p.answer)
    for f in range(3):
        sl = slice(400 * f, 400 * (f + 1))
        assert abs(sps.pearsonr(np.log(lens[sl]), np.log(ks[sl])).statistic) < 0.15
    assert 0.6 < np.mean(right) < 0.95  # right only when it did not stop before the stop step


def test_posthoc_traces_have_teacher_format_and_length_but_scrambled_content():
    rng = random.Random(1)
    probs = [F.random_problem(rng, f, rng.randint(1, 6)) for f in F.FAMILIES
             for _ in range(200)]
    teacher = [TR.warm_completion(p, p.k) for p in probs]  # an efficient teacher's traces
    data = TR.student_datasets(probs, teacher, seed=7)
    hits = total = 0
    for p, t, (q, c) in zip(probs, teacher, data["student_posthoc"]):
        real = t.split("</think>")[0].split()
        fake, ans = c.split("</think>")
        fake = fake.split()
        assert q == p.prompt() and ans.strip() == p.answer  # gold answer
        assert len(fake) == len(real) and fake[0] == "<think>"
        def form(words):  # the words that carry form; a pair keeps only its value's kind
            return [("pair", F.unpair(w)[1].isdigit()) if F.unpair(w) else w for w in words
                    if not (w.isdigit() or w in F.LETTERS)]

        assert form(fake) == form(real)
        total += 1
        hits += F.conclude(p.family, " ".join(fake[1:])) == p.answer
    assert hits / total < 0.2  # the scrambled steps do not imply the answer
    content = data["student_mimic_content"]
    assert all(c.split("</think>")[0] == d.split("</think>")[0]
               for (_, c), (_, d) in zip(content, data["student_posthoc"]))
    lm = data["student_mimic_length"]
    assert Counter(c.split("</think>")[0] for _, c in lm) == \
        Counter(t.split("</think>")[0] for t in teacher)
