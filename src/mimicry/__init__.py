"""mimicry: is a distilled student copying its teacher's reasoning *policy* or only its *form*?

Behaviour (generate + align), activations (capture to HDF5) and probes, for any
teacher/student/base triple of Hugging Face causal LMs. See README.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import MimicryError  # noqa: E402

# The rest is imported on first use (PEP 562), so `mimicry --help` does not load pandas/torch.
_LAZY = {"ModelSpec": ".models", "load_model": ".models", "Cache": ".store",
         "open_cache": ".store", "HumanNorms": ".tasks.items", "Item": ".tasks.items",
         "TaskSuite": ".tasks.items", "Trace": ".traces", "read_traces": ".traces"}

__all__ = [
    "__version__", "MimicryError", "ModelSpec", "load_model", "HumanNorms", "Item",
    "TaskSuite", "Trace", "read_traces", "open_cache", "Cache",
]


def __getattr__(name: str):
    """Return a public name, importing its module on first use."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
