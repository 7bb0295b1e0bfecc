"""Behavioural runs: one trace per model × item.

- :func:`generate` runs a model over a task suite with the ``hf`` backend (batched
  ``transformers.generate``, left padding, greedy by default) or the ``openai`` backend (any
  OpenAI-compatible server: vLLM, SGLang, TGI, ``transformers serve``), appending traces to
  a JSONL file and resuming where it stopped.
- :func:`import_traces` validates traces made elsewhere (CSV/JSONL) and writes trace JSONL.
- :func:`segment_ids` splits generated ids at ``</think>`` with exact token counts.
- :func:`answer_after` lets a model answer after a GIVEN reasoning (e.g. its own, scrambled):
  the behavioural reliance test (``probes.reliance``).

See docs/generate.md.
"""

from .forced import answer_after
from .importer import import_traces
from .run import GenerateResult, generate, summarize
from .segments import Segmented, segment_ids

__all__ = ["GenerateResult", "Segmented", "answer_after", "generate", "import_traces",
           "segment_ids", "summarize"]
