"""Tiny Qwen2-VL / Qwen2.5-VL models with a local processor, built with no downloads.

Why: the vision data path, the HF engine with `pixel_values` and the weight-sync
name mapping need a real vision-language folder (config, safetensors, image
processor, tokenizer with the Qwen vision tokens and a chat template that
renders image content parts), and nothing can come from a hub here. The
tokenizer is `fastgrpo.models.tiny.build_char_tokenizer()` plus the Qwen vision
special tokens, so any text round-trips.

The folder has the files of a real Qwen2-VL checkpoint (config.json,
model.safetensors, preprocessor_config.json, tokenizer files, chat template and
processor_config.json naming `Qwen2VLProcessor`): `AutoProcessor.from_pretrained`
loads it where torchvision is installed (transformers 5 cannot build any Qwen-VL
processor without it), and `fastgrpo.data.processor.VisionProcessor.from_pretrained`
loads it everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import GenerationConfig, PretrainedConfig, PreTrainedTokenizerFast

from fastgrpo.models.tiny import build_char_tokenizer

__all__ = [
    "VISION_TOKENS",
    "VL_CHAT_TEMPLATE",
    "build_tiny_qwen2_vl",
    "build_vl_tokenizer",
    "tiny_qwen2_vl_config",
]

VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
VISION_TOKENS = [VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]

# ChatML as Qwen2-VL renders it: an image content part becomes <|vision_start|><|image_pad|><|vision_end|>,
# and the processor later expands the single <|image_pad|> to one token per merged patch.
VL_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' or 'image' in part %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' %}{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)

Variant = Literal["qwen2_vl", "qwen2_5_vl"]


def build_vl_tokenizer() -> PreTrainedTokenizerFast:
    """The char tokenizer plus the four Qwen vision special tokens and the VL chat template."""
    tok = build_char_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": VISION_TOKENS})
    tok.chat_template = VL_CHAT_TEMPLATE
    return tok


def tiny_qwen2_vl_config(
    tokenizer: Any,
    variant: Variant = "qwen2_vl",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    vision_depth: int = 1,
    vision_dim: int = 32,
    vision_heads: int = 2,
    tie_word_embeddings: bool = True,
) -> PretrainedConfig:
    """A few-layer Qwen2-VL (or Qwen2.5-VL) config whose special ids match `tokenizer`.

    The mrope sections must add up to head_dim / 2 (temporal, height, width).
    """
    head_dim = hidden_size // num_heads
    half = head_dim // 2
    section = [half - 2 * (half // 3), half // 3, half // 3]
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
        ("image_token_id", IMAGE_PAD), ("video_token_id", VIDEO_PAD),
        ("vision_start_token_id", VISION_START), ("vision_end_token_id", VISION_END))}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "mrope_section": section, "rope_theta": 10000.0},
        "tie_word_embeddings": tie_word_embeddings,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": None,
    }
    common_vision = {"depth": vision_depth, "num_heads": vision_heads, "patch_size": 14, "spatial_merge_size": 2,
                     "temporal_patch_size": 2, "in_channels": 3}
    if variant == "qwen2_vl":
        from transformers import Qwen2VLConfig

        vision = {**common_vision, "embed_dim": vision_dim, "hidden_size": hidden_size, "mlp_ratio": 2}
        cls: Any = Qwen2VLConfig
    elif variant == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        vision = {**common_vision, "hidden_size": vision_dim, "intermediate_size": 2 * vision_dim,
                  "out_hidden_size": hidden_size, "window_size": 56, "fullatt_block_indexes": [vision_depth - 1]}
        cls = Qwen2_5_VLConfig
    else:
        raise ValueError(f"unknown tiny VL variant {variant!r}; choose qwen2_vl or qwen2_5_vl")
    return cls(text_config=text, vision_config=vision, tie_word_embeddings=tie_word_embeddings, **ids)


def build_tiny_qwen2_vl(
    out_dir: str | Path,
    variant: Variant = "qwen2_vl",
    seed: int = 0,
    min_pixels: int = 28 * 28 * 4,
    max_pixels: int = 28 * 28 * 64,
    **config_kwargs: Any,
) -> Path:
    """Write a randomly initialised tiny Qwen2-VL / Qwen2.5-VL + processor as a loadable HF folder.

    `min_pixels` / `max_pixels` are the image processor's bounds (small, so an image is a handful of tokens).
    """
    from transformers import AutoModelForImageTextToText
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_vl_tokenizer()
    config = tiny_qwen2_vl_config(tokenizer, variant=variant, **config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # The PIL image processor saves itself as the canonical `Qwen2VLImageProcessor`, so a machine with
    # torchvision loads the fast one; both give the same patches for our pre-resized images.
    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    image_processor.save_pretrained(out)
    processor_class = "Qwen2VLProcessor" if variant == "qwen2_vl" else "Qwen2_5_VLProcessor"
    _patch_json(out / "preprocessor_config.json", {"processor_class": processor_class})
    (out / "processor_config.json").write_text(json.dumps({"processor_class": processor_class}, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(VL_CHAT_TEMPLATE)
    return out


def _patch_json(path: Path, values: dict[str, Any]) -> None:
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
