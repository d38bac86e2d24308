"""CLI tests run the app in-process, and the app configures the `fastgrpo` logger (handler, level,
propagate=False). Undo that after each test so later tests (and caplog elsewhere) see a clean logger."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from fastgrpo import log


@pytest.fixture(autouse=True)
def restore_fastgrpo_logging() -> Iterator[None]:
    logger = logging.getLogger("fastgrpo")
    saved = (logger.level, list(logger.handlers), logger.propagate, log._configured)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]
    log._configured = saved[3]
