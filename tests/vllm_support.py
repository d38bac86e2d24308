"""Shared by the tests that run the real vLLM engine (CPU build): the marker, the skip, a tiny model.

They run under `make test-vllm` (a second virtualenv with vLLM built for CPU); in the main virtualenv vLLM
is not installed and they skip, saying so. vLLM's CPU attention needs a head size of at least 32.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HAS_VLLM = importlib.util.find_spec("vllm") is not None

needs_vllm = [
    pytest.mark.vllm,
    pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed in this environment; `make test-vllm` "
                                            "runs these tests with the CPU build of vLLM from ../shared/wheels"),
]
"""`pytestmark = needs_vllm` in a module of real-engine tests."""

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # a plain `LLM` (the benchmark's) stays in-process

KV_CACHE_BYTES = 64 * 2**20
"""Small enough for a shared 2-core test machine, ample for these prompts."""

TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 128}
"""Head size 32: the smallest vLLM's CPU attention takes."""


def build_vllm_tiny(path: Path, seed: int = 0) -> Path:
    from fastgrpo.models.tiny import build_tiny_qwen2

    return build_tiny_qwen2(path, seed=seed, **TINY)
