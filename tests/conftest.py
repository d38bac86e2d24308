"""Shared test setup. Keep it small: fixtures used by one package go in tests/<pkg>/conftest.py.

Tests never touch the network: the Hugging Face libraries are put in offline mode
here, at import time, so every test and every subprocess a test starts inherits it
(without this a missing hub dataset retries for ~25 s before failing).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    TOKENIZERS_PARALLELISM="false",
)


@pytest.fixture
def fastgrpo_log_messages() -> Iterator[list[str]]:
    """Messages logged under the `fastgrpo` loggers during a test (they stop propagating to pytest's caplog
    once the CLI has configured logging, so caplog cannot see them)."""
    logger, seen = logging.getLogger("fastgrpo"), []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler, level = Grab(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(level)
