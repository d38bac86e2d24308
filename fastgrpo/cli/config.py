"""`fastgrpo config show|validate`: see exactly what a run would use, before running it."""

from __future__ import annotations

from pathlib import Path

import typer

from fastgrpo.cli.common import load_or_exit
from fastgrpo.config import dump_config

config_app = typer.Typer(
    help="Inspect and check configs.\n\n  fastgrpo config show configs/demo.yaml algorithm.kl_coef=0.02\n\n"
    "  fastgrpo config validate configs/fast_grpo_vision.yaml",
    no_args_is_help=True,
)


@config_app.command("show")
def show(
    config: Path = typer.Argument(None, help="YAML config (omit to see every default)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. trainer.max_steps=10."),
) -> None:
    """Print the fully resolved config (defaults + file + overrides) as YAML.

    Examples:

      fastgrpo config show configs/fast_grpo_text.yaml algorithm.kl_coef=0.02

      fastgrpo config show trainer.max_steps=10    (defaults plus an override)
    """
    cfg = load_or_exit(config, overrides)
    typer.echo(dump_config(cfg), nl=False)


@config_app.command("validate")
def validate(
    config: Path = typer.Argument(..., help="YAML config to check."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides to check along with it."),
) -> None:
    """Check a config; exit 0 if valid, 2 with the offending key if not.

    Examples:

      fastgrpo config validate configs/fast_grpo_vision.yaml

      fastgrpo config validate configs/fast_grpo_text.yaml actor.micro_batch_size=8
    """
    load_or_exit(config, overrides)
    typer.echo(f"{config}: ok")
