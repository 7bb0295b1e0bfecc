"""Suite registry: registration, caching, lazy plugins, `tasks check`."""

from __future__ import annotations

import sys
import types

import pytest

import mimicry.tasks.registry as reg
from experiments.cli import main
from mimicry.errors import InputError
from mimicry.tasks import HumanNorms, Item, TaskSuite, load_suite, register_suite, score_answer


def _tiny_suite(name="tiny"):
    return TaskSuite(name, [Item("t1", "tiny_task", "2+2? Answer with a number.", "4",
                                 HumanNorms(rt_ms=500.0))])


def test_register_suite_is_lazy_and_cached():
    calls = []

    def loader():
        calls.append(1)
        return _tiny_suite()

    register_suite("tiny_test_suite", loader, "a test suite", "made up")
    try:
        assert calls == []                                    # nothing built at registration
        s1 = load_suite("tiny_test_suite")
        s2 = load_suite("tiny_test_suite")
        assert s1 is s2 and calls == [1]                      # built once
        assert "tiny_test_suite" in reg.list_suites()
        df = reg.suite_summary(["tiny_test_suite"])
        assert df.iloc[0].to_dict() == {"suite": "tiny", "task": "tiny_task", "items": 1,
                                        "norm_source": "made up", "measure": "rt_ms",
                                        "reliability": None}
        assert score_answer(s1["t1"], "\\boxed{4}") == ("4", True)
    finally:
        reg._REGISTRY.pop("tiny_test_suite", None)
        reg._CACHE.pop("tiny_test_suite", None)
    with pytest.raises(ValueError):
        register_suite("bad/name", loader)


def test_plugin_module_auto_registration(monkeypatch):
    mod = types.ModuleType("fake_plugin_for_test")
    mod.__doc__ = "A fake plugin task."
    mod.SUITE = "fake_plugin_suite"
    mod.TASK = "fake_plugin_task"
    mod.build_suite = lambda: _tiny_suite("fake_plugin_suite")
    mod.score_answer = lambda item, text: ("x", text == "x")
    monkeypatch.setitem(sys.modules, "fake_plugin_for_test", mod)
    monkeypatch.setattr(reg, "PLUGIN_MODULES", ["fake_plugin_for_test", "no_such_module_xyz"])
    monkeypatch.setattr(reg, "_plugins_loaded", False)
    try:
        assert "fake_plugin_suite" in reg.list_suites()
        assert len(load_suite("fake_plugin_suite")) == 1
        item = Item("f1", "fake_plugin_task", answer="x", human=HumanNorms(rt_ms=1.0))
        assert score_answer(item, "x") == ("x", True)
    finally:
        reg._REGISTRY.pop("fake_plugin_suite", None)
        reg._CACHE.pop("fake_plugin_suite", None)
        from mimicry.tasks.scoring import _SCORERS

        _SCORERS.pop("fake_plugin_task", None)


def test_load_suite_accepts_path_objects_and_suites(tmp_path):
    p = tmp_path / "mine"          # no suffix: a Path is always a file
    p.write_text("item_id,task,human_accuracy\nq1,t,0.5\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_suite(p)
    assert "unknown file type" in str(e.value)
    s = _tiny_suite()
    assert load_suite(s) is s


def test_tasks_check_cli(tmp_path, capsys):
    p = tmp_path / "items.csv"
    p.write_text("item_id,task,human_rt_ms\nq1,t,100\nq2,t,250\n", encoding="utf-8")
    assert main(["tasks", "check", str(p)]) == 0
    out = capsys.readouterr().out
    assert "items" in out and " 2 " in out and "lack a prompt or answer" in out
