"""How a prompt is shown to a model: its chat template when it has one, else the raw text.

Generation and capture both go through :func:`render_prompt`, so a capture replays exactly
the text the model saw when it generated; :func:`build_text` is the one prompt + reasoning +
answer text that capture reads and ``answer_after`` continues.
"""

from __future__ import annotations

from .trace import THINK_CLOSE, THINK_OPEN, Trace


def render_prompt(tokenizer, prompt: str, chat_template: str = "auto") -> str:
    """Return the text fed to the model for ``prompt`` (chat template + generation prompt).

    ``chat_template``: ``"auto"`` uses the tokenizer's template when it has one, ``"none"``
    uses the raw prompt; any other string was already set on the tokenizer by
    :func:`mimicry.models.load_tokenizer`.
    """
    if chat_template == "none" or not getattr(tokenizer, "chat_template", None):
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


def prompt_opens_think(rendered_prompt: str) -> bool:
    """Return True if the rendered prompt leaves a ``<think>`` open for the model."""
    tail = rendered_prompt.rstrip()
    return tail.endswith(THINK_OPEN) or (
        THINK_OPEN in tail and tail.rfind(THINK_OPEN) > tail.rfind(THINK_CLOSE))


def build_text(tok, trace: Trace, chat_template: str = "auto") -> tuple[str, int, int, bool]:
    """Return ``(text, prompt_end_char, reasoning_end_char, truncated)`` for a trace."""
    rendered = render_prompt(tok, trace.prompt, chat_template)
    reasoning = trace.reasoning or ""
    answer = trace.answer_text or ""
    truncated = trace.cut_before_answer
    text = rendered + ("" if prompt_opens_think(rendered) else THINK_OPEN + "\n") + reasoning
    if truncated:
        return text, len(rendered), len(text), True
    text += "\n" + THINK_CLOSE
    r_end = len(text)
    return text + "\n\n" + answer, len(rendered), r_end, False
