"""Built-in suites: computed gold answers vs hand-worked ones and the data, norms vs pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mimicry.tasks import list_suites, load_suite, suite_summary
from mimicry.tasks.relational import PS3_CSV, PS4_CSV, entailment
from mimicry.tasks.spatial import CARDDIR_CSV, compose, parse_premise
from mimicry.tasks.syllogisms import RAGNI2016_CSV, SYLLOGISMS, encode_task, valid_conclusions


@pytest.fixture(scope="module")
def spatial():
    return load_suite("spatial")


@pytest.fixture(scope="module")
def relational():
    return load_suite("relational")


@pytest.fixture(scope="module")
def syllogisms():
    return load_suite("syllogisms")


# ----------------------------------------------------------------------------- spatial
@pytest.mark.parametrize("premises, target, reference, expected", [
    # mall N of station, station N of bar -> bar is 2 south of mall
    (["north;mall;station", "north;station;bar"], "bar", "mall", "south"),
    # church NE of store (store = church - (1,1)), store E of bar (bar = store - (1,0))
    # -> bar = church + (-2,-1): south-west
    (["north-east;church;store", "east;store;bar"], "bar", "church", "south-west"),
    # A N of B, B SE of C: C = A - (0,1) - (1,-1) = A + (-1, 0): west
    (["north;a;b", "south-east;b;c"], "c", "a", "west"),
    # A E of B, B SW of C: C = A - (1,0) + (1,1) = A + (0, 1): north
    (["east;a;b", "south-west;b;c"], "c", "a", "north"),
    # opposite directions: C lands on A
    (["east;a;b", "west;b;c"], "c", "a", None),
])
def test_compose_hand_worked(premises, target, reference, expected):
    assert compose([parse_premise(p) for p in premises], target, reference) == expected


def test_spatial_items_gold_and_exclusions(spatial):
    assert len(spatial) + len(spatial.info["excluded"]) == 64
    assert len(spatial) == 56
    assert {e["item_id"] for e in spatial.info["excluded"]} == {
        "spatial-05", "spatial-14", "spatial-23", "spatial-32", "spatial-33", "spatial-42",
        "spatial-51", "spatial-60"}
    # hand-worked from the CCOBRA task structure (same for every participant's wording)
    assert spatial["spatial-01"].answer == "south"       # north / north
    assert spatial["spatial-11"].answer == "south-west"  # north-east / east
    assert spatial["spatial-04"].answer == "west"        # north / south-east
    assert spatial["spatial-22"].answer == "north"       # east / south-west
    it = spatial["spatial-01"]
    assert it.prompt.startswith("The ")
    assert "Answer with one of: north, south, east, west, north-east" in it.prompt
    assert it.meta["n_premises"] == 2 and it.meta["directions"] == ["north", "north"]
    assert spatial.info["reliability_seed"] == 20260127


def test_spatial_gold_agrees_with_human_majority(spatial):
    df = pd.read_csv(CARDDIR_CSV)
    maj = df.groupby("Task-ID")["response"].agg(lambda s: s.str.split(";").str[0].mode()[0])
    for it in spatial:
        assert maj[it.meta["ccobra_task_id"]] == it.answer, it.item_id


def test_spatial_norms_recomputed_with_pandas(spatial):
    df = pd.read_csv(CARDDIR_CSV)
    for tid, gold in [(1, "south"), (11, "south-west"), (22, "north")]:
        g = df[df["Task-ID"] == tid]
        ok = g["response"].str.split(";").str[0] == gold
        it = spatial[f"spatial-{tid:02d}"]
        assert it.human.rt_ms == pytest.approx(g.loc[ok, "rt_ms"].median())
        assert it.human.accuracy == pytest.approx(ok.mean())
        assert it.human.n == len(g) == 49


# ----------------------------------------------------------------------------- relational
def test_entailment_hand_worked():
    L, R = "Left", "Right"
    assert entailment([(L, "A", "B"), (L, "B", "C")], (L, "A", "C")) is True
    assert entailment([(L, "A", "B"), (L, "B", "C")], (L, "C", "A")) is False
    assert entailment([(L, "A", "B"), (R, "C", "B")], (R, "C", "A")) is True
    assert entailment([(R, "B", "A"), (R, "D", "C"), (R, "C", "B")], (L, "A", "D")) is True
    # B right of A and of C: A vs C is open
    assert entailment([(R, "B", "A"), (R, "B", "C")], (L, "A", "C")) is None
    with pytest.raises(ValueError):
        entailment([(L, "A", "B"), (L, "B", "A")], (L, "A", "B"))


def test_relational_gold_agrees_with_ccobra_labels(relational):
    assert relational.tasks == ["relational_3ps", "relational_4ps"]
    n3 = sum(it.task == "relational_3ps" for it in relational)
    n4 = sum(it.task == "relational_4ps" for it in relational)
    assert (n3, n4) == (16, 45)
    for path, col, tid, prefix in [(PS3_CSV, "korrekt", "Task-ID", "rel3-{:02d}"),
                                   (PS4_CSV, "logicallycorrect", "TaskID", "rel4-{:03d}")]:
        labels = pd.read_csv(path).groupby(tid)[col].first()
        for t, lab in labels.items():
            iid = prefix.format(t)
            if iid in relational:
                assert relational[iid].answer == ("true" if lab else "false"), iid
    excl = {e["item_id"] for e in relational.info["excluded"]}
    assert excl == {"rel4-060", "rel4-108", "rel4-156"}
    assert relational["rel3-01"].answer == "true"     # A<B, B<C |- A<C
    assert relational["rel3-09"].answer == "false"    # A<B, B<C |- C<A ?
    assert relational["rel4-017"].answer == "true"    # A<B<C<D |- A<D
    assert relational["rel4-113"].answer == "false"   # A<B<C<D |- D<A ?
    assert "Answer with true or false" in relational["rel3-01"].prompt


def test_relational_norms_recomputed_with_pandas(relational):
    df = pd.read_csv(PS3_CSV)
    g = df[df["Task-ID"] == 1]
    ok = g["response"].astype(str) == "True"     # gold true (hand-worked above)
    it = relational["rel3-01"]
    assert it.human.rt_ms == pytest.approx(g.loc[ok, "rt_ms"].median())
    assert it.human.accuracy == pytest.approx(ok.mean())
    df4 = pd.read_csv(PS4_CSV)
    g = df4[df4["TaskID"] == 113]
    ok = g["response"].astype(str) == "False"    # gold false
    it = relational["rel4-113"]
    assert it.human.rt_ms == pytest.approx(g.loc[ok, "rt_ms"].median())
    assert it.human.n == len(g)


# ----------------------------------------------------------------------------- syllogisms
# Valid conclusions with existential import, from the standard tables (e.g. Khemlani &
# Johnson-Laird 2012, Psychol. Bull. 138:427; the traditional moods Barbara, Darapti,
# Celarent, Baroco, Bocardo, Ferio, Fesapo... with their weakened/converted forms).
STANDARD = {
    "AA1": {"Aac", "Iac", "Ica"},          # Barbara + subaltern + conversion
    "AA2": {"Aca", "Iac", "Ica"},
    "AA4": {"Iac", "Ica"},                 # Darapti
    "AA3": set(),
    "AI2": {"Iac", "Ica"},                 # All b are a, Some c are b
    "AI4": {"Iac", "Ica"},                 # Datisi
    "AI1": set(), "AI3": set(),
    "AE1": {"Eac", "Eca", "Oac", "Oca"},   # All a are b, No b are c (Celarent family)
    "EA1": {"Oca"},                        # No a are b, All b are c
    "AO3": {"Oca"},                        # Baroco
    "OA4": {"Oca"},                        # Bocardo
    "IE1": {"Oac"}, "EI1": {"Oca"},        # Ferio
    "II1": set(), "OO2": set(), "EE3": set(), "IO4": set(), "OI1": set(),
}


@pytest.mark.parametrize("syl", sorted(STANDARD))
def test_syllogism_engine_vs_standard_list(syl):
    assert set(valid_conclusions(syl)) == STANDARD[syl]


def test_syllogism_counts():
    with_valid = [s for s in SYLLOGISMS if valid_conclusions(s)]
    assert len(SYLLOGISMS) == 64
    assert len(with_valid) == 27   # with existential import (Khemlani & Johnson-Laird 2012)
    # without existential import only the Boolean-valid ones survive: fewer, and a subset
    boolean = [s for s in SYLLOGISMS if valid_conclusions(s, existential_import=False)]
    assert set(boolean) < set(with_valid)
    for s in SYLLOGISMS:
        assert set(valid_conclusions(s, existential_import=False)) <= set(valid_conclusions(s))
    # every double-particular or double-negative syllogism is NVC
    for s in SYLLOGISMS:
        if s[0] in "IO" and s[1] in "IO" or s[0] in "EO" and s[1] in "EO":
            assert valid_conclusions(s) == (), s


def test_encode_task():
    assert encode_task("Some;models;managers/All;models;clerks") == (
        "IA4", {"a": "managers", "b": "models", "c": "clerks"})
    assert encode_task("All;a;b/No;b;c")[0] == "AE1"
    assert encode_task("All;b;a/No;c;b")[0] == "AE2"
    assert encode_task("All;a;b/No;c;b")[0] == "AE3"


def test_syllogism_items_and_norm_recomputed(syllogisms):
    assert len(syllogisms) == 64
    it = syllogisms["syl-AA1"]
    t = it.meta["terms"]
    assert set(it.answer) == {f"All;{t['a']};{t['c']}", f"Some;{t['a']};{t['c']}",
                              f"Some;{t['c']};{t['a']}"}
    assert syllogisms["syl-AA3"].answer == ("NVC",)
    assert it.human.rt_ms is None and it.human.measure == "error_rate"
    assert it.meta["mood"] == "AA" and it.meta["figure"] == 1
    assert "No valid conclusion" in it.prompt
    # AA1 accuracy recomputed by hand: rows with All/All, figure 1 (prem1 pred == prem2 subj)
    df = pd.read_csv(RAGNI2016_CSV)
    hits = n = 0
    for task, resp in zip(df["task"], df["response"]):
        (q1, s1, p1), (q2, s2, p2) = (p.split(";") for p in task.split("/"))
        if q1 == q2 == "All" and p1 == s2:
            n += 1
            hits += resp in {f"All;{s1};{p2}", f"Some;{s1};{p2}", f"Some;{p2};{s1}"}
    assert n == 139
    assert it.human.accuracy == pytest.approx(hits / n)
    # an NVC item: only NVC responses count
    nvc = syllogisms["syl-II1"]
    assert nvc.human.accuracy == pytest.approx(nvc.meta["responses"].get("NVC", 0) / 139)


# ----------------------------------------------------------------------------- registry
def test_registry_and_summary():
    names = list_suites()
    assert names[:3] == ["spatial", "relational", "syllogisms"]
    assert load_suite("spatial") is load_suite("spatial")   # cached
    df = suite_summary(["spatial", "relational", "syllogisms"])
    assert list(df.columns) == ["suite", "task", "items", "norm_source", "measure",
                                "reliability"]
    assert df.set_index("task").loc["syllogisms", "measure"] == "error_rate"
    assert df.set_index("task").loc["spatial", "items"] == 56
    assert np.isfinite(df["reliability"].astype(float)).all()
