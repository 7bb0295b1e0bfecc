"""mimicry: is a distilled student copying its teacher's reasoning *policy* or only its *form*?

Behaviour (generate + align), activations (capture to HDF5) and probes, for any
teacher/student/base triple of Hugging Face causal LMs. See README.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import MimicryError  # noqa: E402
from .models import ModelSpec, load_model  # noqa: E402
from .store import Cache, open_cache  # noqa: E402
from .tasks.items import HumanNorms, Item, TaskSuite  # noqa: E402
from .traces import Trace, read_traces  # noqa: E402

__all__ = [
    "__version__", "MimicryError", "ModelSpec", "load_model", "HumanNorms", "Item",
    "TaskSuite", "Trace", "read_traces", "open_cache", "Cache",
]
