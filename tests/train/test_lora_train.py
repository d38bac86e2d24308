"""Training with LoRA adapters (actor.lora): learning, the reference as the base, small checkpoints, resume, FSDP2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from fastgrpo.models.tiny import build_tiny_qwen2
from fastgrpo.run_dir import list_checkpoints, step_dir_name
from fastgrpo.train.dist import DistInfo
from fastgrpo.train.recipe import FastGRPORecipe, train

from .conftest import read_metrics, toy_config, toy_overrides
from .test_recipe import _assert_metrics_close

REPO = Path(__file__).resolve().parents[2]
LORA = {"actor.lora.rank": 2, "actor.lora.alpha": 8, "actor.lr": 2e-2}


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wide enough that rank-2 adapters are a few percent of the weights, as LoRA is used."""
    return build_tiny_qwen2(tmp_path_factory.mktemp("wide") / "model", seed=0, hidden_size=64, num_layers=2,
                            num_heads=2, num_kv_heads=1, intermediate_size=256)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_setup_trains_only_adapters_and_has_no_reference_copy(wide_model: Path, toy_data: Path,
                                                                tmp_path: Path) -> None:
    recipe = FastGRPORecipe(toy_config(wide_model, toy_data, tmp_path, **LORA), DistInfo(0, 1, 0, torch.device("cpu")))
    recipe.setup()
    trained = {id(p) for g in recipe.optimizer.param_groups for p in g["params"]}
    names = [n for n, p in recipe.model.named_parameters() if id(p) in trained]
    assert names and all(".lora_" in n for n in names)
    total = sum(p.numel() for p in recipe.model.parameters())
    assert sum(p.numel() for n, p in recipe.model.named_parameters() if id(p) in trained) <= 0.05 * total
    assert recipe.use_kl and recipe.ref is None  # the reference is the actor with its adapters off


@pytest.mark.slow
def test_lora_learns_and_checkpoints_only_adapters(wide_model: Path, toy_data: Path, tmp_path: Path) -> None:
    steps = {"trainer.max_steps": 20, "rollout.n": 8, "actor.global_batch_size": 32, "trainer.save_freq": 20}
    run_dir = train(toy_config(wide_model, toy_data, tmp_path / "lora", **steps, **LORA))
    rows = read_metrics(run_dir)
    first = sum(r["all/reward"] for r in rows[:5]) / 5
    last = sum(r["all/reward"] for r in rows[-5:]) / 5
    assert last > first + 0.05, f"reward did not rise: first {first:.3f}, last {last:.3f}"
    # Step 1: adapters start as a no-op (lora_B = 0), so the actor is its reference: KL 0 exactly; then it moves.
    assert rows[0]["actor/kl_loss"] == pytest.approx(0.0, abs=1e-7)
    assert rows[-1]["actor/kl_loss"] > 1e-6

    (_, ckpt), = list_checkpoints(run_dir / "checkpoints")
    keys = list(dcp.FileSystemReader(str(ckpt / "model")).read_metadata().state_dict_metadata)
    assert keys and all(".lora_" in k for k in keys)
    full = train(toy_config(wide_model, toy_data, tmp_path / "full", **{**steps, "trainer.max_steps": 1,
                                                                          "trainer.save_freq": 1}))
    (_, full_ckpt), = list_checkpoints(full / "checkpoints")
    lora_bytes = _dir_bytes(ckpt / "model") + _dir_bytes(ckpt / "optim")
    full_bytes = _dir_bytes(full_ckpt / "model") + _dir_bytes(full_ckpt / "optim")
    assert lora_bytes <= 0.10 * full_bytes, (lora_bytes, full_bytes)


@pytest.mark.slow
def test_lora_resume_matches_uninterrupted(wide_model: Path, toy_data: Path, tmp_path: Path) -> None:
    extra = {"trainer.max_steps": 4, "trainer.save_freq": 2, "trainer.save_limit": 2, **LORA}
    reference = train(toy_config(wide_model, toy_data, tmp_path / "ref", **extra))
    resumed_dir = tmp_path / "resumed" / "run"
    shutil.copytree(reference, resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / step_dir_name(4))  # as if killed after step 2's save
    train(toy_config(wide_model, toy_data, tmp_path / "resumed", **extra))
    assert [s for s, _ in list_checkpoints(resumed_dir / "checkpoints")] == [2, 4]
    _assert_metrics_close(read_metrics(reference), read_metrics(resumed_dir), rel=1e-6)


@pytest.mark.slow
def test_lora_two_processes_match_one_process(wide_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """FSDP2 over frozen base weights and trainable adapters (gloo) computes the same steps as one process."""
    extra = {"trainer.max_steps": 3, "data.max_response_length": 10, **LORA}
    one = train(toy_config(wide_model, toy_data, tmp_path / "one", **extra))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "fastgrpo", "-q", "train", *toy_overrides(wide_model, toy_data, tmp_path / "two", **extra)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_metrics_close(read_metrics(one), read_metrics(tmp_path / "two" / "run"), rel=1e-4)
