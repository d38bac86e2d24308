"""Checkpoints with torch distributed checkpoint (DCP): exact resume, verified, rotated.

The folder layout and the one completeness rule (`checkpoint_problem`: manifest.json,
written last, lists every file with its size) are `fastgrpo.run_dir`'s, shared with
export. A checkpoint is written into a hidden temp folder and renamed into place.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from fastgrpo.log import get_logger
from fastgrpo.models.lora import has_lora
from fastgrpo.run_dir import (
    MODEL_DIR,
    MODEL_KEY,
    OPTIM_DIR,
    OPTIM_KEY,
    TRAINER_STATE,
    CheckpointError,
    checkpoint_problem,
    complete_checkpoints,
    latest_checkpoint,
    list_checkpoints,
    rng_file_name,
    step_dir_name,
    verify_checkpoint,
    write_manifest,
)
from fastgrpo.train.dist import (
    DistInfo,
    all_gather_objects,
    all_reduce_max_int,
    barrier,
    rng_state,
    set_rng_state,
)
from fastgrpo.utils.io import atomic_write_json

__all__ = [
    "CheckpointError",
    "CheckpointSaveError",
    "checkpoint_problem",
    "clean_stale_temp",
    "complete_checkpoints",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
    "verify_checkpoint",
]

log = get_logger(__name__)

SAVE_ERRORS = (Exception, CheckpointException)
"""What a failed save raises (DCP's CheckpointException is a BaseException that wraps every rank's error)."""


class CheckpointSaveError(RuntimeError):
    """Writing a checkpoint failed (e.g. no space left); the previous checkpoints are untouched."""


def _all_ok(ok: bool, info: DistInfo) -> bool:
    """Collective: True when every rank's `ok` is True (also a barrier)."""
    return all_reduce_max_int(0 if ok else 1, info) == 0


def _root_cause(e: BaseException) -> BaseException:
    """The OSError (or innermost error) behind DCP's wrapped `CheckpointException`."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, OSError):
            return cur
        failures = getattr(cur, "failures", None)
        if isinstance(failures, dict):
            for f in failures.values():
                inner = f[0] if isinstance(f, tuple) and f else f  # (exception, stack summary)
                if isinstance(inner, BaseException):
                    stack.append(inner)
        for nxt in (cur.__cause__, cur.__context__):
            if nxt is not None:
                stack.append(nxt)
    return e


def _describe(e: BaseException) -> str:
    cause = _root_cause(e)
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        return f"no space left on the device ({cause})"
    return f"{type(cause).__name__}: {cause}"


def save_checkpoint(
    ckpt_root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    info: DistInfo,
    save_limit: int,
) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint folder.

    Never destroys the last good checkpoint: the new one is written to a temp folder,
    completed with its manifest, renamed into place, and only then are old ones
    rotated out. A failure on any rank (e.g. ENOSPC) removes the temp folder on
    every rank's say-so and raises `CheckpointSaveError`; nothing else is touched.
    """
    final = ckpt_root / step_dir_name(step)
    tmp = ckpt_root / f".tmp_{step_dir_name(step)}"
    error: BaseException | None = None
    try:
        if info.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
    except SAVE_ERRORS as e:
        error = e
    if _all_ok(error is None, info):
        try:
            model_sd = _model_state(model)
            optim_sd = get_optimizer_state_dict(model, optimizer)
            dcp.save({MODEL_KEY: model_sd}, checkpoint_id=str(tmp / MODEL_DIR))
            dcp.save({OPTIM_KEY: optim_sd}, checkpoint_id=str(tmp / OPTIM_DIR))
            torch.save(rng_state(), tmp / rng_file_name(info.rank))
        except SAVE_ERRORS as e:
            error = e
        if _all_ok(error is None, info) and info.is_main:
            try:
                atomic_write_json(tmp / TRAINER_STATE, trainer_state)
                write_manifest(tmp, step)  # last: its presence means every file above is complete
                old = ckpt_root / f".old_{step_dir_name(step)}"
                if final.exists():  # re-saving the same step: keep the old one until the new one is in place
                    if old.exists():
                        shutil.rmtree(old)
                    final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            except SAVE_ERRORS as e:
                error = e
    failed = not _all_ok(error is None, info)
    if failed:
        reasons = all_gather_objects(_describe(error) if error is not None else "", info)
        why = next((f"rank {r}: {w}" if info.distributed else w for r, w in enumerate(reasons) if w), "")
        if info.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        barrier(info)
        kept = latest_checkpoint(ckpt_root)
        raise CheckpointSaveError(
            f"could not save the checkpoint of step {step} in {ckpt_root}: {why or 'failed on another rank'}. "
            f"The previous checkpoints are intact (newest complete: {kept or 'none'}); free space or fix the "
            "cause, then rerun the same command to resume from it."
        )
    if info.is_main:
        _rotate(ckpt_root, save_limit)
    barrier(info)
    return final


def _rotate(ckpt_root: Path, save_limit: int) -> None:
    """Keep the newest `save_limit` complete checkpoints; older folders (complete or not) go."""
    if save_limit <= 0:
        return
    good, _ = complete_checkpoints(ckpt_root)
    keep = good[-save_limit:]
    if not keep:
        return
    newest = keep[-1][0]
    kept = {p for _, p in keep}
    for step, path in list_checkpoints(ckpt_root):
        if step < newest and path not in kept:
            shutil.rmtree(path, ignore_errors=True)


def clean_stale_temp(ckpt_root: Path, info: DistInfo) -> None:
    """Tidy up after a run killed mid-save.

    A `.tmp_` folder is a save in progress: finished (manifest complete) but not yet
    renamed, it is moved into place; otherwise deleted. An `.old_` folder is a
    checkpoint being replaced by a re-save of its step: put back if the new one never
    landed, else deleted.
    """
    if info.is_main and ckpt_root.is_dir():
        for prefix in (".tmp_", ".old_"):
            for p in sorted(ckpt_root.glob(prefix + "global_step_*")):
                final = ckpt_root / p.name[len(prefix):]
                if not final.exists() and checkpoint_problem(p) is None:
                    p.rename(final)
                else:
                    shutil.rmtree(p, ignore_errors=True)
    barrier(info)


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo
) -> dict[str, Any]:
    """Restore model, optimizer and this rank's RNG in place; return the trainer state.

    Raises `CheckpointError` (naming the file) for an incomplete folder or one DCP cannot read.
    """
    verify_checkpoint(path)
    try:
        return _load(path, model, optimizer, info)
    except CheckpointError:
        raise
    except SAVE_ERRORS as e:  # damage the sizes cannot show (e.g. flipped bytes)
        raise CheckpointError(path, f"it could not be loaded ({type(e).__name__}: {str(e)[:300]})") from e


def _load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo) -> dict[str, Any]:
    _materialize_optimizer_state(optimizer)
    state = {MODEL_KEY: _model_state(model)}
    dcp.load(state, checkpoint_id=str(path / MODEL_DIR))
    # LoRA: the state holds the adapters only (the frozen base is model.path's), so it cannot be strict
    set_model_state_dict(model, state[MODEL_KEY], options=StateDictOptions(strict=not has_lora(model)))
    optim_sd = get_optimizer_state_dict(model, optimizer)
    ostate = {OPTIM_KEY: optim_sd}
    dcp.load(ostate, checkpoint_id=str(path / OPTIM_DIR))
    set_optimizer_state_dict(model, optimizer, ostate[OPTIM_KEY])
    rng_file = path / rng_file_name(info.rank)
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((path / TRAINER_STATE).read_text())


def _model_state(model: torch.nn.Module) -> dict[str, Any]:
    """The model state a checkpoint holds: everything, or for a LoRA actor its adapters only (the frozen base is
    model.path's, unchanged; `ignore_frozen_params` alone still lists a tied alias such as lm_head.weight)."""
    if not has_lora(model):
        return get_model_state_dict(model)
    state = get_model_state_dict(model, options=StateDictOptions(ignore_frozen_params=True))
    return {k: v for k, v in state.items() if ".lora_" in k}


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
