"""Choosing the checkpoint, and bad input: every mistake exits 2 with a message naming the path and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from export_helpers import flat, invoke

from fastgrpo.export import ExportError, resolve_checkpoint


def test_latest_checkpoint_by_default(run_dir: Path) -> None:
    info = resolve_checkpoint(run_dir)
    assert info.step == 10 and info.path.name == "global_step_000010"
    assert info.run_dir == run_dir and info.base_dir == run_dir / "hf_base"
    assert info.run_config["model"]["path"]


def test_step_picks_that_checkpoint(run_dir: Path) -> None:
    assert resolve_checkpoint(run_dir, step=5).path.name == "global_step_000005"


def test_checkpoint_folder_and_checkpoints_folder_are_accepted(run_dir: Path) -> None:
    direct = resolve_checkpoint(run_dir / "checkpoints" / "global_step_000005")
    assert direct.step == 5 and direct.run_dir == run_dir
    assert resolve_checkpoint(run_dir / "checkpoints").step == 10


def test_incomplete_checkpoint_folder_is_ignored(run_dir: Path) -> None:
    (run_dir / "checkpoints" / "global_step_000020").mkdir()  # no model/.metadata: not a checkpoint
    (run_dir / "checkpoints" / ".tmp_global_step_000030" / "model").mkdir(parents=True)
    assert resolve_checkpoint(run_dir).step == 10


def test_missing_path_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "nope"
    result = invoke(missing)
    assert result.exit_code == 2
    text = flat(result.output)
    assert f"{missing} does not exist" in text and "pass a run directory" in text
    assert "Traceback" not in result.output


def test_run_without_checkpoints_exits_2(run_dir: Path) -> None:
    shutil.rmtree(run_dir / "checkpoints")
    result = invoke(run_dir)
    assert result.exit_code == 2
    text = flat(result.output)
    assert f"{run_dir} has no checkpoints" in text and "trainer.save_freq" in text
    assert not (run_dir / "export").exists()


def test_bad_step_lists_the_available_steps(run_dir: Path) -> None:
    result = invoke(run_dir, "--step", "7")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "--step 7: no such checkpoint in" in text and str(run_dir / "checkpoints") in text
    assert "available steps: 5, 10" in text


def test_step_that_contradicts_the_checkpoint_folder(run_dir: Path) -> None:
    with pytest.raises(ExportError, match="does not match the checkpoint"):
        resolve_checkpoint(run_dir / "checkpoints" / "global_step_000005", step=10)


def test_missing_hf_base_falls_back_to_the_local_model_path(run_dir: Path, tiny_src: Path) -> None:
    shutil.rmtree(run_dir / "hf_base")
    assert resolve_checkpoint(run_dir).base_dir == tiny_src


def test_missing_hf_base_without_local_model_exits_2(run_dir: Path) -> None:
    shutil.rmtree(run_dir / "hf_base")
    (run_dir / "config.yaml").write_text("model:\n  path: org/not-local\n")
    result = invoke(run_dir)
    assert result.exit_code == 2
    assert f"{run_dir}/hf_base/config.json" in flat(result.output)


def test_hub_target_needs_a_repo_id(run_dir: Path) -> None:
    result = invoke(run_dir, "--to", "hf")
    assert result.exit_code == 2 and "--to hf needs --repo-id ORG/NAME" in flat(result.output)
    result = invoke(run_dir, "--to", "hf", "--repo-id", "no-namespace")
    assert result.exit_code == 2 and "expected ORG/NAME" in flat(result.output)


def test_bad_shard_size_exits_2(run_dir: Path) -> None:
    result = invoke(run_dir, "--max-shard-size", "lots")
    assert result.exit_code == 2 and "--max-shard-size 'lots'" in flat(result.output)


def test_out_that_is_not_an_export_is_not_overwritten(run_dir: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = invoke(run_dir, "--out", precious)
    assert result.exit_code == 2 and f"{precious} already exists and is not a fastgrpo export" in flat(
        result.output
    )
    assert (precious / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_hidden_layers": 3, "layer_types": ["full_attention"] * 3}, "missing (e.g. model.layers.2."),
        (
            {"num_hidden_layers": 1, "layer_types": ["full_attention"]},
            "not in the model (e.g. model.layers.1.",
        ),
        ({"intermediate_size": 48}, "have other shapes than the model's"),
    ],
)
def test_checkpoint_that_does_not_match_the_config_exits_2(run_dir: Path, change: dict, message: str) -> None:
    cfg = json.loads((run_dir / "hf_base" / "config.json").read_text())
    (run_dir / "hf_base" / "config.json").write_text(json.dumps({**cfg, **change}))
    result = invoke(run_dir)
    assert result.exit_code == 2
    text = flat(result.output)
    assert "does not match the run's model config" in text and message in text
    assert not (run_dir / "export").exists()


def test_export_skips_a_damaged_latest_checkpoint_and_refuses_a_named_one(run_dir: Path) -> None:
    """Export trusts exactly what resume trusts: the manifest's files with their sizes."""
    shard = next((run_dir / "checkpoints" / "global_step_000010" / "model").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[:100])
    assert resolve_checkpoint(run_dir).step == 5  # newest complete one
    for args in ((run_dir, "--step", "10"), (run_dir / "checkpoints" / "global_step_000010",)):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        text = flat(result.output)
        assert f"{shard} has 100 bytes, the manifest says" in text and "Traceback" not in result.output
    (run_dir / "checkpoints" / "global_step_000005" / "trainer_state.json").unlink()
    result = invoke(run_dir)
    assert result.exit_code == 2
    assert "has no checkpoints (2 incomplete or damaged" in flat(result.output)
