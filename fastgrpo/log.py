"""Rich logging, printed on rank 0 only so distributed runs read like one process."""

from __future__ import annotations

import logging
import os

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True, soft_wrap=True)
_configured = False


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_rank0() -> bool:
    return rank() == 0


class _Rank0Filter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return is_rank0() or record.levelno >= logging.ERROR


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Configure the `fastgrpo` logger once: INFO by default, DEBUG with -v, WARNING with -q."""
    global _configured
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logger = logging.getLogger("fastgrpo")
    logger.setLevel(level)
    if not _configured:
        handler = RichHandler(console=console, show_path=verbose, rich_tracebacks=True, markup=False)
        handler.addFilter(_Rank0Filter())
        logger.addHandler(handler)
        logger.propagate = False
        _configured = True
    for noisy in ("httpx", "urllib3", "datasets", "filelock", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import warnings

    # Single-process DCP save/load is intended here; the warning would print on every checkpoint.
    warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("fastgrpo") else f"fastgrpo.{name}")
