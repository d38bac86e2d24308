"""docs/config.md is generated from the schema and must not drift from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

from fastgrpo.config import Config
from fastgrpo.config.reference import render_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_docs_config_md_is_up_to_date() -> None:
    assert DOC.exists(), "run: python -m fastgrpo.config.reference > docs/config.md"
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        "docs/config.md is out of date with fastgrpo/config/schema.py; regenerate it with\n"
        "    python -m fastgrpo.config.reference > docs/config.md"
    )


def test_reference_lists_every_key_with_its_default() -> None:
    text = render_reference()
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        assert f"## `{section.name}`" in text
        for f in dataclasses.fields(hints[section.name]):
            assert f"| `{section.name}.{f.name}` |" in text
    assert "| `actor.global_batch_size` | int | `128` | Responses per optimizer update" in text
    assert "| `trainer.max_steps` | int or null | `null` | Stop after this many steps" in text
    assert '| `data.train_files` | str | `""` |' in text
    assert "| **Dynamic KL (SPEC section 1, step 8).** | | | |" in text  # schema comments become group rows
    assert "### Items of `algorithm.dynamic_filter_schedule` (FilterStage)" in text
    assert "| `epoch_ratio` | float | `1.0` |" in text


def test_module_prints_the_reference() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fastgrpo.config.reference"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout == render_reference()
