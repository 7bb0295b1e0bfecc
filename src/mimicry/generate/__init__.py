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

from __future__ import annotations

from .._lazy import lazy

__all__ = ["GenerateResult", "Segmented", "answer_after", "generate", "import_traces",
           "segment_ids", "summarize"]

__getattr__, __dir__ = lazy(__name__, {
    'answer_after': '.forced',
    'import_traces': '.importer',
    'GenerateResult': '.generation',
    'generate': '.generation',
    'summarize': '.generation',
    'Segmented': '.segments',
    'segment_ids': '.segments',
})
