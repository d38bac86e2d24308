"""The run directory contract: what `fastgrpo train` writes, and what resume, export and eval may trust.

One module so the trainer, `fastgrpo export` and the demo agree on every name and on one
completeness rule (a leaf: standard library and `fastgrpo.utils.io` only).

    <trainer.output_dir>/<trainer.experiment_name>/
      config.yaml            the resolved config (atomic write at train start)
      hf_base/               config.json, generation config, tokenizer/processor files of model.path
                             (written once, through a temp folder); export rebuilds a model folder from it
      metrics.jsonl          one JSON object per step, {"step": N, ...}; resume drops lines past the checkpoint
      samples.jsonl          sampled responses (trainer.log_samples)
      tensorboard/           when trainer.logger has tensorboard
      eval/step_NNNNNN/      validation results (the `fastgrpo eval` output layout)
      checkpoints/global_step_NNNNNN/
        model/               DCP of {"model": state dict with the HF parameter names}
        optim/               DCP of {"optim": optimizer state}
        trainer_state.json   step, scheduler, sampler and algorithm state
        rng_rank{r}.pt       RNG states of rank r
        manifest.json        every other file with its size in bytes; written LAST

A checkpoint is complete when `checkpoint_problem` finds nothing wrong: manifest present,
every file it lists there with its size. Sizes, not checksums: they catch what real failures
leave (a truncated copy, a missing shard, a save cut short) without re-reading tens of GB.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastgrpo.utils.io import atomic_write_json, atomic_write_text

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"
HF_BASE = "hf_base"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
EVAL_DIR = "eval"

STEP_DIR = re.compile(r"^global_step_(\d+)$")
MODEL_DIR = "model"
OPTIM_DIR = "optim"
MODEL_KEY = "model"
"""Top-level key of the model DCP: the trainer saves `{"model": state_dict}`."""
OPTIM_KEY = "optim"
TRAINER_STATE = "trainer_state.json"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def step_dir_name(step: int) -> str:
    return f"global_step_{step:06d}"


def rng_file_name(rank: int) -> str:
    return f"rng_rank{rank}.pt"


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (nothing is created until a write)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES_FILE

    @property
    def hf_base(self) -> Path:
        return self.root / HF_BASE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / step_dir_name(step)

    def val_dir(self, step: int) -> Path:
        """Where validation at `step` writes its `fastgrpo eval` results."""
        return self.root / EVAL_DIR / f"step_{step:06d}"

    def write_config(self, text: str) -> None:
        """config.yaml, atomically: a crash leaves the previous one (a resume rereads it), never half a file."""
        atomic_write_text(self.config, text)

    def write_hf_base(self, save: Callable[[Path], None]) -> None:
        """hf_base/ once per run: `save(folder)` writes the files into a temp folder renamed into place."""
        if (self.hf_base / "config.json").exists():
            return
        tmp = self.root / f".tmp_{HF_BASE}"
        if tmp.exists():
            shutil.rmtree(tmp)
        save(tmp)
        tmp.rename(self.hf_base)


class CheckpointError(RuntimeError):
    """A checkpoint folder is incomplete or damaged; `problem` names the file and what is wrong."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"checkpoint {path} is incomplete or damaged: {problem}")


def is_checkpoint_dir(path: Path) -> bool:
    """A folder meant as one checkpoint (complete or not): named global_step_N, or holding a checkpoint's files."""
    return (bool(STEP_DIR.match(path.name)) or (path / MANIFEST).is_file()
            or (path / MODEL_DIR / ".metadata").is_file())


def checkpoint_step(path: Path) -> int | None:
    """N of a `global_step_N` folder, else None."""
    m = STEP_DIR.match(path.name)
    return int(m.group(1)) if m else None


def list_checkpoints(ckpt_root: str | Path) -> list[tuple[int, Path]]:
    """Every `global_step_*` folder, oldest first, complete or not (see `checkpoint_problem`)."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        step = checkpoint_step(p)
        if step is not None and p.is_dir():
            found.append((step, p))
    return sorted(found)


def write_manifest(folder: Path, step: int) -> None:
    """Record every file of a finished checkpoint folder with its size (atomically, as the last write)."""
    files = {p.relative_to(folder).as_posix(): p.stat().st_size
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    atomic_write_json(folder / MANIFEST, {"format": MANIFEST_FORMAT, "step": step, "files": files})


def checkpoint_problem(path: str | Path) -> str | None:
    """None when the checkpoint folder is complete; else what is wrong, naming the file.

    The one completeness test for the trainer (resume, rotation) and export.
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
