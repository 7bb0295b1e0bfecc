"""Items, human difficulty norms, built-in suites (CCOBRA) and user files, answer scoring.

``load_suite("spatial" | "relational" | "syllogisms" | "items.csv")`` returns a
:class:`TaskSuite`; ``score_answer(item, answer_text)`` returns ``(parsed_answer, correct)``.
See docs/tasks.md.
"""

from __future__ import annotations

from .._lazy import lazy

__all__ = ["HumanNorms", "Item", "TaskSuite", "load_suite", "list_suites", "register_suite",
           "suite_info", "suite_summary", "export_suite", "load_items_file", "score_answer",
           "register_scorer"]

__getattr__, __dir__ = lazy(__name__, {
    'HumanNorms': '.items',
    'Item': '.items',
    'TaskSuite': '.items',
    'list_suites': '.registry',
    'load_suite': '.registry',
    'register_suite': '.registry',
    'suite_info': '.registry',
    'suite_summary': '.registry',
    'register_scorer': '.scoring',
    'score_answer': '.scoring',
    'export_suite': '.userfile',
    'load_items_file': '.userfile',
})
