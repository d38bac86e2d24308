"""`fastgrpo train`: validate the config first, then hand over to the training recipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from fastgrpo.cli.common import fail, load_or_exit
from fastgrpo.config import Config


def train_command(
    config: Path = typer.Argument(..., help="YAML config, e.g. configs/demo.yaml (or start directly with overrides)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides: algorithm.kl_coef=0.02 trainer.max_steps=10"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes on this node; >1 relaunches under torchrun."),
    dry_run: bool = typer.Option(
        False, "--dry-run",
        help="Load the config, the model's config.json, tokenizer and chat template (no weights, no data, no GPU), "
        "build the engine settings and print the plan: world size, micro-batches, lengths, memory estimate.",
    ),
) -> None:
    """Run FAST-GRPO training.

    Examples:

      fastgrpo train configs/demo.yaml

      fastgrpo train configs/demo.yaml trainer.max_steps=20 algorithm.thinking_reward=false

      fastgrpo train configs/fast_grpo_text.yaml --nproc 8

      torchrun --nproc_per_node 8 -m fastgrpo train configs/fast_grpo_text.yaml

      fastgrpo train configs/fast_grpo_text.yaml --nproc 8 --dry-run    (check it can start, on any machine)

    The run directory (<trainer.output_dir>/<trainer.experiment_name>) receives
    config.yaml, metrics.jsonl, samples.jsonl and checkpoints/; rerunning the same
    command resumes from the latest checkpoint (trainer.resume=auto).
    """
    cfg = load_or_exit(config, overrides)  # bad config: exit 2 before anything starts
    if dry_run:
        _dry_run(cfg, int(os.environ.get("WORLD_SIZE", nproc)))
        return
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        args = [a for a in sys.argv[1:] if not a.startswith("--nproc")]
        if "--nproc" in sys.argv:  # drop the flag's separate value too
            i = sys.argv.index("--nproc")
            args = [a for j, a in enumerate(sys.argv[1:], start=1) if j not in (i, i + 1)]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "fastgrpo", *args]
        raise typer.Exit(subprocess.call(cmd))
    try:
        from fastgrpo.train.recipe import TrainingError, train
    except ImportError as e:  # pragma: no cover - only if the install is broken
        raise fail(f"the trainer could not be imported: {e}", code=1) from None
    try:
        train(cfg)
    except TrainingError as e:
        raise fail(str(e), code=1) from None


def _dry_run(cfg: Config, world_size: int) -> None:
    from fastgrpo.config import ConfigError
    from fastgrpo.train.model import ModelLoadError
    from fastgrpo.train.plan import build_plan, format_plan

    try:
        plan = build_plan(cfg, world_size)
    except (ConfigError, ModelLoadError) as e:
        raise fail(str(e)) from None
    typer.echo(format_plan(plan, cfg))
    typer.echo("dry run: ok (nothing was trained; data files were not read)")
