"""`fastgrpo eval` (placeholder until the eval harness lands)."""

from __future__ import annotations

import typer

eval_app = typer.Typer(help="Evaluate a model: accuracy and mean generated tokens.", invoke_without_command=True)


@eval_app.callback()
def eval_command() -> None:
    """Not built yet."""
    raise typer.Exit(1)
