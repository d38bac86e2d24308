"""The Qwen-VL prompt processor: chat messages with image parts, image patches, image-token expansion.

Rendering a prompt, tokenizing it and expanding each `<|image_pad|>` to one token per merged patch:
`prompt_ids` is what the model sees, `raw_prompt_ids` (one pad per image) is what vLLM takes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fastgrpo.data.chat_template import render_chat
from fastgrpo.data.images import load_image, resize_image, stable_size
from fastgrpo.data.io import DataSourceError
from fastgrpo.rollout.base import PromptInput

if TYPE_CHECKING:
    from fastgrpo.data.vision import VisionPromptExample

__all__ = ["IMAGE_MARKER", "EncodedPrompt", "VisionProcessor", "build_messages", "expand_image_tokens",
           "load_image_processor"]

IMAGE_MARKER = "<image>"
"""Marks where an image goes in the prompt text; the i-th marker is the i-th image."""


def build_messages(text: str, num_images: int, system_prompt: str | None = None) -> list[dict[str, Any]]:
    """A chat whose user turn has `num_images` image parts.

    `<image>` markers in `text` place the images (their count must equal `num_images`);
    without markers the images come first, then the text, as Qwen's examples do.
    """
    pieces = text.split(IMAGE_MARKER)
    n_markers = len(pieces) - 1
    content: list[dict[str, Any]] = []
    if n_markers:
        if n_markers != num_images:
            raise DataSourceError(
                f"prompt has {n_markers} {IMAGE_MARKER} marker(s) but {num_images} image(s): {text[:120]!r}"
            )
        for i, piece in enumerate(pieces):
            if piece:
                content.append({"type": "text", "text": piece})
            if i < n_markers:
                content.append({"type": "image"})
    else:
        content = [{"type": "image"} for _ in range(num_images)]
        if text:
            content.append({"type": "text", "text": text})
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": content})
    return messages


def expand_image_tokens(ids: Sequence[int], image_token_id: int, counts: Sequence[int]) -> list[int]:
    """Replace the i-th `image_token_id` by `counts[i]` copies (what Qwen's processor does to the text)."""
    out: list[int] = []
    k = 0
    for t in ids:
        if t == image_token_id:
            if k >= len(counts):
                raise ValueError(f"prompt has more image tokens than images ({len(counts)})")
            out.extend([image_token_id] * counts[k])
            k += 1
        else:
            out.append(t)
    if k != len(counts):
        raise ValueError(f"prompt has {k} image token(s) but {len(counts)} image(s)")
    return out


@dataclass
class EncodedPrompt:
    prompt_ids: list[int]
    """Token ids the model sees: each image's pad token expanded to one per merged patch."""
    raw_prompt_ids: list[int]
    """The same prompt with one pad token per image (vLLM expands it itself)."""
    processor_inputs: dict[str, torch.Tensor] | None
    """`pixel_values` [patches, C*T*P*P] and `image_grid_thw` [images, 3]; None without images."""


def load_image_processor(path: str | Path, trust_remote_code: bool = False) -> Any:
    """`AutoImageProcessor.from_pretrained`, or the model's PIL image processor where that asks for torchvision.

    Why: up to transformers 5.2x (5.16.1, the lowest we admit, included) `AutoImageProcessor` as a whole
    requires torchvision, although the PIL class of the same processor (`Qwen2VLImageProcessorPil`) works
    without it; newer releases pick the PIL class themselves. Training and eval never need torchvision.
    """
    import transformers
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except ImportError:
        config_file = Path(path) / "preprocessor_config.json"
        if not config_file.is_file():
            raise
        config = json.loads(config_file.read_text(encoding="utf-8"))
        custom = (config.get("auto_map") or {}).get("AutoImageProcessor")
        if custom:  # code shipped in the folder: what AutoImageProcessor would have run
            if not trust_remote_code:
                raise ValueError(f"{path} defines its image processor in custom code ({custom}); loading it runs "
                                 "that code: set trust_remote_code (model.trust_remote_code=true) if you trust it") from None
            from transformers.dynamic_module_utils import get_class_from_dynamic_module

            ref = custom if isinstance(custom, str) else next(c for c in custom if c)
            return get_class_from_dynamic_module(ref, str(path)).from_pretrained(str(path))
        name = str(config.get("image_processor_type") or "")
        pil_class = getattr(transformers, name.removesuffix("Fast") + "Pil", None) if name else None
        if pil_class is None:
            raise
        return pil_class.from_pretrained(str(path))


class VisionProcessor:
    """The part of a Qwen-VL processor the trainer needs: chat template, image patches, token expansion.

    Why not `AutoProcessor`: transformers 5 cannot build any Qwen-VL processor without torchvision
    (its video processor needs it), and our training never uses video. This class uses the
    model's own tokenizer, chat template and image processor, so its output matches the official
    processor's for images already resized by `resize_image`. Build it with `from_pretrained`
    (a model folder) or `from_processor` (an official processor object).
    """

    def __init__(self, tokenizer: Any, image_processor: Any, min_pixels: int | None = None,
                 max_pixels: int | None = None, chat_template: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        if not self.chat_template:
            raise DataSourceError("the model's tokenizer has no chat template; a vision prompt needs one")
        self.patch_size = int(getattr(image_processor, "patch_size", 14))
        self.merge_size = int(getattr(image_processor, "merge_size", 2))
        size = getattr(image_processor, "size", None) or {}
        get = size.get if isinstance(size, dict) else lambda k, d=None: getattr(size, k, d)
        self.min_pixels = int(min_pixels or get("shortest_edge", None) or 56 * 56)
        self.max_pixels = int(max_pixels or get("longest_edge", None) or 28 * 28 * 1280)
        vocab = tokenizer.get_vocab()
        missing = [t for t in ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>") if t not in vocab]
        if missing:
            raise DataSourceError(f"the tokenizer lacks the Qwen vision tokens {missing}; is this a Qwen-VL model?")
        self.image_token_id = int(vocab["<|image_pad|>"])
        self.video_token_id = int(vocab["<|video_pad|>"]) if "<|video_pad|>" in vocab else None
        self.vision_start_token_id = int(vocab["<|vision_start|>"])
        self.vision_end_token_id = int(vocab["<|vision_end|>"])

    @classmethod
    def from_pretrained(cls, path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None,
                        trust_remote_code: bool = False) -> VisionProcessor:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
            image_processor = load_image_processor(path, trust_remote_code=trust_remote_code)
        except Exception as e:
            raise DataSourceError(f"could not load the processor of {path}: {type(e).__name__}: {e}") from None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(tokenizer, image_processor, min_pixels, max_pixels, chat_template=_folder_chat_template(path))

    @classmethod
    def from_processor(cls, processor: Any, min_pixels: int | None = None,
                       max_pixels: int | None = None) -> VisionProcessor:
        return cls(processor.tokenizer, processor.image_processor, min_pixels, max_pixels,
                   chat_template=getattr(processor, "chat_template", None))

    @property
    def factor(self) -> int:
        """Image sides must be multiples of this (patch * merge: 28 for Qwen2-VL)."""
        return self.patch_size * self.merge_size

    @property
    def vision_token_ids(self) -> list[int]:
        """Tokens a response must never contain (the engines suppress them)."""
        ids = [self.image_token_id, self.vision_start_token_id, self.vision_end_token_id]
        return ids + ([self.video_token_id] if self.video_token_id is not None else [])

    def render(self, messages: list[dict[str, Any]]) -> str:
        return render_chat(self.tokenizer, messages, chat_template=self.chat_template)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after `resize_image` with this processor's bounds."""
        h, w = stable_size(height, width, self.factor, self.min_pixels, self.max_pixels)
        return w, h

    def num_image_tokens(self, width: int, height: int) -> int:
        w, h = self.resized_size(width, height)
        return (h // self.patch_size) * (w // self.patch_size) // (self.merge_size**2)

    def prepare_image(self, value: Any, base_dir: str | Path | None = None) -> Any:
        """Decode and resize one image so the processor keeps its size."""
        return resize_image(load_image(value, base_dir), self.min_pixels, self.max_pixels, self.factor)

    def encode(self, text: str, images: Sequence[Any]) -> EncodedPrompt:
        """Tokenize a rendered prompt and compute the image patches; `images` are already resized PIL images."""
        raw = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if not images:
            if self.image_token_id in raw:
                raise ValueError("prompt has an image token but no image was given")
            return EncodedPrompt(raw, raw, None)
        out = self.image_processor(images=list(images), return_tensors="pt",
                                   size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels})
        grid = out["image_grid_thw"]
        counts = [int(g.prod()) // self.merge_size**2 for g in grid]
        ids = expand_image_tokens(raw, self.image_token_id, counts)
        return EncodedPrompt(ids, raw, {"pixel_values": out["pixel_values"], "image_grid_thw": grid})

    def prompt_input(self, example: VisionPromptExample, with_processor_inputs: bool = True) -> PromptInput:
        """The engine input for one example: decoded, resized images and (for HF) the processor tensors.

        The vLLM engine needs only `images` (pass `with_processor_inputs=False` to skip the patches);
        the HF engine and `fastgrpo.train.vision_batch.pack_vision` need `processor_inputs`.
        """
        images = [self.prepare_image(v) for v in example.images]
        if with_processor_inputs:
            enc = self.encode(example.prompt_text, images)
            if enc.prompt_ids != example.prompt_ids:
                raise DataSourceError(
                    f"prompt {example.uid}: its images give {len(enc.prompt_ids)} tokens now but gave "
                    f"{len(example.prompt_ids)} when the data was loaded (did an image file change?)"
                )
            return PromptInput(enc.prompt_ids, images=images, processor_inputs=enc.processor_inputs, uid=example.uid)
        return PromptInput(list(example.prompt_ids), images=images, processor_inputs=None, uid=example.uid)


def _folder_chat_template(path: str | Path) -> str | None:
    """A processor-level chat template (chat_template.jinja / .json) of a local model folder, if any.

    Some Qwen-VL checkpoints keep the template only there, not in the tokenizer config.
    """
    folder = Path(path).expanduser()
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    if (folder / "chat_template.json").is_file():
        try:
            return json.loads((folder / "chat_template.json").read_text()).get("chat_template")
        except (ValueError, AttributeError):
            return None
    return None
