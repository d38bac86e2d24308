"""Which modules FSDP2 shards one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModelForImageTextToText, Qwen2ForCausalLM

from fastgrpo.models.tiny import build_char_tokenizer, tiny_qwen2_config
from fastgrpo.models.tiny_vl import build_vl_tokenizer, tiny_qwen2_vl_config
from fastgrpo.train.model import ModelLoadError, check_model_path, decoder_layers


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


@pytest.mark.parametrize("path", ["runs/other/base", "./model", "~/no-such-model-folder", "/no/such/folder"])
def test_missing_local_model_folder_is_named(path: str) -> None:
    # "runs/other/base" is no valid hub id (two slashes): transformers would say "Repo id must be in the form".
    with pytest.raises(ModelLoadError, match=r"model.path .* does not exist \(a local folder") as e:
        check_model_path(path)
    assert "make demo" not in str(e.value)  # the demo hint is only for the demo's own path


@pytest.mark.parametrize("path", ["runs/demo/base", "./runs/demo/base", "/somewhere/else/runs/demo/base/"])
def test_missing_demo_base_says_to_run_make_demo(path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a fresh clone: no runs/ (the repo root may have one from `make demo`)
    with pytest.raises(ModelLoadError, match="run `make demo` first"):
        check_model_path(path)


def test_existing_folder_and_hub_ids_pass(tmp_path: Path) -> None:
    check_model_path(str(tmp_path))
    check_model_path("Qwen/Qwen2.5-0.5B-Instruct")  # a hub id: left to transformers (no network here)
    check_model_path("gpt2")
    with pytest.raises(ModelLoadError, match=r"model\.tokenizer_path is empty"):
        check_model_path("", "model.tokenizer_path")
