"""Items, human difficulty norms, built-in suites (CCOBRA) and user files, answer scoring.

``load_suite("spatial" | "relational" | "syllogisms" | "items.csv")`` returns a
:class:`TaskSuite`; ``score_answer(item, answer_text)`` returns ``(parsed_answer, correct)``.
See docs/tasks.md.
"""

from .items import HumanNorms, Item, TaskSuite
from .registry import list_suites, load_suite, register_suite, suite_info, suite_summary
from .scoring import register_scorer, score_answer
from .userfile import export_suite, load_items_file

__all__ = ["HumanNorms", "Item", "TaskSuite", "load_suite", "list_suites", "register_suite",
           "suite_info", "suite_summary", "export_suite", "load_items_file", "score_answer",
           "register_scorer"]
