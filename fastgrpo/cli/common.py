"""Shared CLI helpers: turn a config problem into a clear message and exit code 2."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from fastgrpo.config import Config, ConfigError, load_config
from fastgrpo.log import console


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` in red and return the Exit to raise (code 2 = bad input)."""
    # escape: messages quote user text (paths, values) that rich would otherwise read as markup
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code)


def load_or_exit(config: Path | None, overrides: list[str] | None) -> Config:
    """Load + validate (eval.benchmarks against the eval registry too), or exit 2 with the message.

    A first argument like `a.b=c` is an override, not a file.
    """
    overrides = list(overrides or [])
    if config is not None and "=" in str(config) and not Path(config).exists():
        overrides.insert(0, str(config))
        config = None
    try:
        cfg = load_config(config, overrides or [])
    except ConfigError as e:
        raise fail(str(e)) from None
    if cfg.eval.benchmarks:
        # Imported here: the eval package pulls in `datasets`, needed only when benchmarks are named.
        from fastgrpo.eval.registry import UnknownBenchmarkError, check_benchmark_names

        try:
            check_benchmark_names(cfg.eval.benchmarks)
        except UnknownBenchmarkError as e:
            raise fail(str(e)) from None
    return cfg
