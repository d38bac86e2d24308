"""The README model card: front matter, FAST-GRPO settings, training data, steps, eval table."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from export_helpers import flat, invoke

from fastgrpo.export import read_eval_results, render_model_card

# The shape `fastgrpo eval` writes (fastgrpo/eval/report.py), trimmed.
RESULTS = {
    "model": "/somewhere/runs/demo/export",
    "scorer": "mathverify",
    "benchmarks": {
        "gsm8k": {
            "title": "GSM8K",
            "accuracy": 81.234,
            "mean_tokens": 312.6,
            "questions": 1319,
            "samples": 1319,
        },
        "math500": {
            "accuracy": 55.0,
            "mean_tokens": 1024.4,
            "questions": 500,
            "samples": 500,
            "pass_at_n": 60.0,
        },
    },
    "average": {"accuracy": 68.117, "mean_tokens": 668.5, "benchmarks": 2, "samples": 1819},
}


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_card_of_an_export(run_dir: Path, tiny_src: Path) -> None:
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "results.json").write_text(json.dumps(RESULTS))
    assert invoke(run_dir, "--repo-id", "me/fast-demo").exit_code == 0
    card = (run_dir / "export" / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert {"fast-grpo", "reasoning"} <= set(meta["tags"])
    assert meta["datasets"] == ["openai/gsm8k"]
    assert "base_model" not in meta  # a local folder is not a hub id
    assert "# fast-demo" in card
    assert (
        "| Base model | tiny-qwen2 (local) |" in card and str(tiny_src.parent) not in card
    )  # no local paths
    assert "| Training data | openai/gsm8k@train |" in card
    assert "| Steps | 10 of 10 |" in card and "| Weights dtype | float32 |" in card
    # FAST-GRPO settings from the run's config.yaml, overrides included
    for row in (
        "| `thinking_reward_weight` | 0.7 |",
        "| `kl_type` | group_accuracy_based |",
        "| `kl_min_coef` | 0.002 |",
        "| `kl_max_coef` | 0.01 |",
        "| `dynamic_filter_schedule` | epoch_ratio=0.5, filter_low=0.3, filter_high=0.99; "
        "epoch_ratio=1, filter_low=0.01, filter_high=0.7 |",
    ):
        assert row in card, row
    assert "| GSM8K | 81.2 | 313 | 1319 |" in card and "| math500 | 55.0 | 1024 | 500 |" in card
    assert "| **Average** | 68.1 | 668 | 1819 |" in card
    assert str(run_dir) not in card and "/somewhere" not in card


def test_eval_results_from_another_folder(run_dir: Path, tmp_path: Path) -> None:
    """`fastgrpo eval --model runs/demo/export` writes to runs/eval/export/ by default."""
    results = tmp_path / "runs" / "eval" / "export"
    results.mkdir(parents=True)
    (results / "results.json").write_text(json.dumps(RESULTS))
    assert invoke(run_dir, "--eval-results", results).exit_code == 0
    assert "| GSM8K | 81.2 | 313 | 1319 |" in (run_dir / "export" / "README.md").read_text()
    missing = invoke(run_dir, "--eval-results", tmp_path / "nope.json")
    assert missing.exit_code == 2 and f"--eval-results {tmp_path / 'nope.json'} does not exist" in flat(
        missing.output
    )


def test_card_with_hub_base_model_and_no_eval() -> None:
    cfg = {
        "model": {"path": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"},
        "data": {"train_files": "/data/x.jsonl"},
        "algorithm": {"thinking_reward": True},
    }
    card = render_model_card(cfg, step=3, dtype="bfloat16", eval_rows=[], run_name="r")
    meta = _front_matter(card)
    assert meta["base_model"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert "datasets" not in meta and "| Training data | x.jsonl (local) |" in card and "/data" not in card
    assert "## Evaluation" not in card and "| Steps | 3 |" in card
    cfg["data"]["train_files"] = "data/train.jsonl"  # relative, and absent here: still a file, not a hub id
    assert "datasets" not in _front_matter(render_model_card(cfg, step=3, dtype="bfloat16", eval_rows=[]))


def test_eval_results_are_read_defensively(tmp_path: Path) -> None:
    assert read_eval_results(tmp_path) == []  # no eval/ folder
    (tmp_path / "eval").mkdir()
    path = tmp_path / "eval" / "results.json"
    path.write_text("{not json")
    assert read_eval_results(tmp_path) == []
    path.write_text(
        json.dumps({"benchmarks": {"a": {"accuracy": "n/a"}, "b": 3, "c": {"acc": 50, "samples": 2}}})
    )
    rows = read_eval_results(tmp_path)
    assert [(r.benchmark, r.accuracy, r.mean_tokens, r.samples) for r in rows] == [("c", 50.0, None, 2)]
    path.write_text(json.dumps([{"benchmark": "aime", "accuracy": 30, "mean_tokens": 4000}]))
    assert read_eval_results(tmp_path)[0].benchmark == "aime"
