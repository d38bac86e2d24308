"""Training refuses at start-up, before any work, a length the model cannot hold (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastgrpo.train.dist import init_distributed
from fastgrpo.train.recipe import FastGRPORecipe, TrainingError
from tests.train.conftest import toy_config


def test_prompt_plus_response_above_max_position_embeddings_is_a_start_up_error(
    tiny_model: Path, toy_data: Path, tmp_path: Path
) -> None:
    # the tiny model's config.json: max_position_embeddings 1024
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"data.max_response_length": 1000})
    with pytest.raises(TrainingError) as err:
        FastGRPORecipe(cfg, init_distributed("cpu")).setup()
    assert "data.max_prompt_length + data.max_response_length = 64 + 1000 = 1064" in str(err.value)
    assert "max_position_embeddings (1024" in str(err.value)
    assert not (tmp_path / "run").exists()
