"""Fixtures for trainer tests: a tiny Qwen2 folder and a toy prompt file, built locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastgrpo.config import load_config
from fastgrpo.models.tiny import build_tiny_qwen2

REWARD_FILE = Path(__file__).with_name("toy_reward.py")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "model", seed=0, hidden_size=32, num_layers=2,
                            num_heads=2, num_kv_heads=1, intermediate_size=64)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    rows = [{"problem": f"{a}+{b}", "answer": str(a + b)} for a in range(1, 9) for b in range(1, 5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def toy_overrides(model: Path, data: Path, out: Path, **extra: object) -> list[str]:
    """A small, fast FAST-GRPO config; the toy reward makes learning visible in a few dozen steps."""
    base = {
        "model.path": str(model),
        "data.train_files": str(data),
        "data.max_prompt_length": 64,
        "data.max_response_length": 12,
        "data.rollout_batch_size": 4,
        "rollout.n": 4,
        "rollout.engine": "hf",
        "actor.lr": 3e-3,
        "actor.global_batch_size": 16,
        "actor.micro_batch_size": 8,
        "reward.reward_function": f"{REWARD_FILE}:digit_fraction",
        "reward.num_workers": 1,
        "algorithm.online_filtering": False,
        "trainer.output_dir": str(out),
        "trainer.experiment_name": "run",
        "trainer.max_steps": 4,
        "trainer.save_freq": 0,
        "trainer.logger": "[jsonl]",
    }
    base.update({k: v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in base.items()]


def toy_config(model: Path, data: Path, out: Path, **extra: object):
    return load_config(None, toy_overrides(model, data, out, **extra))


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
