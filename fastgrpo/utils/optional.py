"""Optional (GPU-only) dependencies: import lazily, fail with a message that says how to fix it."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependencyError(RuntimeError):
    """An optional package is needed for the requested feature but is not installed."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import `module` or raise MissingDependencyError naming the feature and the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{what} needs the '{module}' package, which is not installed ({e.msg}). "
            f"Install it with: pip install 'fastgrpo[{extra}]' (GPU machines only)"
        ) from None
