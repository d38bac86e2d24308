"""Vision-language training prompts: a table with an image column in, `VisionPromptExample`s out.

The pipeline, for Qwen2-VL / Qwen2.5-VL style models:
  1. images come from a dataset column as PIL images, file paths (relative to the
     data file), raw bytes, or `{"bytes": ..., "path": ...}` dicts (the parquet
     form of a `datasets.Image` column), read by `fastgrpo.data.images`;
  2. each image is resized, keeping its aspect ratio, so that its pixel count lies
     in [min_pixels, max_pixels] and both sides are multiples of patch * merge
     (28 for Qwen2-VL), by Qwen's `smart_resize` rule (to its fixed point); the
     processor then leaves it untouched, so the HF path and vLLM (given the same
     pixel bounds) see the same number of image tokens;
  3. the prompt becomes a chat with `{"type": "image"}` content parts (at the
     `<image>` markers of the text, else all images first), rendered and tokenized
     by `fastgrpo.data.processor.VisionProcessor`;
  4. image complexity (grayscale entropy and edge density) is computed once per
     dataset and cached on disk (`fastgrpo.data.complexity`); a question's complexity
     averages the normalised image and text measures.

Images stay as references in `VisionPromptExample.images` (resolved paths or
bytes), so a large dataset is not held decoded in memory and an example is
cheap to send between ranks; `VisionProcessor.prompt_input` decodes them when
a prompt is sampled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastgrpo.config import DataConfig
from fastgrpo.data.complexity import compute_image_complexity, vision_complexity
from fastgrpo.data.images import image_size, resolve_image_path
from fastgrpo.data.io import BadRows, DataSourceError
from fastgrpo.data.processor import VisionProcessor, build_messages, expand_image_tokens
from fastgrpo.data.prompts import PromptExample, load_format_template, load_prompt_table, row_problem
from fastgrpo.log import get_logger

log = get_logger(__name__)

__all__ = ["VisionPromptExample", "load_vision_prompts"]


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
    table = load_prompt_table(source, cfg, bad_rows)
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
        sizes = [processor.resized_size(*image_size(r)) for r in refs]
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
