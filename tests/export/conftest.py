"""Fixtures for export tests (helpers live in export_helpers.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from export_helpers import SMALL, make_run, preserved_logging

from fastgrpo.models.tiny import build_tiny_qwen2


@pytest.fixture(autouse=True)
def restore_fastgrpo_logging() -> Iterator[None]:
    """The CLI configures the `fastgrpo` logger in-process; undo it after each test."""
    with preserved_logging():
        yield


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest single-threaded, and the test machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("src") / "tiny-qwen2", seed=0, **SMALL)


@pytest.fixture(scope="session")
def run_template(tmp_path_factory: pytest.TempPathFactory, tiny_src: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("template") / "demo", tiny_src)


@pytest.fixture
def run_dir(tmp_path: Path, run_template: Path) -> Path:
    """A fresh copy of the template run (checkpoints at steps 5 and 10) under tmp_path/runs/demo."""
    dst = tmp_path / "runs" / "demo"
    shutil.copytree(run_template, dst)
    return dst
