"""Training rewards learn from the chat template whether `<think>` is already open (issue 15).

The tiny model's tokenizer gets DeepSeek-R1-Distill's real chat template (tests/fixtures/models); the
reward function is a custom one that returns the `think_in_prompt` flag it receives, so samples.jsonl
shows what every reward function (the built-in grader included, which reads the same key) was told.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from fastgrpo.train.recipe import train
from tests.real_models import FIXTURES, R1_DISTILL
from tests.train.conftest import toy_config

REWARD = Path(__file__).with_name("think_reward.py")


def _with_template(model: Path, dest: Path, template: str | None) -> Path:
    shutil.copytree(model, dest)
    if template is not None:
        tok = AutoTokenizer.from_pretrained(dest)
        tok.chat_template = template
        tok.save_pretrained(dest)
    return dest


@pytest.mark.parametrize("template", ["r1_distill", "tiny_default"])
def test_the_reward_is_told_whether_the_template_opens_think(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                             template: str) -> None:
    r1 = json.loads((FIXTURES / R1_DISTILL / "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"]
    model = _with_template(tiny_model, tmp_path / "model", r1 if template == "r1_distill" else None)
    cfg = toy_config(model, toy_data, tmp_path, **{
        "trainer.max_steps": 1, "trainer.log_samples": 8, "reward.reward_function": f"{REWARD}:report_think_flag",
        "reward.num_workers": 0,
    })
    run_dir = train(cfg)
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8
    if template == "r1_distill":
        assert all(s["prompt"].endswith("<think>\n") for s in samples)
    expected = 1.0 if template == "r1_distill" else 0.0
    assert {s["accuracy"] for s in samples} == {expected}
