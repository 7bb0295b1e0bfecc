"""Items, human difficulty norms, built-in suites (CCOBRA) and user files, answer scoring."""

from .items import HumanNorms, Item, TaskSuite

__all__ = ["HumanNorms", "Item", "TaskSuite"]
