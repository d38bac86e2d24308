"""Vision-language prompts: images in, `PromptInput`s for the HF and vLLM engines out.

The pipeline, for Qwen2-VL / Qwen2.5-VL style models:
  1. images come from a dataset column as PIL images, file paths (relative to the
     data file), raw bytes, or `{"bytes": ..., "path": ...}` dicts (the parquet
     form of a `datasets.Image` column);
  2. each image is resized, keeping its aspect ratio, so that its pixel count lies
     in [min_pixels, max_pixels] and both sides are multiples of patch * merge
     (28 for Qwen2-VL), by Qwen's `smart_resize` rule (to its fixed point); the
     processor then leaves it untouched, so the HF path and vLLM (given the same
     pixel bounds) see the same number of image tokens;
  3. the prompt becomes a chat with `{"type": "image"}` content parts (at the
     `<image>` markers of the text, else all images first), rendered by the
     model's chat template, tokenized, and each `<|image_pad|>` expanded to one
     token per merged patch: `prompt_ids` is what the model sees,
     `raw_prompt_ids` (one pad per image) is what vLLM takes;
  4. image complexity (grayscale entropy and edge density) is computed once per
     dataset and cached on disk; a question's complexity averages the
     normalised image and text measures (`fastgrpo.algo.difficulty`).

Images stay as references in `VisionPromptExample.images` (resolved paths or
bytes), so a large dataset is not held decoded in memory and an example is
cheap to send between ranks; `VisionProcessor.prompt_input` decodes them when
a prompt is sampled.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fastgrpo.config import DataConfig
from fastgrpo.data.io import BadRows, DataSourceError, load_table
from fastgrpo.data.prompts import PromptExample, load_format_template, row_problem
from fastgrpo.log import get_logger
from fastgrpo.rollout.base import PromptInput

log = get_logger(__name__)

__all__ = [
    "IMAGE_MARKER",
    "EncodedPrompt",
    "ImageComplexity",
    "VisionProcessor",
    "VisionPromptExample",
    "build_messages",
    "complexity_cache_dir",
    "compute_image_complexity",
    "dataset_fingerprint",
    "expand_image_tokens",
    "load_image",
    "load_vision_prompts",
    "resize_image",
    "smart_resize",
    "stable_size",
    "vision_complexity",
]

IMAGE_MARKER = "<image>"
"""Marks where an image goes in the prompt text; the i-th marker is the i-th image."""

COMPLEXITY_VERSION = 1
"""Bump when the image measure changes, so stale cache files are not reused."""


# ----------------------------------------------------------------------------- images


def load_image(value: Any, base_dir: str | Path | None = None) -> Any:
    """One dataset cell -> an RGB PIL image.

    Accepts a PIL image, a path (absolute, `~`, `file://`, or relative to `base_dir`,
    the data file's folder), bytes, a `{"bytes": ..., "path": ...}` dict, or an array.
    """
    from PIL import Image

    if isinstance(value, Image.Image):
        img = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        img = Image.open(io.BytesIO(bytes(value)))
    elif isinstance(value, dict):
        if value.get("bytes"):
            img = Image.open(io.BytesIO(value["bytes"]))
        elif value.get("path"):
            img = Image.open(resolve_image_path(value["path"], base_dir))
        else:
            raise DataSourceError(f"image dict has neither 'bytes' nor 'path': keys {sorted(value)}")
    elif isinstance(value, (str, os.PathLike)):
        img = Image.open(resolve_image_path(value, base_dir))
    elif hasattr(value, "__array__"):
        import numpy as np

        img = Image.fromarray(np.asarray(value))
    else:
        raise DataSourceError(f"cannot read an image from a {type(value).__name__}")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def resolve_image_path(path: str | os.PathLike, base_dir: str | Path | None) -> Path:
    """An image path as the dataset wrote it -> an existing file (relative paths are relative to the data)."""
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://") :]
    p = Path(text).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    if not p.exists():
        where = f" (relative to {base_dir})" if base_dir is not None and not Path(text).is_absolute() else ""
        raise DataSourceError(f"image file not found: {text}{where}")
    return p.resolve()


def _image_size(value: Any) -> tuple[int, int]:
    """(width, height) without decoding the pixels (PIL reads only the header)."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value.size
    if isinstance(value, (bytes, bytearray, memoryview)):
        with Image.open(io.BytesIO(bytes(value))) as im:
            return im.size
    if isinstance(value, dict) and value.get("bytes"):
        with Image.open(io.BytesIO(value["bytes"])) as im:
            return im.size
    if isinstance(value, (str, os.PathLike)):
        with Image.open(value) as im:
            return im.size
    return load_image(value).size


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """(height, width): both multiples of `factor`, h*w in [min_pixels, max_pixels], aspect ratio kept.

    The same rule as Qwen2-VL's image processor, so an image resized here is not resized again there.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image has no pixels: {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"image aspect ratio must be below 200, got {width}x{height}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) is larger than max_pixels ({max_pixels})")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def stable_size(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """`smart_resize` repeated until it no longer changes the size.

    Why: for very elongated images one `smart_resize` can land above max_pixels, and the
    processor's own `smart_resize` would then shrink the image again (fewer image tokens than
    we counted). At the fixed point the processor leaves the image alone.
    """
    h, w = height, width
    for _ in range(32):
        nh, nw = smart_resize(h, w, factor, min_pixels, max_pixels)
        if (nh, nw) == (h, w):
            break
        h, w = nh, nw
    return h, w


def resize_image(image: Any, min_pixels: int, max_pixels: int, factor: int = 28) -> Any:
    """Resize a PIL image to `stable_size` (bicubic, as Qwen's processor), which the processor keeps."""
    from PIL import Image

    h, w = stable_size(image.height, image.width, factor, min_pixels, max_pixels)
    if (w, h) == image.size:
        return image
    return image.resize((w, h), Image.BICUBIC)


# ----------------------------------------------------------------------------- prompts


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
        from fastgrpo.data.chat_template import render_chat

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


@dataclass
class VisionPromptExample(PromptExample):
    """A prompt with images; `images` holds references (resolved paths, bytes), decoded on use."""

    raw_prompt_ids: list[int] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    """(width, height) of each image after resizing."""


def _image_column_as_references(table: Any, image_key: str) -> Any:
    """Stop `datasets` from decoding every image while we iterate the table: read bytes/paths instead."""
    import datasets

    feature = table.features.get(image_key)
    if isinstance(feature, datasets.Image) and feature.decode:
        return table.cast_column(image_key, datasets.Image(decode=False))
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.Image) and inner.decode:
        return table.cast_column(image_key, type(feature)(datasets.Image(decode=False)))
    return table


def _as_reference(value: Any, base_dir: Path | None) -> Any:
    """A cell value we can keep and send between ranks: resolved path string, bytes, or the PIL image."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return str(resolve_image_path(value["path"], base_dir))
        raise DataSourceError(f"image dict has neither 'bytes' nor 'path': keys {sorted(value)}")
    if isinstance(value, (str, os.PathLike)):
        return str(resolve_image_path(value, base_dir))
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def _data_dir(source: str) -> Path | None:
    p = Path(source).expanduser()
    if p.exists():
        return (p if p.is_dir() else p.parent).resolve()
    return None


def load_vision_prompts(source: str, cfg: DataConfig, processor: VisionProcessor,
                        cache_dir: str | Path | None = None,
                        bad_rows: BadRows | None = None) -> list[VisionPromptExample]:
    """Read, render and tokenize every row with its images; drop overlong prompts; set complexity.

    Image tokens count toward `data.max_prompt_length`. Rows without images are text prompts.
    Complexity: the normalised image measure (cached on disk, see `compute_image_complexity`)
    averaged with the normalised text token count.
    """
    bad_rows = bad_rows if bad_rows is not None else BadRows(cfg.on_bad_row)
    table = load_table(source, bad_rows=bad_rows)
    missing = [k for k in (cfg.prompt_key, cfg.answer_key) if k not in table.column_names]
    if missing:
        raise DataSourceError(
            f"{source}: missing column(s) {missing}; available: {table.column_names}. "
            f"Set data.prompt_key / data.answer_key to the right names."
        )
    if cfg.image_key not in table.column_names:
        log.warning("%s: no %r column (data.image_key); every prompt is text-only", source, cfg.image_key)
    else:
        table = _image_column_as_references(table, cfg.image_key)
    base_dir = _data_dir(source)
    template = load_format_template(cfg.format_prompt)
    skip = {cfg.prompt_key, cfg.answer_key, cfg.image_key}
    examples: list[VisionPromptExample] = []
    dropped = 0
    for uid, row in enumerate(table):
        problem = row_problem(row, cfg)
        if problem is not None:
            bad_rows.bad(f"{source} row {uid} (counting from 0)", problem)
            continue
        cell = row.get(cfg.image_key)
        cells = [] if cell is None else cell if isinstance(cell, list) else [cell]
        refs = [_as_reference(c, base_dir) for c in cells if c is not None]
        content = str(row[cfg.prompt_key])
        user = template.render(content=content) if template is not None else content
        text = processor.render(build_messages(user, len(refs), cfg.system_prompt))
        sizes = [processor.resized_size(*_image_size(r)) for r in refs]
        raw = list(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
        ids = expand_image_tokens(raw, processor.image_token_id, [processor.num_image_tokens(w, h) for w, h in sizes])
        if len(ids) > cfg.max_prompt_length:
            if cfg.filter_overlong_prompts or refs:  # cutting a prompt with images would cut its image tokens
                dropped += 1
                continue
            ids = raw = ids[-cfg.max_prompt_length :]
        extras = {k: v for k, v in row.items() if k not in skip}
        examples.append(VisionPromptExample(uid=uid, prompt_ids=ids, prompt_text=text, answer=str(row[cfg.answer_key]),
                                            images=refs, extras=extras, raw_prompt_ids=raw, image_sizes=sizes))
    bad_rows.report(source)
    if dropped:
        log.warning("dropped %d of %d prompts longer than data.max_prompt_length=%d (image tokens included)",
                    dropped, len(table), cfg.max_prompt_length)
    if not examples:
        raise DataSourceError(f"{source}: no usable prompts (all {len(table)} rows empty or overlong)")
    image_raw = compute_image_complexity([e.images for e in examples], cache_dir=cache_dir).values
    vocab_skip = set(processor.vision_token_ids)
    text_raw = [sum(1 for t in e.raw_prompt_ids if t not in vocab_skip) for e in examples]
    for e, c in zip(examples, vision_complexity(text_raw, image_raw), strict=True):
        e.complexity = c
    return examples


# ------------------------------------------------------------------------- complexity


def complexity_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where complexity caches live: the argument, else $FASTGRPO_CACHE_DIR/complexity, else ~/.cache/fastgrpo."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("FASTGRPO_CACHE_DIR"):
        return Path(os.environ["FASTGRPO_CACHE_DIR"]).expanduser() / "complexity"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fastgrpo" / "complexity"


def _image_key(value: Any) -> str:
    """A cheap identity for one image: path + size + mtime for files, a content hash otherwise."""
    from PIL import Image

    if isinstance(value, (str, os.PathLike)):
        p = Path(value)
        st = p.stat()
        return f"file:{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if isinstance(value, dict):
        return _image_key(value["bytes"] if value.get("bytes") else value["path"])
    h = hashlib.blake2b(digest_size=16)
    if isinstance(value, (bytes, bytearray, memoryview)):
        h.update(bytes(value))
        return "bytes:" + h.hexdigest()
    if isinstance(value, Image.Image):
        h.update(f"{value.mode}:{value.size}".encode())
        h.update(value.tobytes())
        return "pil:" + h.hexdigest()
    import numpy as np

    arr = np.ascontiguousarray(np.asarray(value))
    h.update(f"{arr.dtype}:{arr.shape}".encode())
    h.update(arr.tobytes())
    return "array:" + h.hexdigest()


def dataset_fingerprint(images: Sequence[Sequence[Any]], **params: Any) -> str:
    """Hash of every row's image identities plus the measure's parameters: the cache file's name."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"version": COMPLEXITY_VERSION, **params}, sort_keys=True).encode())
    for row in images:
        h.update(b"\x00row")
        for v in row:
            h.update(_image_key(v).encode())
            h.update(b"\x00")
    return h.hexdigest()


@dataclass
class ImageComplexity:
    values: list[list[tuple[float, float]]]
    """Per row, per image: (grayscale entropy, edge density) as `image_complexity` returns them."""
    fingerprint: str
    path: Path
    from_cache: bool


def compute_image_complexity(images: Sequence[Sequence[Any]], cache_dir: str | Path | None = None,
                             edge_threshold: float = 0.1, max_side: int | None = 512) -> ImageComplexity:
    """Raw image complexity of every row's images, computed once per dataset and cached as JSON.

    The cache file is `<cache_dir>/<fingerprint>.json`; the fingerprint covers each image's
    identity (file path/size/mtime, or a hash of its bytes) and the measure's parameters.
    """
    from fastgrpo.algo.difficulty import image_complexity

    fp = dataset_fingerprint(images, edge_threshold=edge_threshold, max_side=max_side)
    path = complexity_cache_dir(cache_dir) / f"{fp}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            values = [[(float(e), float(d)) for e, d in row] for row in data["values"]]
            if len(values) == len(images) and all(len(v) == len(r) for v, r in zip(values, images, strict=True)):
                return ImageComplexity(values, fp, path, from_cache=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        log.warning("ignoring unreadable complexity cache %s; recomputing", path)
    values = [[image_complexity(load_image(v), edge_threshold=edge_threshold, max_side=max_side) for v in row]
              for row in images]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"version": COMPLEXITY_VERSION, "fingerprint": fp, "values": values}))
        tmp.replace(path)  # atomic: ranks computing at once never read a half-written file
    except OSError as e:
        log.warning("could not write the complexity cache %s: %s", path, e)
    return ImageComplexity(values, fp, path, from_cache=False)


def vision_complexity(text_raw: Sequence[float], image_raw: Sequence[Sequence[tuple[float, float]]],
                      stats: Any | None = None) -> list[float]:
    """Per-question complexity in [0, 1]: mean of normalised text and image measures (text only without images).

    A question's raw image measure is the mean over its images of entropy and of edge density;
    min-max bounds are fitted over the dataset (`ComplexityStats`) unless `stats` is given.
    """
    from fastgrpo.algo.difficulty import ComplexityStats

    has = [len(r) > 0 for r in image_raw]
    ent = [sum(e for e, _ in r) / len(r) if r else 0.0 for r in image_raw]
    edge = [sum(d for _, d in r) / len(r) if r else 0.0 for r in image_raw]
    if stats is None:
        stats = ComplexityStats.fit(text_raw, [x for x, h in zip(ent, has, strict=True) if h],
                                    [x for x, h in zip(edge, has, strict=True) if h])
    if not any(has):
        return [float(c) for c in stats.normalize(text_raw).tolist()]
    return [float(c) for c in stats.normalize(text_raw, ent, edge, has).tolist()]
