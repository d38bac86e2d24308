"""fp32 master weights with bf16 compute: small updates survive, checkpoints hold fp32, 1 vs 2 processes agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from transformers import AutoModelForCausalLM

from fastgrpo.export import ExportOptions, export
from fastgrpo.run_dir import list_checkpoints
from fastgrpo.train.model import resolve_master_dtype
from fastgrpo.train.recipe import TrainingError, train

from .conftest import read_metrics, toy_config, toy_overrides

REPO = Path(__file__).resolve().parents[2]
BF16_STEP = {"model.dtype": "bfloat16", "actor.lr": 1e-6, "trainer.max_steps": 1, "trainer.save_freq": 1}


def _moved_fraction(run_dir: Path, base: Path) -> tuple[float, torch.dtype, dict]:
    """Fraction of the decoder layers' parameter elements that differ from the starting model, the checkpoint's
    dtype, and its trainer state."""
    (_, ckpt), = list_checkpoints(run_dir / "checkpoints")
    start = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).state_dict()
    meta = dcp.FileSystemReader(str(ckpt / "model")).read_metadata().state_dict_metadata
    names = [k.removeprefix("model.") for k in meta if ".layers." in k]
    dtype = meta[f"model.{names[0]}"].properties.dtype
    state = {"model": {n: torch.empty(start[n].shape, dtype=dtype) for n in names}}
    dcp.load(state, checkpoint_id=str(ckpt / "model"))
    moved = sum(int((state["model"][n].float() != start[n].to(dtype).float()).sum()) for n in names)
    total = sum(start[n].numel() for n in names)
    return moved / total, dtype, json.loads((ckpt / "trainer_state.json").read_text())


@pytest.mark.slow
def test_one_bf16_step_at_lr_1e6_moves_the_fp32_master_weights(tiny_model: Path, toy_data: Path,
                                                                tmp_path: Path) -> None:
    run = train(toy_config(tiny_model, toy_data, tmp_path / "mixed", **BF16_STEP))
    frac, dtype, state = _moved_fraction(run, tiny_model)
    assert dtype == torch.float32 and state["dtype"] == "float32" and state["compute_dtype"] == "bfloat16"
    assert frac >= 0.9, f"only {frac:.1%} of the master elements moved"
    print(f"moved: fp32 master {frac:.1%}")
    metrics = read_metrics(run)[0]
    assert metrics["all/entropy"] > 0 and "easy/entropy" in metrics

    # The same step with bf16 master weights (the old behaviour): most updates round away. This is what
    # the test above guards against; it shows the measurement can fail.
    pure = train(toy_config(tiny_model, toy_data, tmp_path / "pure", **BF16_STEP, **{"actor.master_dtype": "bfloat16"}))
    pure_frac, pure_dtype, _ = _moved_fraction(pure, tiny_model)
    print(f"moved: bf16 params {pure_frac:.1%}")
    assert pure_dtype == torch.bfloat16 and pure_frac < 0.5, pure_frac

    # Export writes the compute dtype by default, fp32 when asked.
    out = export(ExportOptions(source=run, out=tmp_path / "export")).folder
    index = json.loads((out / "fastgrpo_export.json").read_text())
    assert index["dtype"] == "bfloat16", index
    exported = AutoModelForCausalLM.from_pretrained(out)
    assert next(exported.parameters()).dtype == torch.bfloat16
    out32 = export(ExportOptions(source=run, out=tmp_path / "export32", dtype="float32")).folder
    assert next(AutoModelForCausalLM.from_pretrained(out32).parameters()).dtype == torch.float32


def test_master_dtype_below_the_compute_dtype_is_a_clear_error(tiny_model: Path, toy_data: Path,
                                                               tmp_path: Path) -> None:
    assert resolve_master_dtype("float32", torch.bfloat16) == torch.float32
    with pytest.raises(ValueError, match=r"actor\.master_dtype=float16"):
        resolve_master_dtype("float16", torch.bfloat16)
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"model.dtype": "float32", "actor.master_dtype": "bfloat16"})
    with pytest.raises(TrainingError, match=r"actor\.master_dtype=bfloat16"):
        train(cfg)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_two_processes_match_one_process_in_mixed_precision(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """torchrun --nproc_per_node 2 (FSDP2, gloo, bf16 params for compute, fp32 reduction) against one process (a
    one-rank FSDP2 group with the same policy). bf16 compute: the tolerance is bf16's, not fp32's."""
    extra = {"trainer.max_steps": 2, "model.dtype": "bfloat16", "actor.lr": 1e-3, "data.max_response_length": 8}
    one = train(toy_config(tiny_model, toy_data, tmp_path / "one", **extra))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "fastgrpo", "-q", "train", *toy_overrides(tiny_model, toy_data, tmp_path / "two", **extra)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = read_metrics(one), read_metrics(tmp_path / "two" / "run")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2]
    for ra, rb in zip(a, b, strict=True):
        # Same rollouts (bitwise: same bf16 weights, same seeds), so the same rewards and lengths.
        for k in ("all/reward", "all/response_length", "all/accuracy"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-6), (ra["step"], k)
        for k in ("actor/pg_loss", "actor/total_loss", "all/entropy", "actor/grad_norm"):
            assert ra[k] == pytest.approx(rb[k], rel=2e-2, abs=1e-4), (ra["step"], k, ra[k], rb[k])
