"""What a chat template writes into the generation prompt about the thinking span.

Some templates open the thinking span themselves: DeepSeek-R1-Distill's generation prompt ends with
`<｜Assistant｜><think>\\n`, so its responses start inside the span and hold only `</think>`. Qwen3's
template with `enable_thinking=False` writes an empty, already closed `<think>\\n\\n</think>\\n\\n`. ChatML
(Qwen2.5) writes neither. The format reward and eval's format metric must know which, or every response
of an R1-Distill model scores as badly formatted (TRL #6966 is the same trap).

Why render instead of matching model names or searching the template source: the source can mention
`<think>` in branches that do not run (Qwen3 closes the span only when thinking is off), and a renamed or
fine-tuned model keeps its template but not its name. Rendering one fixed conversation with and without
the generation prompt shows exactly what the model will be given. Done once at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "ThinkSpan",
    "detect_think_in_prompt",
    "generation_prompt_opens_think",
    "generation_prompt_tail",
    "think_span_in_prompt",
]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ThinkSpan = Literal["open", "closed", "none"]
_PROBE = "fastgrpo-probe: 1+1=?"


def generation_prompt_tail(
    tokenizer: Any, chat_template_kwargs: Mapping[str, Any] | None = None, chat_template: str | None = None
) -> str:
    """The text the chat template adds after a user turn when asked for the generation prompt.

    Renders `[user]` with and without `add_generation_prompt` and returns the difference (for
    R1-Distill `<｜Assistant｜><think>\\n`, for ChatML `<|im_start|>assistant\\n`). `chat_template`
    overrides the tokenizer's own (a vision model's chat_template.json). Without any template: ""
    (prompts are then plain text, see `data.prompts.render_prompt`).
    """
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if not template:
        return ""
    messages = [{"role": "user", "content": _PROBE}]
    kwargs = {**(chat_template_kwargs or {}), "chat_template": template}
    with_prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    without = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False, **kwargs)
    if with_prompt.startswith(without):
        return with_prompt[len(without):]
    # A template that ends the user turn differently when a reply follows: take what follows the probe.
    at = with_prompt.rfind(_PROBE)
    return with_prompt[at + len(_PROBE):] if at >= 0 else ""


def think_span_in_prompt(
    tokenizer: Any, chat_template_kwargs: Mapping[str, Any] | None = None, chat_template: str | None = None
) -> ThinkSpan:
    """`open`: the generation prompt leaves `<think>` open (the response closes it); `closed`: it holds a
    whole `<think>...</think>` block (the response has no span); `none`: it holds no thinking tag."""
    tail = generation_prompt_tail(tokenizer, chat_template_kwargs, chat_template)
    opened, closed = tail.rfind(THINK_OPEN), tail.rfind(THINK_CLOSE)
    if opened < 0 and closed < 0:
        return "none"
    return "open" if opened > closed else "closed"


def generation_prompt_opens_think(
    tokenizer: Any, chat_template_kwargs: Mapping[str, Any] | None = None, chat_template: str | None = None
) -> bool:
    """Whether responses start inside the thinking span (graders then expect only `</think>`)."""
    return think_span_in_prompt(tokenizer, chat_template_kwargs, chat_template) == "open"


def detect_think_in_prompt(tokenizer: Any, chat_template: str | None = None) -> bool:
    """`generation_prompt_opens_think`, logged, for start-up (training and eval call this once).

    A template that closes the span itself (Qwen3 with thinking off) gets a warning: its responses cannot
    hold a thinking span, so the `think_*` format reward is 0 for all of them.
    """
    from fastgrpo.log import get_logger

    log = get_logger(__name__)
    span = think_span_in_prompt(tokenizer, chat_template=chat_template)
    if span == "open":
        log.info("the chat template opens <think> in the generation prompt: responses are graded as starting "
                 "inside the thinking span (only </think> expected)")
    elif span == "closed":
        log.warning("the chat template writes a closed <think>...</think> block into the generation prompt "
                    "(thinking switched off?): responses have no thinking span, so a think_* reward.template "
                    "scores format 0")
    return span == "open"
