"""Shared CLI helpers: turn a config problem into a clear message and exit code 2."""

from __future__ import annotations

from pathlib import Path

import typer

from fastgrpo.config import Config, ConfigError, load_config
from fastgrpo.log import console


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` in red and return the Exit to raise (code 2 = bad input)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def load_or_exit(config: Path | None, overrides: list[str] | None) -> Config:
    try:
        return load_config(config, overrides or [])
    except ConfigError as e:
        raise fail(str(e)) from None
