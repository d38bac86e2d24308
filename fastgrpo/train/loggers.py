"""Where step metrics go: the console line, metrics.jsonl, samples.jsonl, TensorBoard, W&B.

Only rank 0 logs. JSONL lines are appended whole and fsynced every step
(`fastgrpo.utils.io.append_lines`), so a killed run keeps every finished step
and no half line; on resume, lines past the checkpoint are dropped so the file
reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fastgrpo.log import console, get_logger
from fastgrpo.run_dir import RunDir
from fastgrpo.utils.io import append_lines, atomic_write_text

log = get_logger(__name__)

CONSOLE_KEYS = (
    ("reward", "all/reward"), ("acc", "all/accuracy"), ("len", "all/response_length"),
    ("easy_len", "easy/response_length"), ("hard_len", "hard/response_length"),
    ("kl", "actor/kl_loss"), ("loss", "actor/total_loss"), ("filt", "filter/filtered_fraction"),
    ("s/step", "time/step"),
)


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep only records with step <= max_step (resume rewinds to the checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= max_step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write
    atomic_write_text(path, "".join(k + "\n" for k in kept))


class RunLogger:
    def __init__(self, run_dir: Path, backends: list[str], enabled: bool, config: dict[str, Any],
                 project: str, name: str) -> None:
        self.enabled = enabled
        self.backends = set(backends)
        self.metrics_path = RunDir(run_dir).metrics
        self.samples_path = RunDir(run_dir).samples
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        if "tensorboard" in self.backends:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(RunDir(run_dir).tensorboard))
            except ImportError:
                log.warning("trainer.logger includes tensorboard but it is not installed (pip install tensorboard)")
        if "wandb" in self.backends:
            try:
                import wandb

                self._wandb = wandb.init(project=project, name=name, config=config, dir=str(run_dir), resume="allow")
            except ImportError:
                log.warning("trainer.logger includes wandb but it is not installed (pip install wandb)")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None) for k, v in metrics.items()}
        if "jsonl" in self.backends:
            append_lines(self.metrics_path, [json.dumps({"step": step, **clean})])
        if self._tb is not None:
            for k, v in clean.items():
                if v is not None:
                    self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in clean.items() if v is not None}, step=step)
        if "console" in self.backends:
            parts = [f"{short}={metrics[key]:.3g}" for short, key in CONSOLE_KEYS if key in metrics]
            console.print(f"[dim]step {step}[/] " + " ".join(parts), highlight=False)

    def log_samples(self, step: int, samples: list[dict[str, Any]]) -> None:
        if self.enabled and samples:
            append_lines(self.samples_path, [json.dumps({"step": step, **s}) for s in samples])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
