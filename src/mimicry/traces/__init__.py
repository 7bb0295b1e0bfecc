"""traces: what a model wrote, and the text it is read back as.

Modules: ``trace`` (the :class:`Trace` row, JSONL read/append, splitting a completion into
reasoning and answer), ``prompt`` (how a prompt is shown to a model: its chat template or the
raw text), ``scramble`` (format-preserving content scrambles of the reasoning), ``controls``
(the empty and length-matched filler reasonings of the reliance controls). New code that builds
or reads trace text goes here.
"""

from __future__ import annotations

from .._lazy import lazy

__all__ = ["CONTROLS", "THINK_CLOSE", "THINK_OPEN", "Trace", "append_traces", "build_text",
           "control_file", "empty_traces", "filler_traces", "prompt_opens_think", "read_traces", "render_prompt", "scramble_file",
           "scramble_text", "scramble_traces", "split_reasoning", "traces_frame"]

__getattr__, __dir__ = lazy(__name__, {
    **dict.fromkeys(["THINK_CLOSE", "THINK_OPEN", "Trace", "append_traces", "read_traces",
                     "split_reasoning", "traces_frame"], ".trace"),
    **dict.fromkeys(["build_text", "prompt_opens_think", "render_prompt"], ".prompt"),
    **dict.fromkeys(["scramble_file", "scramble_text", "scramble_traces"], ".scramble"),
    **dict.fromkeys(["CONTROLS", "control_file", "empty_traces", "filler_traces"], ".controls"),
})
