"""Checkpoints with torch distributed checkpoint (DCP): exact resume, atomic, rotated.

Layout of one checkpoint (`checkpoints/global_step_000010/`):
  model/               DCP of {"model": state dict with the HF parameter names}
  optim/               DCP of {"optim": optimizer state}
  trainer_state.json   step, dtype, scheduler, sampler and algorithm state
  rng_rank{r}.pt       RNG states of rank r
It is written into a hidden temp folder and renamed into place, so any
`global_step_*` folder that exists is complete.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from fastgrpo.train.dist import DistInfo, barrier, rng_state, set_rng_state

STEP_DIR = re.compile(r"^global_step_(\d+)$")


def step_dir_name(step: int) -> str:
    return f"global_step_{step:06d}"


def list_checkpoints(ckpt_root: str | Path) -> list[tuple[int, Path]]:
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(ckpt_root: str | Path) -> Path | None:
    found = list_checkpoints(ckpt_root)
    return found[-1][1] if found else None


def _broadcast_str(value: str, info: DistInfo) -> str:
    if not info.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def save_checkpoint(
    ckpt_root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    info: DistInfo,
    save_limit: int,
) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint folder."""
    final = ckpt_root / step_dir_name(step)
    tmp = ckpt_root / f".tmp_{step_dir_name(step)}"
    if info.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier(info)
    model_sd = get_model_state_dict(model)
    optim_sd = get_optimizer_state_dict(model, optimizer)
    dcp.save({"model": model_sd}, checkpoint_id=str(tmp / "model"))
    dcp.save({"optim": optim_sd}, checkpoint_id=str(tmp / "optim"))
    torch.save(rng_state(), tmp / f"rng_rank{info.rank}.pt")
    barrier(info)
    if info.is_main:
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2))
        if final.exists():  # re-saving the same step (e.g. Ctrl-C right after a periodic save)
            shutil.rmtree(final)
        tmp.rename(final)
        _rotate(ckpt_root, save_limit)
    barrier(info)
    return final


def _rotate(ckpt_root: Path, save_limit: int) -> None:
    if save_limit <= 0:
        return
    for _, path in list_checkpoints(ckpt_root)[:-save_limit]:
        shutil.rmtree(path, ignore_errors=True)


def clean_stale_temp(ckpt_root: Path, info: DistInfo) -> None:
    """Remove temp folders left by a run killed mid-save (they are never complete)."""
    if info.is_main and ckpt_root.is_dir():
        for p in ckpt_root.glob(".tmp_global_step_*"):
            shutil.rmtree(p, ignore_errors=True)
    barrier(info)


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo
) -> dict[str, Any]:
    """Restore model, optimizer and this rank's RNG in place; return the trainer state."""
    _materialize_optimizer_state(optimizer)
    model_sd = get_model_state_dict(model)
    state = {"model": model_sd}
    dcp.load(state, checkpoint_id=str(path / "model"))
    set_model_state_dict(model, state["model"], options=StateDictOptions(strict=True))
    optim_sd = get_optimizer_state_dict(model, optimizer)
    ostate = {"optim": optim_sd}
    dcp.load(ostate, checkpoint_id=str(path / "optim"))
    set_optimizer_state_dict(model, optimizer, ostate["optim"])
    rng_file = path / f"rng_rank{info.rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((path / "trainer_state.json").read_text())


def _materialize_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Create the optimizer's state tensors (a no-op step at lr 0) so DCP has targets to load into."""
    if optimizer.state:
        return
    lrs = [g["lr"] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["lr"] = 0.0
        for p in g["params"]:
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    for g, lr in zip(optimizer.param_groups, lrs, strict=True):
        g["lr"] = lr
