"""Optional (GPU-only) dependencies: import lazily, fail with a message that says how to fix it."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependencyError(RuntimeError):
    """An optional package is needed for the requested feature but is not installed."""


def require(module: str, extra: str | None, what: str, install: str | None = None) -> ModuleType:
    """Import `module` or raise MissingDependencyError naming the feature and how to install it:
    `pip install 'fastgrpo[extra]'`, or the `install` command for a package no extra can hold (flash-attn)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        how = install or f"pip install 'fastgrpo[{extra}]'"
        raise MissingDependencyError(
            f"{what} needs the '{module}' package, which is not installed ({e.msg}). "
            f"Install it with: {how} (GPU machines only)"
        ) from None
