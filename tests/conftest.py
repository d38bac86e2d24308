"""Shared test setup. Keep it small: fixtures used by one package go in tests/<pkg>/conftest.py.

Tests never touch the network: the Hugging Face libraries are put in offline mode
here, at import time, so every test and every subprocess a test starts inherits it
(without this a missing hub dataset retries for ~25 s before failing).
"""

from __future__ import annotations

import os

os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    TOKENIZERS_PARALLELISM="false",
)
