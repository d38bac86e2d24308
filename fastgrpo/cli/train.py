"""`fastgrpo train`: validate the config first, then hand over to the training recipe."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import typer
from rich.markup import escape

from fastgrpo.cli.common import fail, load_or_exit
from fastgrpo.config import Config, ConfigError
from fastgrpo.log import console, is_rank0
from fastgrpo.train.signals import STOP_SIGNALS


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
    command resumes from the newest complete checkpoint (trainer.resume=auto).

    Ctrl-C, SIGTERM and SIGUSR1 (preemption, a SLURM time limit) stop the run after
    the step in progress, on every rank, save a checkpoint and exit with status 75;
    in one process, Ctrl-C twice stops at once. Plain torchrun forwards SIGUSR1 only
    with --signals-to-handle SIGTERM,SIGINT,SIGUSR1. Multi-node: see docs/cluster.md.

    Exit status: 0 done, 1 training failed, 2 bad config/input (e.g. a damaged
    checkpoint named by trainer.resume), 75 stopped by a signal (rerun to resume).
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
               f"--signals-to-handle={','.join(s.name for s in STOP_SIGNALS)}",
               "-m", "fastgrpo", *args]
        raise typer.Exit(_run_forwarding_signals(cmd))
    try:
        from fastgrpo.train.recipe import TrainingError, TrainingStopped, train
    except ImportError as e:  # pragma: no cover - only if the install is broken
        raise fail(f"the trainer could not be imported: {e}", code=1) from None
    try:
        train(cfg)
    except TrainingStopped as e:
        if is_rank0():
            console.print(f"[yellow]{escape(str(e))}[/]", highlight=False)
        raise typer.Exit(e.exit_code) from None
    except TrainingError as e:
        raise fail(str(e), code=e.exit_code) from None


def _run_forwarding_signals(cmd: list[str]) -> int:
    """Run torchrun and pass it our stop signals (it forwards them to the workers); its exit status.

    Why: `kill -TERM <this pid>` (a scheduler that knows only the launcher) must reach
    the training processes, not leave them orphaned.
    """
    proc = subprocess.Popen(cmd)

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # pragma: no cover - SIGINT is forwarded, not raised
                continue
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _dry_run(cfg: Config, world_size: int) -> None:
    from fastgrpo.train.model import ModelLoadError
    from fastgrpo.train.plan import build_plan, format_plan

    try:
        plan = build_plan(cfg, world_size)
    except (ConfigError, ModelLoadError) as e:
        raise fail(str(e)) from None
    typer.echo(format_plan(plan, cfg))
    typer.echo("dry run: ok (nothing was trained; data files were not read)")
