"""Find a checkpoint in a run directory and read its DCP model state on one process.

Why not `fastgrpo.train.checkpoint`'s loader: export runs long after training, without a
process group or the training model; it needs the full (unsharded) tensors and
their names only, read straight from the DCP metadata. The run layout and the
completeness test (`checkpoint_problem`: the manifest and its file sizes) are
`fastgrpo.run_dir`'s, shared with the trainer, so export trusts exactly the
checkpoints a resume would, and refuses the others with the same message.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from fastgrpo.export.errors import ExportError
from fastgrpo.log import get_logger
from fastgrpo.run_dir import (
    CHECKPOINTS,
    MODEL_DIR,
    MODEL_KEY,
    TRAINER_STATE,
    CheckpointError,
    RunDir,
    checkpoint_problem,
    checkpoint_step,
    complete_checkpoints,
    is_checkpoint_dir,
)

log = get_logger("export")
EXPORT_MARKER = "fastgrpo_export.json"
"""Written into every export folder: provenance, and how a folder is recognised as an export."""


@dataclass(frozen=True)
class TensorMeta:
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass
class CheckpointInfo:
    """One resolved checkpoint: where its weights, base files and run config are."""

    path: Path
    step: int
    run_dir: Path | None
    base_dir: Path
    """Folder with config.json + tokenizer/processor files (the run's `hf_base/`)."""
    trainer_state: dict[str, Any] = field(default_factory=dict)
    run_config: dict[str, Any] = field(default_factory=dict)
    """The run's resolved `config.yaml`, as a plain mapping ({} if absent)."""

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR


def _check_complete(ckpt: Path) -> None:
    problem = checkpoint_problem(ckpt)
    if problem is not None:
        raise ExportError(
            f"{CheckpointError(ckpt, problem)}. Export another one (--step, or the run "
            "directory for the newest complete checkpoint)"
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ExportError(f"{path} is not valid YAML ({e}); fix or remove it") from None
    return data if isinstance(data, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{path} is not valid JSON ({e}); fix or remove it") from None
    return data if isinstance(data, dict) else {}


def _find_base_dir(run_dir: Path | None, run_config: dict[str, Any], ckpt: Path) -> Path:
    """`hf_base/` of the run; else the run's model.path when it is a local model folder."""
    if run_dir is not None and (RunDir(run_dir).hf_base / "config.json").is_file():
        return RunDir(run_dir).hf_base
    model_path = str((run_config.get("model") or {}).get("path") or "")
    if model_path and (Path(model_path).expanduser() / "config.json").is_file():
        return Path(model_path).expanduser()
    where = f"{run_dir}/hf_base" if run_dir is not None else f"the run directory of {ckpt}"
    raise ExportError(
        f"no model config found for {ckpt}: expected {where}/config.json (written at train start). "
        "Export from the run directory the trainer created, or restore its hf_base/ folder."
    )


def resolve_checkpoint(path: str | Path, step: int | None = None) -> CheckpointInfo:
    """Turn a run directory or a checkpoint folder (plus optional step) into a `CheckpointInfo`.

    Raises `ExportError` naming the path and the fix for a missing path, a run
    without checkpoints or a step that does not exist.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ExportError(
            f"{p} does not exist: pass a run directory (e.g. runs/demo) or a checkpoint folder "
            "(e.g. runs/demo/checkpoints/global_step_000010)"
        )
    if not p.is_dir():
        raise ExportError(f"{p} is a file: pass a run directory or a checkpoint folder")
    if is_checkpoint_dir(p):
        ckpt_step = checkpoint_step(p)
        if step is not None and ckpt_step is not None and step != ckpt_step:
            raise ExportError(
                f"--step {step} does not match the checkpoint {p} (step {ckpt_step}): "
                "drop --step, or pass the run directory"
            )
        run_dir = p.parent.parent if p.parent.name == CHECKPOINTS else None
        ckpt = p
        _check_complete(ckpt)
    else:
        run_dir = p.parent if p.name == CHECKPOINTS else p
        ckpt_root = RunDir(run_dir).checkpoints
        found, damaged = complete_checkpoints(ckpt_root)
        if step is not None:
            named = [c for c, _ in damaged if checkpoint_step(c) == step]
            if named:
                _check_complete(named[0])
        if not found:
            bad = f" ({len(damaged)} incomplete or damaged: {damaged[-1][1]})" if damaged else ""
            raise ExportError(
                f"{run_dir} has no checkpoints{bad} (looked for {ckpt_root}/global_step_*): "
                "train with trainer.save_freq > 0 (a final checkpoint is saved at the end of training), "
                "or pass a checkpoint folder"
            )
        steps = [s for s, _ in found]
        if step is None:
            ckpt_step, ckpt = found[-1]
            for bad_dir, problem in damaged:
                if (checkpoint_step(bad_dir) or 0) > ckpt_step:
                    log.warning("skipping checkpoint %s: %s", bad_dir, problem)
        else:
            matches = [c for s, c in found if s == step]
            if not matches:
                raise ExportError(
                    f"--step {step}: no such checkpoint in {ckpt_root}; "
                    f"available steps: {', '.join(map(str, steps))}"
                )
            ckpt_step, ckpt = step, matches[0]
    trainer_state = _read_json(ckpt / TRAINER_STATE)
    if ckpt_step is None:
        ckpt_step = int(trainer_state.get("step", 0) or 0)
    run_config = _read_yaml(RunDir(run_dir).config) if run_dir is not None else {}
    base = _find_base_dir(run_dir, run_config, ckpt)
    return CheckpointInfo(
        path=ckpt,
        step=ckpt_step,
        run_dir=run_dir,
        base_dir=base,
        trainer_state=trainer_state,
        run_config=run_config,
    )


def read_tensor_metadata(model_dir: Path) -> dict[str, TensorMeta]:
    """Names (HF parameter names), full shapes and dtypes of the model DCP, without reading tensor data."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    try:
        metadata = FileSystemReader(str(model_dir)).read_metadata()
    except Exception as e:
        raise ExportError(
            f"could not read the checkpoint metadata in {model_dir}: {type(e).__name__}: {e}"
        ) from None
    prefix = MODEL_KEY + "."
    out: dict[str, TensorMeta] = {}
    for key, meta in metadata.state_dict_metadata.items():
        if key.startswith(prefix) and isinstance(meta, TensorStorageMetadata):
            out[key[len(prefix) :]] = TensorMeta(tuple(meta.size), meta.properties.dtype)
    if not out:
        raise ExportError(
            f"{model_dir} holds no model tensors under the key {MODEL_KEY!r}: "
            "it is not a fastgrpo model checkpoint"
        )
    return out


def load_tensors(model_dir: Path, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Load the full model tensors of a DCP checkpoint on this process (no process group needed).

    Why pre-allocated tensors from the metadata: DCP loads in place into the
    given state dict, and the checkpoint may lack tied aliases (lm_head), so the
    targets must come from what was saved, not from a model instance.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemReader

    meta = read_tensor_metadata(model_dir)
    wanted = meta if names is None else {n: meta[n] for n in names}
    targets = {n: torch.empty(m.shape, dtype=m.dtype) for n, m in wanted.items()}
    state = {MODEL_KEY: targets}
    no_dist = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            dcp.load(state, storage_reader=FileSystemReader(str(model_dir)), no_dist=no_dist)
        except Exception as e:
            raise ExportError(f"could not load the checkpoint {model_dir}: {type(e).__name__}: {e}") from None
    return state[MODEL_KEY]


def checkpoint_dtype(meta: dict[str, TensorMeta]) -> torch.dtype:
    """The training dtype: the floating dtype holding most parameters."""
    counts: dict[torch.dtype, int] = {}
    for m in meta.values():
        if m.dtype.is_floating_point:
            counts[m.dtype] = counts.get(m.dtype, 0) + m.numel
    return max(counts, key=counts.__getitem__) if counts else torch.float32
