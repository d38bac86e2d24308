"""FAST-GRPO on a tiny Qwen2-VL (CPU): images in, rewards and loss out, parameters updated."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed.checkpoint as dcp
from PIL import Image
from transformers import AutoModelForImageTextToText

from fastgrpo.eval import load_items
from fastgrpo.models.tiny_vl import build_tiny_qwen2_vl
from fastgrpo.run_dir import list_checkpoints
from fastgrpo.train.dist import init_distributed
from fastgrpo.train.recipe import FastGRPORecipe, TrainingError, train

from ..models.remote_code import CUSTOM_CLASS, needs_remote_code
from .conftest import read_metrics, toy_config


@pytest.fixture(scope="module")
def vl_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("vl") / "model", seed=0)


def _vision_data(root: Path) -> Path:
    (root / "imgs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        h, w = 28 * int(rng.integers(2, 5)), 28 * int(rng.integers(2, 5))
        pixels = (rng.random((h, w, 3)) * 255 * (i + 1) / 8).astype("uint8")  # varied image complexity
        Image.fromarray(pixels).save(root / "imgs" / f"{i}.png")
        rows.append({"problem": f"<image> How many squares? ({i})", "answer": str(i % 4), "images": [f"imgs/{i}.png"]})
    rows.append({"problem": "And 1+1?", "answer": "2", "images": []})  # text-only rows mix in
    path = root / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_fast_grpo_trains_a_tiny_qwen2_vl_on_images(vl_model: Path, tmp_path: Path) -> None:
    data = _vision_data(tmp_path / "data")
    cfg = toy_config(vl_model, data, tmp_path / "out", **{
        "trainer.max_steps": 3, "trainer.save_freq": 3, "data.min_pixels": 28 * 28 * 4,
        "data.max_pixels": 28 * 28 * 16, "data.max_prompt_length": 256, "data.max_response_length": 8,
        "actor.micro_batch_size": 4,
    })
    run_dir = train(cfg)
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        for k in ("actor/total_loss", "actor/grad_norm", "all/reward", "all/difficulty"):
            assert r[k] is not None and math.isfinite(r[k]), (r["step"], k)
        assert r["actor/grad_norm"] > 0
    # Image complexity varies across prompts, so the easy/hard split is not degenerate.
    assert any(r.get("hard/num_groups", 0) > 0 for r in rows)
    (_, ckpt), = list_checkpoints(run_dir / "checkpoints")
    base = AutoModelForImageTextToText.from_pretrained(vl_model)
    ref = {k: v for k, v in base.state_dict().items() if k != "lm_head.weight"}
    state = {"model": {k: torch.empty_like(v) for k, v in ref.items()}}
    dcp.load(state, checkpoint_id=str(ckpt / "model"))
    changed = {k for k, v in ref.items() if not torch.equal(state["model"][k], v)}
    assert any("visual" in k for k in changed) and any("layers" in k and "visual" not in k for k in changed)
    assert (run_dir / "hf_base" / "preprocessor_config.json").exists()


def test_trust_remote_code_and_validation_images_reach_a_vision_model(tmp_path: Path) -> None:
    """model.trust_remote_code reaches the vision processor; data.val_files of a vision run keeps its images."""
    model = needs_remote_code(build_tiny_qwen2_vl(tmp_path / "model", seed=0, num_layers=1))
    data = _vision_data(tmp_path / "data")
    overrides = {"trainer.val_freq": 1, "data.val_files": str(data), "data.min_pixels": 28 * 28 * 4,
                 "data.max_pixels": 28 * 28 * 16, "data.max_prompt_length": 256, "eval.limit": 2,
                 "eval.max_new_tokens": 4}
    cfg = toy_config(model, data, tmp_path / "out", **overrides)
    with pytest.raises(TrainingError, match="custom code"):
        FastGRPORecipe(cfg, init_distributed("cpu")).setup()
    cfg = toy_config(model, data, tmp_path / "out", **overrides, **{"model.trust_remote_code": True})
    recipe = FastGRPORecipe(cfg, init_distributed("cpu"))
    recipe.setup()
    assert type(recipe.modality.processor.image_processor).__name__ == CUSTOM_CLASS
    val = recipe.val_benchmarks[-1]
    assert [len(it.images) for it in load_items(val, limit=2)] == [1, 1]
    with recipe.scorer:
        metrics = recipe.validate(1)
    assert 0 < metrics["val/val/mean_tokens"] <= 4
    results = json.loads((recipe.run_dir / "eval" / "step_000001" / "results.json").read_text())
    assert results["benchmarks"]["val"]["modality"] == "vision"
