"""Checkpoints with torch distributed checkpoint (DCP): exact resume, verified, rotated.

Layout of one checkpoint (`checkpoints/global_step_000010/`):
  model/               DCP of {"model": state dict with the HF parameter names}
  optim/               DCP of {"optim": optimizer state}
  trainer_state.json   step, dtype, scheduler, sampler and algorithm state
  rng_rank{r}.pt       RNG states of rank r
  manifest.json        every other file with its size in bytes; written LAST
It is written into a hidden temp folder and renamed into place. A folder is trusted
only if `checkpoint_problem` finds nothing wrong (manifest present, every listed
file there with its size): the trainer's resume and `fastgrpo export` both ask it.
Sizes, not checksums: they catch what real failures leave (a truncated copy, a
missing shard, a save cut short) without re-reading tens of GB at every resume.
"""

from __future__ import annotations

import errno
import json
import re
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
from fastgrpo.train.dist import (
    DistInfo,
    all_gather_objects,
    all_reduce_max_int,
    barrier,
    rng_state,
    set_rng_state,
)
from fastgrpo.utils.io import atomic_write_json

log = get_logger(__name__)

STEP_DIR = re.compile(r"^global_step_(\d+)$")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
SAVE_ERRORS = (Exception, CheckpointException)
"""What a failed save raises (DCP's CheckpointException is a BaseException that wraps every rank's error)."""


class CheckpointError(RuntimeError):
    """A checkpoint folder is incomplete or damaged; `problem` names the file and what is wrong."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"checkpoint {path} is incomplete or damaged: {problem}")


class CheckpointSaveError(RuntimeError):
    """Writing a checkpoint failed (e.g. no space left); the previous checkpoints are untouched."""


def step_dir_name(step: int) -> str:
    return f"global_step_{step:06d}"


def list_checkpoints(ckpt_root: str | Path) -> list[tuple[int, Path]]:
    """Every `global_step_*` folder, oldest first, complete or not (see `checkpoint_problem`)."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def write_manifest(folder: Path, step: int) -> None:
    """Record every file of a finished checkpoint folder with its size (atomically, as the last write)."""
    files = {p.relative_to(folder).as_posix(): p.stat().st_size
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    atomic_write_json(folder / MANIFEST, {"format": MANIFEST_FORMAT, "step": step, "files": files})


def checkpoint_problem(path: str | Path) -> str | None:
    """None when the checkpoint folder is complete; else what is wrong, naming the file.

    The one completeness test for the trainer (resume) and export.
    """
    path = Path(path)
    if not path.is_dir():
        return f"{path} is not a folder"
    manifest = path / MANIFEST
    if not manifest.is_file():
        return (f"{manifest} is missing (the save did not finish, or the folder was copied only in part, "
                "or an older fastgrpo wrote it)")
    try:
        data = json.loads(manifest.read_text())
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{manifest} is unreadable ({type(e).__name__}: {e})"
    for rel, size in files.items():
        f = path / rel
        if not f.is_file():
            return f"{f} is missing"
        actual = f.stat().st_size
        if actual != size:
            return f"{f} has {actual} bytes, the manifest says {size} (truncated or overwritten)"
    return None


def verify_checkpoint(path: str | Path) -> None:
    """Raise `CheckpointError` naming the file when the checkpoint folder is not complete."""
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CheckpointError(Path(path), problem)


def complete_checkpoints(ckpt_root: str | Path) -> tuple[list[tuple[int, Path]], list[tuple[Path, str]]]:
    """(complete checkpoints oldest first, [(damaged folder, problem)])."""
    good, bad = [], []
    for step, p in list_checkpoints(ckpt_root):
        problem = checkpoint_problem(p)
        if problem is None:
            good.append((step, p))
        else:
            bad.append((p, problem))
    return good, bad


def latest_checkpoint(ckpt_root: str | Path) -> Path | None:
    """Newest complete checkpoint (damaged or unfinished folders are passed over)."""
    good, _ = complete_checkpoints(ckpt_root)
    return good[-1][1] if good else None


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
            model_sd = get_model_state_dict(model)
            optim_sd = get_optimizer_state_dict(model, optimizer)
            dcp.save({"model": model_sd}, checkpoint_id=str(tmp / "model"))
            dcp.save({"optim": optim_sd}, checkpoint_id=str(tmp / "optim"))
            torch.save(rng_state(), tmp / f"rng_rank{info.rank}.pt")
        except SAVE_ERRORS as e:
            error = e
        if _all_ok(error is None, info) and info.is_main:
            try:
                atomic_write_json(tmp / "trainer_state.json", trainer_state)
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
