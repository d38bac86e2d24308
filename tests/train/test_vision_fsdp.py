"""Two FSDP2 ranks (gloo) training a tiny Qwen2-VL through `torchrun`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastgrpo.models.tiny_vl import build_tiny_qwen2_vl

from .conftest import read_metrics, toy_overrides

REPO = Path(__file__).resolve().parents[2]


def _torchrun(model: Path, rows: list[dict], tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "imgs").mkdir(exist_ok=True)
    pixels = (np.random.default_rng(0).random((56, 84, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(tmp_path / "imgs" / "a.png")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = toy_overrides(model, data, tmp_path / "out", **{
        "trainer.max_steps": 2, "data.rollout_batch_size": 2, "rollout.n": 3, "actor.global_batch_size": 6,
        "actor.micro_batch_size": 1, "data.max_prompt_length": 256, "data.max_response_length": 4,
        "data.min_pixels": 28 * 28 * 4, "data.max_pixels": 28 * 28 * 16,
    })
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "fastgrpo", "-q", "train", *overrides]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"})


@pytest.fixture(scope="module")
def vl_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("vl") / "model", seed=0, num_layers=1)


@pytest.mark.slow
def test_two_ranks_train_on_images(vl_model: Path, tmp_path: Path) -> None:
    # HF generate runs the vision tower (root FSDP unit) before the first forward: without the engine
    # gathering the root unit for the call, the patch embedding meets sharded weights and fails.
    rows = [{"problem": "<image> How many squares?", "answer": "3", "images": ["imgs/a.png"]},
            {"problem": "<image> And how many circles?", "answer": "2", "images": ["imgs/a.png"]}]
    proc = _torchrun(vl_model, rows, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = read_metrics(tmp_path / "out" / "run")
    assert [r["step"] for r in metrics] == [1, 2]
    assert all(math.isfinite(r["actor/total_loss"]) and r["actor/grad_norm"] > 0 for r in metrics)


@pytest.mark.slow
def test_text_only_rows_on_several_ranks_are_a_clear_error(vl_model: Path, tmp_path: Path) -> None:
    rows = [{"problem": "<image> How many squares?", "answer": "3", "images": ["imgs/a.png"]},
            {"problem": "And 1+1?", "answer": "2", "images": []}]
    proc = _torchrun(vl_model, rows, tmp_path)
    assert proc.returncode != 0
    assert "1 of 2 prompts in data.train_files have no image" in proc.stderr
    assert not (tmp_path / "out" / "run" / "metrics.jsonl").exists()
