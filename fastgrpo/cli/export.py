"""`fastgrpo export` (placeholder until the exporter lands)."""

from __future__ import annotations

import typer


def export_command(path: str = typer.Argument(...)) -> None:
    """Not built yet."""
    raise typer.Exit(1)
