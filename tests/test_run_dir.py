"""The run-directory contract (`fastgrpo.run_dir`) seen from both sides: what the trainer's save writes, export
accepts; what is half-written, both refuse with the same message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fastgrpo.config import ModelConfig
from fastgrpo.export import ExportError, resolve_checkpoint
from fastgrpo.models.tiny import build_tiny_qwen2
from fastgrpo.run_dir import MANIFEST, MODEL_DIR, RunDir, checkpoint_problem
from fastgrpo.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fastgrpo.train.dist import DistInfo
from fastgrpo.train.model import load_policy_model, load_tokenizer

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunDir, torch.nn.Module, torch.optim.Optimizer]:
    """A run directory with one checkpoint, written by the trainer's own functions."""
    root = tmp_path_factory.mktemp("run_dir")
    cfg = ModelConfig(path=str(build_tiny_qwen2(root / "src", num_layers=1)))
    model = load_policy_model(cfg, CPU.device, for_training=True)
    tokenizer = load_tokenizer(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run = RunDir(root / "run")
    run.write_config(f"model:\n  path: {cfg.path}\n")

    def save_base(folder: Path) -> None:
        model.config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    run.write_hf_base(save_base)
    path = save_checkpoint(run.checkpoints, 3, model, optimizer, {"step": 3}, CPU, save_limit=2)
    assert path == run.checkpoint(3)
    return run, model, optimizer


def test_a_checkpoint_the_trainer_writes_is_complete_for_export(saved: tuple) -> None:
    run, _, _ = saved
    assert checkpoint_problem(run.checkpoint(3)) is None
    info = resolve_checkpoint(run.root)
    assert (info.path, info.step, info.base_dir) == (run.checkpoint(3), 3, run.hf_base)
    assert info.trainer_state == {"step": 3} and info.run_config["model"]["path"]


@pytest.mark.parametrize("damage", ["no_manifest", "truncated_shard"])
def test_a_half_written_checkpoint_is_refused_by_both_with_the_same_message(
    saved: tuple, tmp_path: Path, damage: str
) -> None:
    run, model, optimizer = saved
    copy = RunDir(tmp_path / "run")
    shutil.copytree(run.root, copy.root)
    ckpt = copy.checkpoint(3)
    if damage == "no_manifest":  # the save was cut before its last write
        (ckpt / MANIFEST).unlink()
    else:  # a copy cut short
        shard = max((ckpt / MODEL_DIR).glob("*.distcp"), key=lambda p: p.stat().st_size)
        shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(CheckpointError) as train_err:
        load_checkpoint(ckpt, model, optimizer, CPU)
    with pytest.raises(ExportError) as export_err:
        resolve_checkpoint(ckpt)
    assert str(export_err.value).startswith(str(train_err.value) + ". Export another one")
    assert f"checkpoint {ckpt} is incomplete or damaged" in str(train_err.value)
    # From the run directory, export passes over the damaged folder and says why there is nothing else.
    with pytest.raises(ExportError, match="1 incomplete or damaged"):
        resolve_checkpoint(copy.root)
    manifest = json.loads((run.checkpoint(3) / MANIFEST).read_text())
    assert manifest["step"] == 3 and "trainer_state.json" in manifest["files"]
