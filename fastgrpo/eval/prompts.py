"""Questions -> chat prompts -> `PromptInput`s for the rollout engines.

Why the chat template: the reference evaluation asks every model through its own
chat template (Qwen2-VL's for vision, with the system prompt "You are a helpful
assistant."), so the prompt tokens here are exactly what the model was trained on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

from fastgrpo.data.chat_template import render_chat
from fastgrpo.data.processor import build_messages
from fastgrpo.data.prompts import load_format_template
from fastgrpo.eval.choices import format_options
from fastgrpo.eval.data import EvalItem
from fastgrpo.eval.registry import BenchmarkSpec
from fastgrpo.rollout.base import PromptInput

IMAGE_PLACEHOLDER = "<image>"


class EvalSetupError(ValueError):
    """The model cannot run this benchmark (e.g. images without a vision processor); exit 2 on the CLI."""


def render_user_text(spec: BenchmarkSpec, item: EvalItem) -> str:
    """The user turn: the benchmark template with the question (and options) filled in.

    `{question}` / `{options}` placeholders are replaced as plain text (questions are full of LaTeX
    braces); anything else is a Jinja template (inline, or a .jinja file) rendered with `content`,
    exactly as training renders `data.format_prompt`.
    """
    template = spec.prompt
    options = format_options(item.options)
    if ("{question}" in template or "{options}" in template) and "{{" not in template:
        return template.replace("{question}", item.question).replace("{options}", options)
    jinja = load_format_template(template)
    assert jinja is not None
    return jinja.render(content=item.question, question=item.question, options=options)


def chat_messages(spec: BenchmarkSpec, user_text: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if spec.system_prompt:
        messages.append({"role": "system", "content": spec.system_prompt})
    messages.append({"role": "user", "content": user_text})
    return messages


def text_prompt_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """Token ids of the chat prompt, generation turn opened; plain text when there is no chat template."""
    if getattr(tokenizer, "chat_template", None):
        text = render_chat(tokenizer, messages)
    else:
        text = "\n\n".join(m["content"] for m in messages) + "\n"
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def has_vision(processor: Any) -> bool:
    return processor is not None and getattr(processor, "image_processor", None) is not None


class VisionProcessorBuilder:
    """Vision prompts through the training data path (`fastgrpo.data.processor.VisionProcessor`).

    Same chat rendering, image resizing (pixel bounds) and image-token expansion as training, so a
    model is asked exactly the way it was trained; works without torchvision.
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, messages: list[dict[str, Any]], images: list[Any]) -> PromptInput:
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        chat = build_messages(messages[-1]["content"], len(images), system)
        pil = [self.processor.prepare_image(im) for im in images]
        enc = self.processor.encode(self.processor.render(chat), pil)
        return PromptInput(prompt_ids=enc.prompt_ids, images=pil, processor_inputs=enc.processor_inputs)


def default_vision_builder(processor: Any) -> VisionPromptBuilder | None:
    """The builder for a model's processor: the training `VisionProcessor`, a HF processor, or None (text model)."""
    if not has_vision(processor):
        return None
    if hasattr(processor, "encode") and hasattr(processor, "prepare_image"):
        return VisionProcessorBuilder(processor)
    return ProcessorPromptBuilder(processor)


def _open_image(value: Any) -> Any:
    from PIL import Image

    image = Image.open(value) if isinstance(value, str | Path) else value
    return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image


class VisionPromptBuilder(Protocol):
    def __call__(self, messages: list[dict[str, Any]], images: list[Any]) -> PromptInput: ...


class ProcessorPromptBuilder:
    """Default vision prompts through a HF processor (Qwen2-VL style): `<image>` marks where each image goes.

    The vision engineer's processor path can replace this (pass `vision_builder=` to `evaluate`).
    """

    def __init__(self, processor: Any, min_pixels: int | None = None, max_pixels: int | None = None) -> None:
        self.processor = processor
        self.kwargs: dict[str, Any] = {}
        if min_pixels:
            self.kwargs["min_pixels"] = min_pixels
        if max_pixels:
            self.kwargs["max_pixels"] = max_pixels

    def __call__(self, messages: list[dict[str, Any]], images: list[Any]) -> PromptInput:
        pil = [_open_image(im) for im in images]
        structured = []
        for m in messages:
            if m["role"] != "user":
                structured.append({"role": m["role"], "content": [{"type": "text", "text": m["content"]}]})
                continue
            parts = re.split(f"({re.escape(IMAGE_PLACEHOLDER)})", m["content"])
            content: list[dict[str, Any]] = []
            if IMAGE_PLACEHOLDER not in m["content"]:
                content += [{"type": "image"} for _ in pil]
            for part in parts:
                if part == IMAGE_PLACEHOLDER:
                    content.append({"type": "image"})
                elif part:
                    content.append({"type": "text", "text": part})
            structured.append({"role": "user", "content": content})
        text = render_chat(self.processor, structured)
        enc = self.processor(text=[text], images=pil or None, return_tensors="pt", **self.kwargs)
        extra = {k: enc[k] for k in ("pixel_values", "image_grid_thw") if k in enc}
        return PromptInput(
            prompt_ids=enc["input_ids"][0].tolist(), images=pil, processor_inputs=extra or None
        )


def build_prompt(
    spec: BenchmarkSpec, item: EvalItem, tokenizer: Any, vision_builder: VisionPromptBuilder | None = None
) -> PromptInput:
    messages = chat_messages(spec, render_user_text(spec, item))
    if item.images:
        if vision_builder is None:
            raise EvalSetupError(
                f"benchmark {spec.name!r} has images, but the model has no vision processor; "
                "evaluate a vision-language model (with preprocessor_config.json) or choose text benchmarks"
            )
        return vision_builder(messages, item.images)
    if IMAGE_PLACEHOLDER in messages[-1]["content"] and spec.modality == "vision":
        messages[-1]["content"] = messages[-1]["content"].replace(IMAGE_PLACEHOLDER, "")
    return PromptInput(prompt_ids=text_prompt_ids(tokenizer, messages))
