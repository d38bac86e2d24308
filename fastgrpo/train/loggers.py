"""Where step metrics go: the console line, metrics.jsonl, samples.jsonl, TensorBoard, W&B, MLflow.

Only rank 0 logs. Every backend gets the same dict each step (the finite values of the metrics.jsonl line;
MLflow, whose names allow fewer characters, with those characters replaced, see `mlflow_key`). JSONL lines
are appended whole and fsynced every step (`fastgrpo.utils.io.append_lines`), so a killed run keeps every
finished step and no half line; on resume, lines past the checkpoint are dropped so the file reads as one
uninterrupted run.
"""

from __future__ import annotations

import json
import math
import re
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


_MLFLOW_BAD = re.compile(r"[^/\w.\- :]")
MLFLOW_RUN_ID_FILE = "mlflow_run_id"
"""In the run dir: the MLflow run a resumed training continues (as W&B's resume="allow")."""


def mlflow_key(key: str) -> str:
    """A metric name MLflow accepts: letters, digits, `_ - . / : space`; any other character becomes `_`
    (a grouped benchmark's `val/b/version=vision_only/accuracy` -> `val/b/version_vision_only/accuracy`)."""
    return _MLFLOW_BAD.sub("_", key)


def _flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(_flat_params(v, f"{prefix}{k}."))
        else:
            text = json.dumps(v) if not isinstance(v, str) else v
            out[mlflow_key(f"{prefix}{k}")] = text if len(text) <= 500 else text[:497] + "..."
    return out


class MlflowBackend:
    """One MLflow run per training run: params = the flattened config (values over 500 characters cut; the
    whole config is the run's config.json artifact), metrics per step. Tracking URI from MLFLOW_TRACKING_URI
    (unset: MLflow's default); experiment = trainer.project_name, run name = trainer.experiment_name.
    A resumed training continues the run whose id <run dir>/mlflow_run_id holds."""

    def __init__(self, run_dir: Path, config: dict[str, Any], project: str, name: str) -> None:
        import mlflow  # lazy: an optional extra

        self._mlflow = mlflow
        mlflow.set_experiment(project)
        id_file = run_dir / MLFLOW_RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.exists() else None
        resumed = False
        if run_id:
            try:
                self.run = mlflow.start_run(run_id=run_id)
                resumed = True
            except Exception as e:  # another tracking server, or the run was deleted
                log.warning("could not continue MLflow run %s (%s): starting a new one", run_id, e)
        if not resumed:
            self.run = mlflow.start_run(run_name=name)
            run_dir.mkdir(parents=True, exist_ok=True)
            id_file.write_text(self.run.info.run_id + "\n")
            params = list(_flat_params(config).items())
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per call
                mlflow.log_params(dict(params[i : i + 100]))
            mlflow.log_dict(config, "config.json")

    def log(self, step: int, values: dict[str, float]) -> None:
        self._mlflow.log_metrics({mlflow_key(k): v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self._mlflow.end_run()


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
        self._mlflow: MlflowBackend | None = None
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
        if "mlflow" in self.backends:
            try:
                self._mlflow = MlflowBackend(run_dir, config, project, name)
            except ImportError:
                log.warning("trainer.logger includes mlflow but it is not installed: pip install 'fastgrpo[mlflow]' "
                            "(or mlflow-skinny); metrics still go to the other loggers")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None) for k, v in metrics.items()}
        if "jsonl" in self.backends:
            append_lines(self.metrics_path, [json.dumps({"step": step, **clean})])
        finite = {k: v for k, v in clean.items() if v is not None}  # what every backend below receives
        if self._tb is not None:
            for k, v in finite.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(finite, step=step)
        if self._mlflow is not None:
            self._mlflow.log(step, finite)
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
        if self._mlflow is not None:
            self._mlflow.close()
