"""Answer scoring: table-driven cases per task, unparseable answers, the scorer registry."""

from __future__ import annotations

import pytest

from mimicry.tasks import HumanNorms, Item, register_scorer, score_answer

SPATIAL = Item("s1", "spatial", answer="north-east", human=HumanNorms(rt_ms=1000.0))
REL_TRUE = Item("r1", "relational_3ps", answer="true", human=HumanNorms(rt_ms=1000.0))
REL_FALSE = Item("r2", "relational_4ps", answer="false", human=HumanNorms(rt_ms=1000.0))
TERMS = {"a": "managers", "b": "models", "c": "clerks"}
SYL = Item("y1", "syllogisms", answer=("Some;managers;clerks", "Some;clerks;managers"),
           human=HumanNorms(accuracy=0.5), meta={"terms": TERMS})
SYL_NVC = Item("y2", "syllogisms", answer=("NVC",), human=HumanNorms(accuracy=0.5),
               meta={"terms": TERMS})


@pytest.mark.parametrize("text, parsed, correct", [
    ("north-east", "north-east", True),
    ("The answer is: north-east.", "north-east", True),
    ("**North-East**", "north-east", True),
    ("\\boxed{north east}", "north-east", True),
    ("Northeast", "north-east", True),
    ("NE", "north-east", True),
    ("ne", "north-east", True),
    ("north–east", "north-east", True),                 # en dash
    ("The bar is north-eastern of the mall.", "north-east", True),
    ("\\boxed{south}", "south", False),
    ("First I thought north, but it is south-west.", "south-west", False),
    ("It is not north; the answer is north-east", "north-east", True),
    # the marked answer wins over later explanation that mentions other directions
    ("Answer: north-east. (the mall is south of the bar)", "north-east", True),
    ("**NE**, because the gym is west of it", "north-east", True),
    ("I am not sure.", None, False),
    ("", None, False),
    ("one of the banks", None, False),                   # 'ne' inside words is not a direction
])
def test_spatial_scorer(text, parsed, correct):
    assert score_answer(SPATIAL, text) == (parsed, correct)


@pytest.mark.parametrize("item, text, parsed, correct", [
    (REL_TRUE, "Answer: true", "true", True),
    (REL_TRUE, "True.", "true", True),
    (REL_TRUE, "**Yes**", "true", True),
    (REL_TRUE, "\\boxed{\\text{True}}", "true", True),
    (REL_TRUE, "valid", "true", True),
    (REL_TRUE, "false", "false", False),
    (REL_FALSE, "No.", "false", True),
    (REL_FALSE, "The conclusion is invalid.", "false", True),
    (REL_FALSE, "It is not true.", "false", True),
    (REL_FALSE, "incorrect", "false", True),
    (REL_FALSE, "At first true, but on reflection: false", "false", True),
    (REL_FALSE, "A is to the left of D", None, False),
    (REL_FALSE, "   ", None, False),
])
def test_truth_scorer(item, text, parsed, correct):
    assert score_answer(item, text) == (parsed, correct)


@pytest.mark.parametrize("item, text, parsed, correct", [
    (SYL, "Some managers are clerks", "Some;managers;clerks", True),
    (SYL, "Therefore, some clerks are managers.", "Some;clerks;managers", True),
    (SYL, "**Some managers are not clerks**", "Some not;managers;clerks", False),
    (SYL, "No clerks are managers", "No;clerks;managers", False),
    (SYL, "All managers are clerks.", "All;managers;clerks", False),
    (SYL, "Answer: Some;managers;clerks", "Some;managers;clerks", True),
    (SYL, "Some manager is a clerk", "Some;managers;clerks", True),
    (SYL, "No valid conclusion", "NVC", False),
    (SYL, "Some of the managers aren't clerks.", "Some not;managers;clerks", False),
    (SYL, "All the clerks are managers", "All;clerks;managers", False),
    (SYL, "Some clerks are managers.\n\nThis follows because...", "Some;clerks;managers", True),
    # the last mention counts; premises restated first don't
    (SYL, "All models are managers and some models are clerks, so some managers are clerks",
     "Some;managers;clerks", True),
    (SYL_NVC, "No valid conclusion.", "NVC", True),
    (SYL_NVC, "NVC", "NVC", True),
    (SYL_NVC, "Nothing follows.", "NVC", True),
    (SYL_NVC, "\\boxed{\\text{No valid conclusion}}", "NVC", True),
    (SYL_NVC, "Some managers are clerks", "Some;managers;clerks", False),
    (SYL_NVC, "Some models are clerks", "Some;models;clerks", False),
    (SYL_NVC, "All managers are not clerks", None, False),   # ambiguous English
    (SYL_NVC, "I don't know", None, False),
])
def test_syllogism_scorer(item, text, parsed, correct):
    assert score_answer(item, text) == (parsed, correct)


@pytest.mark.parametrize("gold, text, parsed, correct", [
    ("42", "42", "42", True),
    ("42", "The answer is 42.", "42", True),
    ("42", "\\boxed{42}", "42", True),
    ("42", "42.0", "42.0", True),
    ("42", "43", "43", False),
    (("Paris", "paris, france"), "**Paris**", "paris", True),
    (("Paris", "paris, france"), "Final answer: Paris, France.", "paris, france", True),
    ("blue", "", None, False),
])
def test_generic_exact_scorer(gold, text, parsed, correct):
    item = Item("u1", "my_user_task", answer=gold, human=HumanNorms(rt_ms=1.0))
    assert score_answer(item, text) == (parsed, correct)


def test_meta_scorer_and_registry():
    # a user task can borrow a built-in scorer through meta["scorer"]
    item = Item("u2", "my_directions", answer="south", human=HumanNorms(rt_ms=1.0),
                meta={"scorer": "direction"})
    assert score_answer(item, "It lies to the South.") == ("south", True)

    def parity(it, text):
        t = text.strip().lower()
        return (t, t == it.answer) if t in ("odd", "even") else (None, False)

    register_scorer("parity_task_test", parity)
    item = Item("u3", "parity_task_test", answer="odd", human=HumanNorms(rt_ms=1.0))
    assert score_answer(item, " Odd ") == ("odd", True)
    assert score_answer(item, "seven") == (None, False)


def test_no_eval_in_scoring_source():
    import inspect

    import mimicry.tasks.scoring as sc
    import mimicry.tasks.syllogisms as sy

    for mod in (sc, sy):
        src = inspect.getsource(mod)
        assert "eval(" not in src and "exec(" not in src
