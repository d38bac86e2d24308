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
from pathlib import Path
from typing import Any, Literal

from fastgrpo.data.io import DataSourceError

__all__ = [
    "ChatTemplateError",
    "ThinkSpan",
    "chat_template_kwargs_of",
    "configure_chat_template",
    "detect_think_in_prompt",
    "generation_prompt_opens_think",
    "generation_prompt_tail",
    "load_chat_template",
    "render_chat",
    "think_span_in_prompt",
]

_KWARGS_ATTR = "fastgrpo_chat_template_kwargs"
"""Attribute of a tokenizer / processor holding data.chat_template_kwargs (see `configure_chat_template`)."""
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
    kwargs = {**chat_template_kwargs_of(tokenizer), **(chat_template_kwargs or {}), "chat_template": template}
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


# ----------------------------------------------------------- data.override_chat_template / chat_template_kwargs
class ChatTemplateError(DataSourceError):
    """data.override_chat_template / chat_template_kwargs cannot be used; the message names the key."""


def load_chat_template(value: str | None) -> str | None:
    """The Jinja text of data.override_chat_template: the file it names, or the value itself; syntax-checked.

    Text holding `{{` or `{%` is a template; anything else is a path (a missing file is an error, not a
    template that prints its own path). A syntax error is reported with its line, naming the key.
    """
    if not value:
        return None
    key = "data.override_chat_template"
    text = value
    if "{{" not in value and "{%" not in value:
        path = Path(value).expanduser()
        if not path.is_file():
            raise ChatTemplateError(f"{key}: {value!r} is neither a Jinja template (no {{{{ or {{%) nor an existing "
                                    "file; give the template text or the path to a .jinja file")
        text = path.read_text(encoding="utf-8")
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:  # the environment transformers renders chat templates in
        ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"]).parse(text)
    except jinja2.TemplateSyntaxError as e:
        where = f" ({value})" if text is not value else ""
        raise ChatTemplateError(f"{key}{where}: not a valid Jinja template: {e.message} at line {e.lineno}") from None
    return text


def chat_template_kwargs_of(obj: Any) -> dict[str, Any]:
    """The data.chat_template_kwargs configured on a tokenizer or processor (or its tokenizer); {} if none."""
    for target in (obj, getattr(obj, "tokenizer", None)):
        kwargs = getattr(target, _KWARGS_ATTR, None) if target is not None else None
        if kwargs:
            return dict(kwargs)
    return {}


def configure_chat_template(data: Any, *targets: Any) -> None:
    """Apply data.override_chat_template and data.chat_template_kwargs to tokenizers / processors, in place.

    The one place training (`load_prompts`, vision prompts), validation and `fastgrpo eval --config` get their
    chat template from: each configures the tokenizer (and processor) it loaded, and every prompt is then
    rendered by `render_chat`, which reads the settings from that object. So the three cannot drift apart, and
    anything that renders through the object (think-span detection, the run's hf_base) sees the same template.
    `data`: a DataConfig (None: nothing to do). Checks the result by rendering one prompt, so a template that
    does not compile or fails on a plain conversation stops here, naming the key, before any weights load.
    """
    if data is None:
        return
    template = load_chat_template(getattr(data, "override_chat_template", None))
    kwargs = dict(getattr(data, "chat_template_kwargs", None) or {})
    if template is None and not kwargs:
        return
    for obj in targets:
        if obj is None:
            continue
        for target in (obj, getattr(obj, "tokenizer", None)):
            if target is None:
                continue
            if template is not None:
                target.chat_template = template
            setattr(target, _KWARGS_ATTR, kwargs)
    if not targets or all(t is None for t in targets):
        return
    first = next(t for t in targets if t is not None)
    if not (getattr(first, "chat_template", None) or getattr(getattr(first, "tokenizer", None), "chat_template", None)):
        from fastgrpo.log import get_logger

        get_logger(__name__).warning("data.chat_template_kwargs is set but the model has no chat template: prompts "
                                     "are plain text and the settings have no effect")
        return
    key = "data.override_chat_template" if template is not None else "data.chat_template_kwargs"
    try:
        render_chat(first, [{"role": "user", "content": _PROBE}])
    except Exception as e:  # jinja2's TemplateError, or the template's own raise_exception
        raise ChatTemplateError(f"{key}: rendering a one-question prompt with it failed: "
                                f"{type(e).__name__}: {e}") from None

def render_chat(obj: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = True,
                chat_template: str | None = None) -> str:
    """`obj.apply_chat_template(messages)` as text, with the configured data.chat_template_kwargs.

    `obj`: a tokenizer or a processor (vision); `chat_template` overrides its own (a VisionProcessor passes
    its processor-level template to its tokenizer).
    """
    if not hasattr(obj, "apply_chat_template"):  # a VisionProcessor: its tokenizer renders its own template
        chat_template, obj = chat_template or obj.chat_template, obj.tokenizer
    extra: dict[str, Any] = {"chat_template": chat_template} if chat_template else {}
    return obj.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                   **chat_template_kwargs_of(obj), **extra)
