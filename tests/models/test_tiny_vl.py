"""The tiny Qwen2-VL / Qwen2.5-VL folders: they load with the auto classes, their processor files are
those of a real Qwen-VL checkpoint, and the model runs a forward pass on a processed image."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from fastgrpo.data.images import resize_image
from fastgrpo.data.processor import VisionProcessor, build_messages, load_image_processor
from fastgrpo.models.tiny_vl import VISION_TOKENS, build_tiny_qwen2_vl, build_vl_tokenizer

VARIANTS = ["qwen2_vl", "qwen2_5_vl"]


@pytest.fixture(scope="module", params=VARIANTS)
def folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp(request.param) / "model", variant=request.param)


def test_folder_has_a_qwen_vl_checkpoint_layout(folder: Path) -> None:
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
                 "tokenizer_config.json", "processor_config.json", "chat_template.jinja", "generation_config.json"):
        assert (folder / name).exists(), name
    config = json.loads((folder / "config.json").read_text())
    proc = json.loads((folder / "processor_config.json").read_text())
    assert proc["processor_class"] in ("Qwen2VLProcessor", "Qwen2_5_VLProcessor")
    assert json.loads((folder / "preprocessor_config.json").read_text())["image_processor_type"] == (
        "Qwen2VLImageProcessor")
    tok = AutoTokenizer.from_pretrained(folder)
    for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        assert isinstance(config[name], int)
    assert config["image_token_id"] == tok.convert_tokens_to_ids("<|image_pad|>")
    assert config["vision_start_token_id"] == tok.convert_tokens_to_ids("<|vision_start|>")


def test_auto_classes_load_it(folder: Path) -> None:
    model = AutoModelForImageTextToText.from_pretrained(folder)
    assert type(model).__name__ in ("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration")
    image_processor = load_image_processor(folder)  # AutoImageProcessor (PIL class on transformers < 5.2x)
    assert (image_processor.patch_size, image_processor.merge_size) == (14, 2)
    if importlib.util.find_spec("torchvision") is not None:
        proc = AutoProcessor.from_pretrained(folder)
        assert type(proc).__name__ in ("Qwen2VLProcessor", "Qwen2_5_VLProcessor")
    else:  # transformers 5 builds no Qwen-VL processor without torchvision; VisionProcessor covers it
        with pytest.raises(ImportError, match=r"[Tt]orchvision"):
            AutoProcessor.from_pretrained(folder)
    assert VisionProcessor.from_pretrained(folder).image_token_id == model.config.image_token_id


def test_vision_tokens_are_single_tokens_and_text_round_trips() -> None:
    tok = build_vl_tokenizer()
    for t in VISION_TOKENS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == [t]
    text = "look: <|vision_start|><|image_pad|><|vision_end|>\n  what is 2+3?"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template_renders_image_parts() -> None:
    tok = build_vl_tokenizer()
    messages = build_messages("Compare <image> with <image>.", 2, system_prompt="Be brief.")
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nCompare <|vision_start|><|image_pad|><|vision_end|> with "
        "<|vision_start|><|image_pad|><|vision_end|>.<|im_end|>\n<|im_start|>assistant\n"
    )
    plain = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert plain == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_model_forward_on_a_processed_image(folder: Path) -> None:
    proc = VisionProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    rng = np.random.default_rng(0)
    image = resize_image(Image.fromarray((rng.random((50, 90, 3)) * 255).astype("uint8")), proc.min_pixels,
                         proc.max_pixels, proc.factor)
    text = proc.render(build_messages("<image>What is shown?", 1))
    enc = proc.encode(text, [image])
    assert enc.processor_inputs is not None
    grid = enc.processor_inputs["image_grid_thw"]
    n_img = sum(1 for t in enc.prompt_ids if t == proc.image_token_id)
    assert n_img == int(grid.prod()) // 4 and enc.processor_inputs["pixel_values"].shape[0] == int(grid.prod())
    assert enc.raw_prompt_ids.count(proc.image_token_id) == 1
    ids = torch.tensor([enc.prompt_ids])
    types = (ids == proc.image_token_id).long()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=types,
                    **enc.processor_inputs)
    assert out.logits.shape == (1, len(enc.prompt_ids), model.config.get_text_config().vocab_size)
    assert torch.isfinite(out.logits).all()
