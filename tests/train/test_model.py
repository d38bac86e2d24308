"""Which modules FSDP2 shards one by one."""

from __future__ import annotations

import pytest
from transformers import AutoModelForImageTextToText, Qwen2ForCausalLM

from fastgrpo.models.tiny import build_char_tokenizer, tiny_qwen2_config
from fastgrpo.models.tiny_vl import build_vl_tokenizer, tiny_qwen2_vl_config
from fastgrpo.train.model import decoder_layers


def test_text_model_shards_every_decoder_layer() -> None:
    tok = build_char_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden_size=32, num_layers=3, num_heads=2, num_kv_heads=1,
                                               intermediate_size=64))
    assert decoder_layers(model) == list(model.model.layers)


@pytest.mark.parametrize("variant", ["qwen2_vl", "qwen2_5_vl"])
def test_vision_blocks_stay_in_the_root_unit(variant: str) -> None:
    # A rank whose micro-batch has no image never calls the vision blocks; sharded on their own,
    # their all-gathers would be skipped there and the other ranks would hang.
    cfg = tiny_qwen2_vl_config(build_vl_tokenizer(), variant=variant, hidden_size=32, num_heads=2,  # type: ignore[arg-type]
                               num_kv_heads=1, intermediate_size=64, vision_dim=16)
    model = AutoModelForImageTextToText.from_config(cfg)
    layers = decoder_layers(model)
    assert layers == list(model.model.language_model.layers)
    vision = {id(m) for m in model.model.visual.modules()}
    assert not any(id(m) in vision for m in layers)
    assert any("VisionBlock" in type(m).__name__ for m in model.modules())  # the blocks exist, just not sharded
